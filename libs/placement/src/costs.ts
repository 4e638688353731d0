// The cost model: how much memory a stage needs and how long a stage or a hop takes. Every
// prediction the planner makes comes from these functions, so they are the formula a test (or
// a user) can recompute by hand.
//
// Memory of a stage holding layers [b, e):
//   weights  = Σ layerBytes[b..e) + embedBytes (first stage) + headBytes (last stage)
//              + embedBytes again on the last stage when the head is tied to the embedding and
//              the last stage is not also the first (it needs its own copy of the matrix)
//   KV       = (e − b) × kvBytesPerTokenPerLayer × contextTokens × sequences
//   headroom = RUNTIME_OVERHEAD_BYTES
//              + PREFILL_CHUNK_TOKENS × (6 × activationBytesPerToken + 3 × 4 × feedForwardLength)
//              + (last stage) sequences × vocabSize × 4          (f32 logits)
//   The scratch term is what one prefill chunk of PREFILL_CHUNK_TOKENS needs: ~6 hidden-sized f32
//   buffers (residual, norm, q/k/v/attention out) and 3 feed-forward-sized ones (gate, up, act).
//
// Time of a stage for one token of one sequence (decode is memory-bound: every weight byte of
// the stage is streamed once per token, and attention streams the sequence's KV):
//   ms = (Σ layerBytes[b..e) + (last stage) head compute bytes
//         + (e − b) × kvBytesPerTokenPerLayer × contextTokens / 2) / computeBytesPerSec × 1000
//   head compute bytes = headBytes (+ embedBytes when tied: the head is the embedding matrix).
//   contextTokens / 2 is the mean KV length over a generation that fills the context.
//
// Time of a hop: rttMs / 2 + bytesPerToken / bandwidthBytesPerSec × 1000, where bytesPerToken is
// activationBytesPerToken between stages and 4 (a token id) on the last → first hop.
import type { ModelManifest, PlanRequirement } from '@baton/contracts';

/** Compute rate assumed for a node that has not been measured: 20 GB/s, a CPU streaming weights
 * from DRAM (this project's 2-core test machines measure 15–26 GB/s; Apple M-series 60–400 GB/s). */
export const DEFAULT_COMPUTE_BYTES_PER_SEC = 20e9;
/** Link assumed when neither direction of a pair was measured: a local network. */
export const DEFAULT_LINK_RTT_MS = 0.5;
export const DEFAULT_LINK_BANDWIDTH_BYTES_PER_SEC = 1e9;
/** Process, engine and transport buffers per stage. */
export const RUNTIME_OVERHEAD_BYTES = 256 * 2 ** 20;
/** Tokens per prefill chunk the scratch buffers are sized for. */
export const PREFILL_CHUNK_TOKENS = 512;
/** Bytes on the last → first hop: the sampled token id. */
export const TOKEN_ID_BYTES = 4;

/** A model and requirement reduced to the numbers the planner needs, with prefix sums. */
export interface CostModel {
  layers: number;
  /** prefix[i] = Σ layerBytes[0..i). */
  layerPrefix: number[];
  embedBytes: number;
  headBytes: number;
  tiedEmbeddings: boolean;
  /** KV bytes of one layer held for contextTokens × sequences. */
  kvBytesPerLayer: number;
  /** KV bytes of one layer read per token (one sequence at the mean fill). */
  kvReadBytesPerLayer: number;
  /** Headroom of a stage that is not the last / is the last. */
  headroomBytes: number;
  lastHeadroomBytes: number;
  activationBytesPerToken: number;
  sequences: number;
}

