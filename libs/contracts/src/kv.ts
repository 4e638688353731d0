// KV-cache shapes that cross process boundaries (ARCHITECTURE §6, issue 7): the events shards
// publish about their paged KV pools, the full dumps they send when asked, the commands the
// kv-cache service sends them, the admit / release / lookup RPCs the gateway calls, and the
// per-node usage report for `/v1/cluster` and `baton nodes`. Pure accounting over these lives in
// libs/kv-core.
//
// Conventions:
// - A shard is one stage of one plan on one node: (modelId, planId, stage, nodeId).
// - Each shard numbers its events 1, 2, 3 … within an `epoch` (a string fixed for the life of
//   the shard's KV pool, e.g. its start time and pid). A gap in the numbers, or a new epoch
//   that does not start at 1, makes the manager ask that shard for a full dump.
// - Token counts are KV positions written: a sequence holding `tokens` has KV for positions
//   [0, tokens). `blocks` is what the shard's pool holds for it (normally ceil(tokens / 16)).
import 'reflect-metadata';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize, IsArray, IsBoolean, IsIn, IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min, ValidateIf, ValidateNested,
} from 'class-validator';
import { ID_PATTERN, type ModelId, type NodeId, type PlanId, type RequestId, type SequenceId } from './ids.js';

/** Tokens per KV block, on every stage and for every dtype. */
export const KV_BLOCK_TOKENS = 16;

/** Largest prompt (in token ids) an admit or lookup request may carry. */
export const MAX_KV_REQUEST_TOKENS = 1 << 20;
/** Longest wait for KV room a caller may ask of the manager (10 minutes). */
export const MAX_KV_WAIT_MS = 600_000;

/** Largest number of sequences one shard dump may list. */
export const MAX_KV_DUMP_SEQUENCES = 1 << 16;

const U32_MAX = 0xffffffff;

// ---------------------------------------------------------------------------------------------
// Shard → manager: numbered events

export const KV_SHARD_EVENT_KINDS = ['stored', 'freed', 'truncated', 'copied'] as const;
export type KvShardEventKind = (typeof KV_SHARD_EVENT_KINDS)[number];

/** Which shard an event or dump comes from. */
export interface KvShardRef {
  modelId: ModelId;
  planId: PlanId;
  nodeId: NodeId;
  /** Index of the stage in the plan's `stages`. */
  stage: number;
}

interface KvShardEventBase extends KvShardRef {
  /** Identifies the life of the shard's KV pool; a restarted shard has a new epoch. */
  epoch: string;
  /** 1, 2, 3 … per shard and epoch, no gaps. */
  seq: number;
  atMs: number;
  sequenceId: SequenceId;
}

/** The sequence now holds KV for `tokens` positions in `blocks` blocks (after a prefill chunk or decode step). */
export interface KvStoredEvent extends KvShardEventBase { kind: 'stored'; tokens: number; blocks: number }
/** The sequence's blocks were returned to the pool. */
export interface KvFreedEvent extends KvShardEventBase { kind: 'freed' }
/** The sequence was cut back to `tokens` positions, now in `blocks` blocks. */
export interface KvTruncatedEvent extends KvShardEventBase { kind: 'truncated'; tokens: number; blocks: number }
/** `sequenceId` was created holding a copy of the first `tokens` positions of `fromSequenceId`. */
export interface KvCopiedEvent extends KvShardEventBase { kind: 'copied'; fromSequenceId: SequenceId; tokens: number; blocks: number }

export type KvShardEvent = KvStoredEvent | KvFreedEvent | KvTruncatedEvent | KvCopiedEvent;

export class KvShardEventDto {
  @IsIn(KV_SHARD_EVENT_KINDS) kind!: KvShardEventKind;
  @Matches(ID_PATTERN) modelId!: ModelId;
  @Matches(ID_PATTERN) planId!: PlanId;
  @Matches(ID_PATTERN) nodeId!: NodeId;
  @IsInt() @Min(0) @Max(4096) stage!: number;
  @IsString() @MaxLength(128) epoch!: string;
  @IsInt() @Min(1) seq!: number;
  @IsInt() @Min(0) atMs!: number;
  @IsInt() @Min(0) @Max(U32_MAX) sequenceId!: SequenceId;
  @ValidateIf((event: KvShardEventDto) => event.kind !== 'freed') @IsInt() @Min(0) tokens?: number;
  @ValidateIf((event: KvShardEventDto) => event.kind !== 'freed') @IsInt() @Min(0) blocks?: number;
  @ValidateIf((event: KvShardEventDto) => event.kind === 'copied') @IsInt() @Min(0) @Max(U32_MAX) fromSequenceId?: SequenceId;
}

