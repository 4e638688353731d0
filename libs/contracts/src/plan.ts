// Placement plans: which node runs which layers of a model, with the planner's prediction.
// Produced by libs/placement, published by apps/planner, consumed by shards and the gateway.
// Also the cluster description a plan is made for (nodes.json, or the live registry).
import { Type } from 'class-transformer';
import {
  ArrayMaxSize, ArrayMinSize, IsArray, IsNumber, IsOptional, Matches, Max, Min, ValidateBy, ValidateNested,
  buildMessage, type ValidationOptions,
} from 'class-validator';
import type { KvDType } from './manifest.js';
import { ID_PATTERN, type NodeId, type PlanId } from './ids.js';
import { parseByteSize } from './units.js';

export type Objective = 'latency' | 'throughput';
export const OBJECTIVES: readonly Objective[] = ['latency', 'throughput'];

export interface PlanRequirement {
  /** Context tokens each sequence may reach (prompt + generated). */
  contextTokens: number;
  /** Sequences held at once (each with its own KV); for `throughput`, the sequences in flight. */
  sequences: number;
  kvDType: KvDType;
  objective: Objective;
  /** Only these nodes may be used, when given. */
  pinnedNodes?: NodeId[];
  /** Use exactly this many stages (nodes), when given: e.g. to spread a model over every local shard. */
  stages?: number;
}

/** A machine as the planner sees it. */
export interface PlacementNode {
  id: NodeId;
  /** What Baton may use on the node: weights + KV + headroom must fit in it. */
  memoryBytes: number;
  /** Weight bytes per second the node's kernels stream; null when not measured (a default is assumed). */
  computeBytesPerSec: number | null;
}

/** One direction of a link; a pair with no entry in either direction gets the planner's default. */
export interface PlacementLink {
  from: NodeId;
  to: NodeId;
  rttMs: number;
  bandwidthBytesPerSec: number;
}

export interface PlacementCluster {
  nodes: PlacementNode[];
  links: PlacementLink[];
}

export interface PlanStage {
  nodeId: NodeId;
  /** Layers [layerStart, layerEnd). */
  layerStart: number;
  layerEnd: number;
  /** Layer weights, plus the embedding on the first stage and the head on the last. */
  weightsBytes: number;
  /** KV cache for these layers at contextTokens × sequences. */
  kvBytes: number;
  /** Scratch, activations and runtime (see libs/placement costs.ts for the formula). */
  headroomBytes: number;
  /** weightsBytes + kvBytes + headroomBytes. */
  memoryBytes: number;
  /** The node's memory budget the stage must fit in. */
  memoryBudgetBytes: number;
  /** Compute rate used for the prediction (measured, or the default when the node is unmeasured). */
  computeBytesPerSec: number;
  computeMeasured: boolean;
  /** Predicted time of this stage for one token of one sequence. */
  predictedMs: number;
}

export interface PlanHop {
  from: NodeId;
  to: NodeId;
  /** Hidden state between stages; the sampled token id (4 bytes) on the last → first hop. */
  bytesPerToken: number;
  rttMs: number;
  bandwidthBytesPerSec: number;
  /** False when the link was not measured and the planner's default was used. */
  measured: boolean;
  /** rttMs / 2 + bytesPerToken / bandwidth. */
  predictedMs: number;
}

export interface PlanPrediction {
  /** One sequence's time per token: Σ stage time + Σ hop time around the ring. */
  msPerToken: number;
  /** Steady state with `sequences` in flight: min(sequences / msPerToken, 1 / bottleneckMs), per second. */
  tokensPerSecond: number;
  /** The slowest stage or link transfer: what bounds throughput. */
  bottleneckMs: number;
}

export interface PlanAlternative {
  description: string;
  nodes: NodeId[];
  predicted: PlanPrediction | null;
  reason: string;
}

/** What the placement library computes: a plan before the planner names and versions it. */
export interface Placement {
  requirement: PlanRequirement;
  stages: PlanStage[];
  hops: PlanHop[];
  predicted: PlanPrediction;
  alternatives: PlanAlternative[];
  /** Defaults assumed (unmeasured compute, unmeasured links) and warnings, in words. */
  assumptions: string[];
}

export interface Plan extends Placement {
  planId: PlanId;
  /** Increases by one at every publish for the same model. */
  version: number;
  modelId: string;
  /** Path of the GGUF file on the nodes (same path on each, or resolved per node by name). */
  modelPath: string;
  createdAtMs: number;
}

// ---- nodes.json: a cluster described by hand ("would two 64 GB Mac minis run this?") ----

/** A byte count: a non-negative number, or a size string like "48GB", "512MiB" (a trailing "/s" is allowed). */
export function parseByteSizeField(value: unknown): number {
  if (typeof value === 'number') return parseByteSize(value);
  if (typeof value === 'string') return parseByteSize(value.replace(/\/\s*s(ec)?\s*$/i, ''));
  throw new RangeError(`expected a byte size, got ${value === null ? 'null' : typeof value}`);
}

function IsByteSize(options?: ValidationOptions & { positive?: boolean }): PropertyDecorator {
  return ValidateBy({
    name: 'isByteSize',
    validator: {
      validate: (value: unknown) => {
        try {
          const bytes = parseByteSizeField(value);
          return options?.positive ? bytes > 0 : true;
        } catch {
          return false;
        }
      },
      defaultMessage: buildMessage(
        (each) => `${each}$property must be ${options?.positive ? 'a positive' : 'a'} byte count or a size like "48GB" or "512MiB", got $value`,
        options,
      ),
    },
  }, options);
}

export class ClusterNodeDto {
  @Matches(ID_PATTERN, { message: 'id must be 1-128 characters of A-Z a-z 0-9 . _ : -' }) id!: string;
  @IsByteSize({ positive: true }) memoryBytes!: number | string;
  /** Omitted or null: not measured (the planner assumes its default and says so). */
  @IsOptional() @IsByteSize({ positive: true }) computeBytesPerSec?: number | string | null;
}

export class ClusterLinkDto {
  @Matches(ID_PATTERN, { message: 'from must be a node id' }) from!: string;
  @Matches(ID_PATTERN, { message: 'to must be a node id' }) to!: string;
  @IsNumber({ allowNaN: false, allowInfinity: false }) @Min(0) @Max(60_000) rttMs!: number;
  @IsByteSize({ positive: true }) bandwidthBytesPerSec!: number | string;
}

/** The nodes.json file `baton plan --nodes` reads. */
export class ClusterFileDto {
  @IsArray() @ArrayMinSize(1) @ArrayMaxSize(1024) @ValidateNested({ each: true }) @Type(() => ClusterNodeDto) nodes!: ClusterNodeDto[];
  @IsOptional() @IsArray() @ArrayMaxSize(1024 * 1024) @ValidateNested({ each: true }) @Type(() => ClusterLinkDto) links?: ClusterLinkDto[];
}
