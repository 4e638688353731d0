import { describe, expect, it } from 'vitest';
import { nodeId, planId, type ModelManifest, type Plan } from '@baton/contracts';
import { blocksForTokens, capacityBlocks, fullBlocks, kvBlockBytes, kvBytesPerTokenPerLayer, stageCapacities, tokensForBlocks } from './blocks.js';

// 16 layers, 2 KV heads × 128 dims: K+V per token per layer = 2 × 256 values.
const manifest: Pick<ModelManifest, 'layers' | 'kvBytesPerToken' | 'name'> = {
  name: 'demo',
  layers: 16,
  kvBytesPerToken: { f32: 16 * 2 * 256 * 4, f16: 16 * 2 * 256 * 2, q8_0: 16 * 2 * (256 / 32) * 34 },
};

function planWith(kvDType: 'f16' | 'q8_0' | 'f32', stages: Array<[string, number, number, number]>): Pick<Plan, 'stages' | 'requirement' | 'modelId'> {
  return {
    modelId: 'demo',
    requirement: { contextTokens: 4096, sequences: 4, kvDType, objective: 'latency' },
    stages: stages.map(([node, layerStart, layerEnd, kvBytes]) => ({
      nodeId: nodeId(node), layerStart, layerEnd, kvBytes, weightsBytes: 0, headroomBytes: 0, memoryBytes: kvBytes, memoryBudgetBytes: kvBytes,
      computeBytesPerSec: 1e9, computeMeasured: false, predictedMs: 0,
    })),
  };
}

describe('block math', () => {
  it.each([
    [0, 0, 0], [1, 1, 0], [15, 1, 0], [16, 1, 1], [17, 2, 1], [32, 2, 2], [1000, 63, 62], [1024, 64, 64],
  ])('%i tokens need %i blocks and fill %i', (tokens, blocks, full) => {
    expect(blocksForTokens(tokens)).toBe(blocks);
    expect(fullBlocks(tokens)).toBe(full);
  });

  it('converts blocks to tokens', () => {
    expect(tokensForBlocks(0)).toBe(0);
    expect(tokensForBlocks(1240)).toBe(19_840);
  });

  it.each([
    ['f32', 2048], ['f16', 1024], ['q8_0', 544],
  ] as const)('KV bytes per token per layer for %s is %i', (dtype, bytes) => {
    expect(kvBytesPerTokenPerLayer(manifest, dtype)).toBe(bytes);
  });

  it.each([
    [1024, 10, 163_840], [544, 10, 87_040], [1024, 1, 16_384], [1024, 0, 0],
  ])('a block of %i bytes/token/layer over %i layers is %i bytes', (perLayer, layers, bytes) => {
    expect(kvBlockBytes(perLayer, layers)).toBe(bytes);
  });

  it.each([
    [100_000_000, 163_840, 610], [163_839, 163_840, 0], [163_840, 163_840, 1], [5, 0, 0],
  ])('a budget of %i bytes holds %i-byte blocks ×%i', (budget, block, blocks) => {
    expect(capacityBlocks(budget, block)).toBe(blocks);
  });

  it('refuses negative or fractional counts', () => {
    expect(() => blocksForTokens(-1)).toThrow(/non-negative integer/);
    expect(() => blocksForTokens(1.5)).toThrow(/non-negative integer/);
  });

  it('gives each stage its capacity from the plan budget and its layer count', () => {
    const stages = stageCapacities(manifest, planWith('f16', [['mini-1', 0, 10, 100_000_000], ['mini-2', 10, 16, 100_000_000]]), { 'mini-1': 'Mac mini 1' });
    expect(stages).toEqual([
      { stage: 0, nodeId: 'mini-1', nodeName: 'Mac mini 1', layerStart: 0, layerEnd: 10, kvBudgetBytes: 100_000_000, blockBytes: 163_840, capacityBlocks: 610 },
      { stage: 1, nodeId: 'mini-2', nodeName: 'mini-2', layerStart: 10, layerEnd: 16, kvBudgetBytes: 100_000_000, blockBytes: 98_304, capacityBlocks: 1017 },
    ]);
  });

  it('q8_0 KV fits about twice the blocks of f16', () => {
    const [f16] = stageCapacities(manifest, planWith('f16', [['a', 0, 16, 50_000_000]]));
    const [q8] = stageCapacities(manifest, planWith('q8_0', [['a', 0, 16, 50_000_000]]));
    expect(f16!.capacityBlocks).toBe(190);
    expect(q8!.capacityBlocks).toBe(359);
  });

  it.each([
    [[['a', 0, 17, 1000]], /layers \[0, 17\) outside model demo's \[0, 16\)/],
    [[['a', 4, 4, 1000]], /layers \[4, 4\)/],
    [[['a', 0, 16, -1]], /KV budget -1 bytes/],
    [[], /has no stages/],
  ] as const)('refuses a bad plan %#', (stages, message) => {
    expect(() => stageCapacities(manifest, planWith('f16', stages as unknown as Array<[string, number, number, number]>))).toThrow(message);
  });

  it('refuses a manifest without a KV size for the dtype', () => {
    const broken = { ...manifest, kvBytesPerToken: { ...manifest.kvBytesPerToken, q8_0: 0 } };
    expect(() => kvBytesPerTokenPerLayer(broken, 'q8_0')).toThrow(/no KV size for dtype q8_0/);
    expect(() => kvBytesPerTokenPerLayer(manifest, 'q4' as 'f16')).toThrow(/unknown KV dtype "q4"/);
    expect(planId('p')).toBe('p');
  });
});
