// KV block math: how many 16-token blocks a number of tokens needs, how many bytes one block
// takes on a stage (its layers' KV for 16 tokens), and how many blocks fit in a stage's KV
// budget from the plan.
import {
  BatonError, ErrorCode, KV_BLOCK_TOKENS, KV_DTYPES, type KvDType, type ModelManifest, type NodeId, type Plan,
} from '@baton/contracts';

function checkCount(what: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${what} must be a non-negative integer, got ${value}`);
}

/** Blocks needed to hold KV for `tokens` positions: ceil(tokens / 16). */
export function blocksForTokens(tokens: number): number {
  checkCount('token count', tokens);
  return Math.ceil(tokens / KV_BLOCK_TOKENS);
}

/** Whole (full) blocks in `tokens` positions: floor(tokens / 16). Only full blocks are hashed and shared. */
export function fullBlocks(tokens: number): number {
  checkCount('token count', tokens);
  return Math.floor(tokens / KV_BLOCK_TOKENS);
}

/** Token positions `blocks` blocks hold. */
export function tokensForBlocks(blocks: number): number {
  checkCount('block count', blocks);
  return blocks * KV_BLOCK_TOKENS;
}

/**
 * KV bytes of one token in one layer for a dtype. The manifest gives the sum over all layers;
 * every layer of the supported architectures has the same KV width, so this is the sum divided
 * by the layer count (rounded up, so a budget is never over-counted).
 */
export function kvBytesPerTokenPerLayer(manifest: Pick<ModelManifest, 'layers' | 'kvBytesPerToken' | 'name'>, kvDType: KvDType): number {
  if (!KV_DTYPES.includes(kvDType)) {
    throw new BatonError(ErrorCode.VALIDATION, `unknown KV dtype ${JSON.stringify(kvDType)}: use one of ${KV_DTYPES.join(', ')}`);
  }
  const total = manifest.kvBytesPerToken?.[kvDType];
  if (!Number.isFinite(total) || total <= 0) {
    throw new BatonError(ErrorCode.VALIDATION, `model ${manifest.name} has no KV size for dtype ${kvDType} (kvBytesPerToken.${kvDType} = ${total}); re-read the model's manifest`);
  }
  if (!Number.isSafeInteger(manifest.layers) || manifest.layers <= 0) {
    throw new BatonError(ErrorCode.VALIDATION, `model ${manifest.name} has ${manifest.layers} layers; re-read the model's manifest`);
  }
  return Math.ceil(total / manifest.layers);
}

/** Bytes of one block on a stage holding `layerCount` layers: 16 × bytes per token per layer × layers. */
export function kvBlockBytes(bytesPerTokenPerLayer: number, layerCount: number): number {
  checkCount('bytes per token per layer', bytesPerTokenPerLayer);
  checkCount('layer count', layerCount);
  return KV_BLOCK_TOKENS * bytesPerTokenPerLayer * layerCount;
}

/** Blocks that fit in a KV budget: floor(budget / block bytes); 0 for a stage with no layers. */
export function capacityBlocks(kvBudgetBytes: number, blockBytes: number): number {
  checkCount('KV budget bytes', kvBudgetBytes);
  checkCount('block bytes', blockBytes);
  return blockBytes === 0 ? 0 : Math.floor(kvBudgetBytes / blockBytes);
}

/** One stage's KV pool as the manager sees it. */
export interface StageKvCapacity {
  /** Index in the plan's `stages`. */
  stage: number;
  nodeId: NodeId;
  /** Shown in messages ("… on node mini-1"); the node id when no name is known. */
  nodeName: string;
  layerStart: number;
  layerEnd: number;
  kvBudgetBytes: number;
  blockBytes: number;
  capacityBlocks: number;
}

/**
 * Each stage's KV capacity in blocks for a model and plan: the plan's per-stage KV budget
 * (`stage.kvBytes`) over the stage's block size for the plan's KV dtype.
 * `nodeNames` maps node ids to display names for messages.
 */
export function stageCapacities(
  manifest: Pick<ModelManifest, 'layers' | 'kvBytesPerToken' | 'name'>,
  plan: Pick<Plan, 'stages' | 'requirement' | 'modelId'>,
  nodeNames: ReadonlyMap<string, string> | Record<string, string> = {},
): StageKvCapacity[] {
  if (plan.stages.length === 0) throw new BatonError(ErrorCode.VALIDATION, `plan for ${plan.modelId} has no stages`);
  const perLayer = kvBytesPerTokenPerLayer(manifest, plan.requirement.kvDType);
  const nameOf = (id: string): string =>
    (nodeNames instanceof Map ? nodeNames.get(id) : (nodeNames as Record<string, string>)[id]) ?? id;
  return plan.stages.map((stage, index) => {
    const { layerStart, layerEnd } = stage;
    if (!Number.isSafeInteger(layerStart) || !Number.isSafeInteger(layerEnd) || layerStart < 0 || layerEnd > manifest.layers || layerStart >= layerEnd) {
      throw new BatonError(
        ErrorCode.VALIDATION,
        `plan stage ${index} on node ${stage.nodeId} has layers [${layerStart}, ${layerEnd}) outside model ${manifest.name}'s [0, ${manifest.layers}); replan the model`,
      );
    }
    if (!Number.isSafeInteger(stage.kvBytes) || stage.kvBytes < 0) {
      throw new BatonError(ErrorCode.VALIDATION, `plan stage ${index} on node ${stage.nodeId} has KV budget ${stage.kvBytes} bytes; replan the model`);
    }
    const blockBytes = kvBlockBytes(perLayer, layerEnd - layerStart);
    return {
      stage: index,
      nodeId: stage.nodeId,
      nodeName: nameOf(stage.nodeId),
      layerStart,
      layerEnd,
      kvBudgetBytes: stage.kvBytes,
      blockBytes,
      capacityBlocks: capacityBlocks(stage.kvBytes, blockBytes),
    };
  });
}
