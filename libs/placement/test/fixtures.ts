// Model manifests and clusters for the placement tests: shaped like real models, built in code.
import type { ModelManifest, NodeId, PlacementLink, PlacementNode } from '@baton/contracts';

export const GB = 1e9;

export interface ModelShape {
  name?: string;
  layers: number;
  /** Weight bytes of every layer, or a per-layer list. */
  layerBytes: number | number[];
  embedBytes?: number;
  headBytes?: number;
  tiedEmbeddings?: boolean;
  /** KV bytes per token per layer at f16. */
  kvF16PerTokenPerLayer?: number;
  embeddingLength?: number;
  feedForwardLength?: number;
  vocabSize?: number;
  contextLength?: number;
}

export function manifest(shape: ModelShape): ModelManifest {
  const layerBytes = Array.isArray(shape.layerBytes) ? shape.layerBytes : Array.from({ length: shape.layers }, () => shape.layerBytes as number);
  const embd = shape.embeddingLength ?? 4096;
  const kv = shape.kvF16PerTokenPerLayer ?? 4096;
  const embedBytes = shape.embedBytes ?? 0.5 * GB;
  const headBytes = shape.headBytes ?? 0.5 * GB;
  return {
    name: shape.name ?? 'test-model',
    arch: 'llama',
    fileType: 'Q4_K_M',
    layers: shape.layers,
    embeddingLength: embd,
    feedForwardLength: shape.feedForwardLength ?? 4 * embd,
    headCount: 32,
    headCountKv: 8,
    headDim: 128,
    contextLength: shape.contextLength ?? 131072,
    vocabSize: shape.vocabSize ?? 32000,
    fileBytes: layerBytes.reduce((a, b) => a + b, 0) + embedBytes + headBytes,
    layerBytes,
    embedBytes,
    headBytes,
    tiedEmbeddings: shape.tiedEmbeddings ?? false,
    kvBytesPerToken: { f32: 2 * kv * shape.layers, f16: kv * shape.layers, q8_0: (kv * shape.layers * 17) / 32 },
    activationBytesPerToken: embd * 4,
  };
}

/** Llama 3 70B at Q4_K_M, approximately: 80 layers of ~0.5 GB, GQA 8 KV heads of 128. */
export const LLAMA_70B = manifest({
  name: 'llama-3-70b-q4_k_m',
  layers: 80,
  layerBytes: 0.5 * GB,
  embedBytes: 0.59 * GB,
  headBytes: 0.86 * GB,
  kvF16PerTokenPerLayer: 2 * 8 * 128 * 2,
  embeddingLength: 8192,
  feedForwardLength: 28672,
  vocabSize: 128256,
  contextLength: 131072,
});

export function node(id: string, memoryGB: number, computeGBps: number | null = 100): PlacementNode {
  return { id: id as NodeId, memoryBytes: memoryGB * GB, computeBytesPerSec: computeGBps === null ? null : computeGBps * GB };
}

export function link(from: string, to: string, rttMs: number, bandwidthGBps = 1): PlacementLink {
  return { from: from as NodeId, to: to as NodeId, rttMs, bandwidthBytesPerSec: bandwidthGBps * GB };
}

/** A seeded PRNG (mulberry32): the same clusters on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