export function buildCostModel(manifest: ModelManifest, requirement: PlanRequirement): CostModel {
  const layerPrefix = [0];
  for (const bytes of manifest.layerBytes) layerPrefix.push(layerPrefix[layerPrefix.length - 1]! + bytes);
  const kvPerTokenPerLayer = manifest.kvBytesPerToken[requirement.kvDType] / manifest.layers;
  const headroomBytes = RUNTIME_OVERHEAD_BYTES
    + PREFILL_CHUNK_TOKENS * (6 * manifest.activationBytesPerToken + 3 * 4 * manifest.feedForwardLength);
  return {
    layers: manifest.layers,
    layerPrefix,
    embedBytes: manifest.embedBytes,
    headBytes: manifest.headBytes,
    tiedEmbeddings: manifest.tiedEmbeddings,
    kvBytesPerLayer: kvPerTokenPerLayer * requirement.contextTokens * requirement.sequences,
    kvReadBytesPerLayer: kvPerTokenPerLayer * requirement.contextTokens / 2,
    headroomBytes,
    lastHeadroomBytes: headroomBytes + requirement.sequences * manifest.vocabSize * 4,
    activationBytesPerToken: manifest.activationBytesPerToken,
    sequences: requirement.sequences,
  };
}

export interface StageMemory {
  weightsBytes: number;
  kvBytes: number;
  headroomBytes: number;
  totalBytes: number;
}

export function stageMemory(cost: CostModel, start: number, end: number, first: boolean, last: boolean): StageMemory {
  let weightsBytes = cost.layerPrefix[end]! - cost.layerPrefix[start]!;
  if (first) weightsBytes += cost.embedBytes;
  if (last) weightsBytes += cost.headBytes + (cost.tiedEmbeddings && !first ? cost.embedBytes : 0);
  const kvBytes = (end - start) * cost.kvBytesPerLayer;
  const headroomBytes = last ? cost.lastHeadroomBytes : cost.headroomBytes;
  return { weightsBytes, kvBytes, headroomBytes, totalBytes: weightsBytes + kvBytes + headroomBytes };
}

/** Bytes a stage streams per token: its layers' weights, the head on the last stage, and KV reads. */
export function stageStreamBytes(cost: CostModel, start: number, end: number, last: boolean): number {
  let bytes = cost.layerPrefix[end]! - cost.layerPrefix[start]! + (end - start) * cost.kvReadBytesPerLayer;
  if (last) bytes += cost.headBytes + (cost.tiedEmbeddings ? cost.embedBytes : 0);
  return bytes;
}

export function stageMs(cost: CostModel, start: number, end: number, last: boolean, computeBytesPerSec: number): number {
  return (stageStreamBytes(cost, start, end, last) / computeBytesPerSec) * 1000;
}

/** Transfer part of a hop (what a link is busy for per token). */
export function hopTransferMs(bytesPerToken: number, bandwidthBytesPerSec: number): number {
  return (bytesPerToken / bandwidthBytesPerSec) * 1000;
}

export function hopMs(bytesPerToken: number, rttMs: number, bandwidthBytesPerSec: number): number {
  return rttMs / 2 + hopTransferMs(bytesPerToken, bandwidthBytesPerSec);
}

/**
 * The prediction from stage and hop times: one sequence goes around the ring in Σ stages + Σ hops;
 * with `sequences` in flight the stages overlap, so the slowest stage (or link transfer) bounds
 * the steady state: tokens/s = min(sequences / ring, 1 / bottleneck).
 */
export function predict(stageTimesMs: number[], hopTimesMs: number[], hopTransferTimesMs: number[], sequences: number): {
  msPerToken: number; tokensPerSecond: number; bottleneckMs: number;
} {
  const msPerToken = sum(stageTimesMs) + sum(hopTimesMs);
  const bottleneckMs = Math.max(0, ...stageTimesMs, ...hopTransferTimesMs);
  const tokensPerSecond = msPerToken > 0 ? Math.min(sequences / msPerToken, bottleneckMs > 0 ? 1 / bottleneckMs : Infinity) * 1000 : 0;
  return { msPerToken, tokensPerSecond, bottleneckMs };
}

function sum(values: number[]): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}