// ---------------------------------------------------------------------------------------------
// Shard → manager: full state dump (on request, after a gap, or after the manager restarts)

export interface KvShardSequence {
  sequenceId: SequenceId;
  tokens: number;
  blocks: number;
}

export interface KvShardDump extends KvShardRef {
  epoch: string;
  /** The seq of the last event whose effect this dump includes (0 when none was sent). */
  seq: number;
  atMs: number;
  /** The pool's size in blocks. */
  capacityBlocks: number;
  sequences: KvShardSequence[];
}

export class KvShardSequenceDto implements KvShardSequence {
  @IsInt() @Min(0) @Max(U32_MAX) sequenceId!: SequenceId;
  @IsInt() @Min(0) tokens!: number;
  @IsInt() @Min(0) blocks!: number;
}

export class KvShardDumpDto implements KvShardDump {
  @Matches(ID_PATTERN) modelId!: ModelId;
  @Matches(ID_PATTERN) planId!: PlanId;
  @Matches(ID_PATTERN) nodeId!: NodeId;
  @IsInt() @Min(0) @Max(4096) stage!: number;
  @IsString() @MaxLength(128) epoch!: string;
  @IsInt() @Min(0) seq!: number;
  @IsInt() @Min(0) atMs!: number;
  @IsInt() @Min(0) capacityBlocks!: number;
  @IsArray() @ArrayMaxSize(MAX_KV_DUMP_SEQUENCES) @ValidateNested({ each: true }) @Type(() => KvShardSequenceDto) sequences!: KvShardSequenceDto[];
}

// ---------------------------------------------------------------------------------------------
// Manager → shard: commands (evictions, prefix reuse)

export const KV_SHARD_COMMAND_KINDS = ['free', 'truncate', 'copy', 'dump'] as const;
export type KvShardCommandKind = (typeof KV_SHARD_COMMAND_KINDS)[number];

interface KvShardCommandBase extends KvShardRef {}
/** Return the sequence's blocks to the pool. */
export interface KvFreeCommand extends KvShardCommandBase { kind: 'free'; sequenceId: SequenceId }
/** Keep only KV positions [0, tokens) of the sequence. */
export interface KvTruncateCommand extends KvShardCommandBase { kind: 'truncate'; sequenceId: SequenceId; tokens: number }
/** Create `sequenceId` holding a copy of positions [0, tokens) of `fromSequenceId`. */
export interface KvCopyCommand extends KvShardCommandBase { kind: 'copy'; fromSequenceId: SequenceId; sequenceId: SequenceId; tokens: number }
/** Send a full KvShardDump. */
export interface KvDumpCommand extends KvShardCommandBase { kind: 'dump' }

export type KvShardCommand = KvFreeCommand | KvTruncateCommand | KvCopyCommand | KvDumpCommand;

export class KvShardCommandDto {
  @IsIn(KV_SHARD_COMMAND_KINDS) kind!: KvShardCommandKind;
  @Matches(ID_PATTERN) modelId!: ModelId;
  @Matches(ID_PATTERN) planId!: PlanId;
  @Matches(ID_PATTERN) nodeId!: NodeId;
  @IsInt() @Min(0) @Max(4096) stage!: number;
  @ValidateIf((command: KvShardCommandDto) => command.kind !== 'dump') @IsInt() @Min(0) @Max(U32_MAX) sequenceId?: SequenceId;
  @ValidateIf((command: KvShardCommandDto) => command.kind === 'truncate' || command.kind === 'copy') @IsInt() @Min(0) tokens?: number;
  @ValidateIf((command: KvShardCommandDto) => command.kind === 'copy') @IsInt() @Min(0) @Max(U32_MAX) fromSequenceId?: SequenceId;
}

// ---------------------------------------------------------------------------------------------
// Gateway ↔ manager: admit / release / lookup

