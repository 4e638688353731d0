// DTO classes for every RPC request, keyed by pattern: the server side validates each request
// against its class before a handler runs.
import { Type } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsBoolean, IsIn, IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min, MinLength, ValidateNested } from 'class-validator';
import { KV_DTYPES } from './manifest.js';
import { OBJECTIVES, type PlanRequirement } from './plan.js';
import { ID_PATTERN } from './ids.js';
import type { DtoClass } from './validate.js';
import { KV_RPC_REQUEST_DTOS } from './kv.js';
import type { RpcPattern, ListNodesRequest, HintPattern, PlanApplyRequest, PlanCurrentRequest, PlanPreviewRequest } from './patterns.js';

export class ListNodesRequestDto implements ListNodesRequest {
  @IsOptional() @IsBoolean() includeMismatched?: boolean;
}

export class EmptyRequestDto {}

export class PlanRequirementDto implements PlanRequirement {
  @IsInt() @Min(1) @Max(16 * 1024 * 1024) contextTokens!: number;
  @IsInt() @Min(1) @Max(65536) sequences!: number;
  @IsIn(KV_DTYPES) kvDType!: PlanRequirement['kvDType'];
  @IsIn(OBJECTIVES) objective!: PlanRequirement['objective'];
  @IsOptional() @IsArray() @ArrayMaxSize(1024) @Matches(ID_PATTERN, { each: true }) pinnedNodes?: PlanRequirement['pinnedNodes'];
  @IsOptional() @IsInt() @Min(1) @Max(1024) stages?: number;
}

export class PlanPreviewRequestDto implements PlanPreviewRequest {
  @IsString() @MinLength(1) @MaxLength(4096) modelPath!: string;
  @ValidateNested() @Type(() => PlanRequirementDto) requirement!: PlanRequirementDto;
}

export class PlanApplyRequestDto extends PlanPreviewRequestDto implements PlanApplyRequest {
  @IsOptional() @Matches(ID_PATTERN) modelId?: string;
}

export class PlanCurrentRequestDto implements PlanCurrentRequest {
  @IsString() @MinLength(1) @MaxLength(256) modelId!: string;
}

export const RPC_REQUEST_DTOS: { [P in RpcPattern]: DtoClass<object> } = {
  'discovery.nodes.list': ListNodesRequestDto,
  'discovery.ping': EmptyRequestDto,
  'planner.preview': PlanPreviewRequestDto,
  'planner.apply': PlanApplyRequestDto,
  'planner.current': PlanCurrentRequestDto,
  'planner.list': EmptyRequestDto,
  'planner.ping': EmptyRequestDto,
  ...KV_RPC_REQUEST_DTOS,
  'kv.usage': EmptyRequestDto,
  'kv.ping': EmptyRequestDto,
};

export class NodeChangedHintDto {
  @Matches(ID_PATTERN) nodeId!: string;
  @IsBoolean() goodbye!: boolean;
}

export const HINT_DTOS: { [P in HintPattern]: DtoClass<object> } = {
  'node.changed': NodeChangedHintDto,
};
