// A node's announcement: what `baton node` publishes in its lease and discovery keeps in the
// registry. Validated on every read: an invalid announcement never enters the registry.
import { Type } from 'class-transformer';
import {
  ArrayMaxSize, IsArray, IsIn, IsInt, IsNumber, IsOptional, IsString, Matches, Max, MaxLength, Min, ValidateNested,
  IsBoolean,
} from 'class-validator';
import { ID_PATTERN, type NodeId } from './ids.js';

/** Largest announcement accepted, serialized (bytes). */
export const MAX_ANNOUNCEMENT_BYTES = 64 * 1024;

export class MemoryInfoDto {
  @IsInt() @Min(0) totalBytes!: number;
  @IsInt() @Min(0) availableBytes!: number;
  /** What Baton may use on this node (weights + KV + scratch). */
  @IsInt() @Min(0) budgetBytes!: number;
}

export class CpuInfoDto {
  @IsString() @MaxLength(200) model!: string;
  @IsInt() @Min(1) @Max(4096) threads!: number;
  @IsString() @MaxLength(32) arch!: string;
  @IsArray() @ArrayMaxSize(64) @IsString({ each: true }) @MaxLength(32, { each: true }) features!: string[];
}

export const ENDPOINT_KINDS = ['tcp', 'unix', 'rdma'] as const;
export type EndpointKind = (typeof ENDPOINT_KINDS)[number];

export class EndpointDto {
  @IsIn(ENDPOINT_KINDS) kind!: EndpointKind;
  @IsString() @MaxLength(256) address!: string;
  @IsOptional() @IsInt() @Min(0) @Max(65535) port?: number;
}

export class LocalModelDto {
  @IsString() @MaxLength(200) name!: string;
  @IsString() @MaxLength(4096) path!: string;
  @IsInt() @Min(0) sizeBytes!: number;
  @IsOptional() @IsString() @MaxLength(64) arch?: string;
  @IsOptional() @IsString() @MaxLength(64) fileType?: string;
}

/** The node's KV pool for the stage it serves (blocks of `blockTokens` token positions). */
export class KvUsageDto {
  @IsInt() @Min(0) blocksTotal!: number;
  @IsInt() @Min(0) blocksUsed!: number;
  @IsInt() @Min(1) blockTokens!: number;
  @IsInt() @Min(0) sequences!: number;
}

export class NodeAnnouncementDto {
  @Matches(ID_PATTERN) id!: NodeId;
  @IsString() @MaxLength(128) name!: string;
  @IsString() @MaxLength(256) hostname!: string;
  @IsInt() @Min(1) pid!: number;
  /** Baton package version of the node. */
  @IsString() @MaxLength(64) version!: string;
  /** Data-plane protocol version (FRAME_VERSION). */
  @IsInt() @Min(0) protocolVersion!: number;
  @IsArray() @ArrayMaxSize(16) @ValidateNested({ each: true }) @Type(() => EndpointDto) endpoints!: EndpointDto[];
  @ValidateNested() @Type(() => MemoryInfoDto) memory!: MemoryInfoDto;
  @ValidateNested() @Type(() => CpuInfoDto) cpu!: CpuInfoDto;
  /** Weight bytes per second the engine streams, measured; null until measured. */
  @IsOptional() @IsNumber() @Min(0) computeBytesPerSec!: number | null;
  @IsArray() @ArrayMaxSize(256) @ValidateNested({ each: true }) @Type(() => LocalModelDto) models!: LocalModelDto[];
  @IsArray() @ArrayMaxSize(16) @IsString({ each: true }) rdmaDevices!: string[];
  @IsInt() @Min(0) startedAtMs!: number;
  /** Shard state shown by `baton nodes` (idle, loading 42%, serving …). */
  @IsOptional() @IsString() @MaxLength(200) status?: string;
  @IsOptional() @IsBoolean() draining?: boolean;
  /** The plan whose stage this node serves now (every layer loaded, next stage connected). */
  @IsOptional() @IsString() @MaxLength(64) servingPlanId?: string;
  @IsOptional() @ValidateNested() @Type(() => KvUsageDto) kv?: KvUsageDto;
}

export type NodeAnnouncement = Omit<NodeAnnouncementDto, never>;

/** A registry entry: the announcement plus what discovery knows about it. */
export interface NodeRecord extends NodeAnnouncement {
  lastSeenMs: number;
  /** True when the node runs a different Baton version or protocol than discovery. */
  versionMismatch: boolean;
}

export interface LinkMeasurement {
  from: NodeId;
  to: NodeId;
  rttP50Ms: number;
  rttP99Ms: number;
  bandwidthBytesPerSec: number;
  measuredAtMs: number;
}

export class LinkMeasurementDto implements LinkMeasurement {
  @Matches(ID_PATTERN) from!: NodeId;
  @Matches(ID_PATTERN) to!: NodeId;
  @IsNumber() @Min(0) rttP50Ms!: number;
  @IsNumber() @Min(0) rttP99Ms!: number;
  @IsNumber() @Min(0) bandwidthBytesPerSec!: number;
  @IsInt() @Min(0) measuredAtMs!: number;
}

/** The value of a node's lease key `<prefix>node:<id>`: its announcement and when it last refreshed. */
export class NodeLeaseValueDto {
  @ValidateNested() @Type(() => NodeAnnouncementDto) announcement!: NodeAnnouncementDto;
  @IsInt() @Min(0) heartbeatAtMs!: number;
}