export interface KvAdmitRequest {
  modelId: ModelId;
  requestId: RequestId;
  /** The prompt's token ids, in order. */
  tokens: number[];
  /** Tokens the request may generate; blocks for prompt + maxTokens are reserved on every stage. */
  maxTokens: number;
  /**
   * How long the request may wait in the manager's first-come-first-served line when the cache is
   * full (0 or absent: answer 'queue' at once). Callers give their RPC a longer timeout than this.
   */
  waitMs?: number;
}

/** How the admitted sequence starts out. */
export type KvReuse =
  | { mode: 'none' }
  /** An idle cached sequence was truncated to the common prefix and given to this request. */
  | { mode: 'in-place'; sequenceId: SequenceId; tokens: number }
  /** A running (or pinned) sequence's prefix was copied into the new sequence. */
  | { mode: 'copy'; fromSequenceId: SequenceId; tokens: number };

export interface KvAdmitted {
  verdict: 'admitted';
  sequenceId: SequenceId;
  /** Prompt tokens whose KV is already in place: prefill starts at this position. */
  cachedTokens: number;
  /** Prompt tokens left to prefill. */
  prefillTokens: number;
  reuse: KvReuse;
  /** Blocks reserved for this sequence on every stage. */
  reservedBlocks: number;
  /** Sequences evicted to make room. */
  evicted: SequenceId[];
  /** What the service must send to shards, in order, before the request's first frame. */
  commands: KvShardCommand[];
}

/** Capacity numbers of the stage that decided a refusal or a wait. */
export interface KvShortage {
  nodeId: NodeId;
  /** Display name of the node (its id when none is known). */
  nodeName: string;
  stage: number;
  capacityBlocks: number;
  usedBlocks: number;
  /** Blocks held by running sequences (not evictable). */
  runningBlocks: number;
  /** Blocks held by idle cached sequences (evictable). */
  cachedIdleBlocks: number;
  /** Blocks this request needs on that stage. */
  neededBlocks: number;
}

/** Not enough room now, even after evicting every idle sequence: wait and retry (429 when the wait runs out). */
export interface KvQueued {
  verdict: 'queue';
  shortage: KvShortage;
  message: string;
}

/** Larger than the whole cache of some stage: it can never run (400 at once). */
export interface KvRefused {
  verdict: 'refused';
  shortage: KvShortage;
  promptTokens: number;
  maxTokens: number;
  /** Most tokens (prompt + max_tokens) one sequence can hold on this plan. */
  maxSequenceTokens: number;
  message: string;
}

export type KvAdmitResponse = KvAdmitted | KvQueued | KvRefused;

export interface KvReleaseRequest {
  modelId: ModelId;
  sequenceId: SequenceId;
  /**
   * The token ids whose KV the sequence holds, in order (prompt + generated tokens that were fed
   * back through the model). When given and `keep` is not false, the sequence stays cached for
   * prefix reuse; otherwise it is freed.
   */
  tokens?: number[];
  keep?: boolean;
}

export interface KvReleaseResponse {
  sequenceId: SequenceId;
  /** 'cached': kept idle for reuse; 'freed': blocks returned; 'unknown': no such sequence. */
  outcome: 'cached' | 'freed' | 'unknown';
  cachedTokens: number;
  commands: KvShardCommand[];
}

export interface KvLookupRequest {
  modelId: ModelId;
  tokens: number[];
}

export interface KvLookupResponse {
  /** Prompt tokens an admit would find cached now. */
  cachedTokens: number;
  /** Whole blocks of the prompt found in the prefix index. */
  matchedBlocks: number;
  holder: { sequenceId: SequenceId; state: KvSequenceState } | null;
  mode: KvReuse['mode'];
}

export type KvSequenceState = 'running' | 'idle';

export class KvAdmitRequestDto implements KvAdmitRequest {
  @Matches(ID_PATTERN) modelId!: ModelId;
  @Matches(ID_PATTERN) requestId!: RequestId;
  @IsArray() @ArrayMaxSize(MAX_KV_REQUEST_TOKENS) @IsInt({ each: true }) @Min(0, { each: true }) @Max(U32_MAX, { each: true }) tokens!: number[];
  @IsInt() @Min(0) maxTokens!: number;
  @IsOptional() @IsInt() @Min(0) @Max(MAX_KV_WAIT_MS) waitMs?: number;
}

export class KvReleaseRequestDto implements KvReleaseRequest {
  @Matches(ID_PATTERN) modelId!: ModelId;
  @IsInt() @Min(0) @Max(U32_MAX) sequenceId!: SequenceId;
  @IsOptional() @IsArray() @ArrayMaxSize(MAX_KV_REQUEST_TOKENS) @IsInt({ each: true }) @Min(0, { each: true }) @Max(U32_MAX, { each: true }) tokens?: number[];
  @IsOptional() @IsBoolean() keep?: boolean;
}

export class KvLookupRequestDto implements KvLookupRequest {
  @Matches(ID_PATTERN) modelId!: ModelId;
  @IsArray() @ArrayMaxSize(MAX_KV_REQUEST_TOKENS) @IsInt({ each: true }) @Min(0, { each: true }) @Max(U32_MAX, { each: true }) tokens!: number[];
}

// ---------------------------------------------------------------------------------------------
// Per-node usage (for /v1/cluster and `baton nodes`)

export interface KvNodeUsage {
  modelId: ModelId;
  planId: PlanId;
  nodeId: NodeId;
  stage: number;
  /** Layers [layerStart, layerEnd) whose KV this node holds. */
  layerStart: number;
  layerEnd: number;
  blockBytes: number;
  capacityBlocks: number;
  usedBlocks: number;
  runningBlocks: number;
  cachedIdleBlocks: number;
  /** Sequences with blocks on this node (running + idle). */
  sequences: number;
  runningSequences: number;
  idleSequences: number;
  /** Blocks the shard itself reports holding (from its events); null until it is in sync. */
  reportedBlocks: number | null;
  /** False while a dump from this shard is awaited. */
  inSync: boolean;
}

export interface KvUsageReport {
  atMs: number;
  nodes: KvNodeUsage[];
  /** Admissions waiting in the manager's line for room now (all models). */
  queuedRequests?: number;
}

export class KvNodeUsageDto implements KvNodeUsage {
  @Matches(ID_PATTERN) modelId!: ModelId;
  @Matches(ID_PATTERN) planId!: PlanId;
  @Matches(ID_PATTERN) nodeId!: NodeId;
  @IsInt() @Min(0) stage!: number;
  @IsInt() @Min(0) layerStart!: number;
  @IsInt() @Min(0) layerEnd!: number;
  @IsInt() @Min(0) blockBytes!: number;
  @IsInt() @Min(0) capacityBlocks!: number;
  @IsInt() @Min(0) usedBlocks!: number;
  @IsInt() @Min(0) runningBlocks!: number;
  @IsInt() @Min(0) cachedIdleBlocks!: number;
  @IsInt() @Min(0) sequences!: number;
  @IsInt() @Min(0) runningSequences!: number;
  @IsInt() @Min(0) idleSequences!: number;
  @ValidateIf((usage: KvNodeUsageDto) => usage.reportedBlocks !== null) @IsInt() @Min(0) reportedBlocks!: number | null;
  @IsBoolean() inSync!: boolean;
}

export class KvUsageReportDto implements KvUsageReport {
  @IsInt() @Min(0) atMs!: number;
  @IsArray() @ArrayMaxSize(4096) @ValidateNested({ each: true }) @Type(() => KvNodeUsageDto) nodes!: KvNodeUsageDto[];
  @IsOptional() @IsInt() @Min(0) queuedRequests?: number;
}

// ---------------------------------------------------------------------------------------------
// RPC patterns of the kv-cache service (to be merged into RpcMap / RPC_REQUEST_DTOS by the lead).

export interface KvRpcMap {
  'kv.admit': { request: KvAdmitRequest; response: KvAdmitResponse };
  'kv.release': { request: KvReleaseRequest; response: KvReleaseResponse };
  'kv.lookup': { request: KvLookupRequest; response: KvLookupResponse };
  'kv.usage': { request: Record<string, never>; response: KvUsageReport };
}

export const KV_RPC_REQUEST_DTOS = {
  'kv.admit': KvAdmitRequestDto,
  'kv.release': KvReleaseRequestDto,
  'kv.lookup': KvLookupRequestDto,
} as const;
