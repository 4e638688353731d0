// Loads the compiled addon (build/Release/baton_engine.node) and types its raw surface. Only
// engine.ts calls these functions: they expect arguments already validated and flattened.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Raw engine object made by the addon (cpp/addon.cc, class NativeEngine). */
export interface NativeEngine {
  info(): NativeEngineInfo;
  forward(
    segments: Float64Array,
    output: number,
    tokens: Int32Array | null,
    hidden: Float32Array | null,
    history: Int32Array | null,
    hiddenOut: Float32Array | null,
    logitsOut: Float32Array | null,
    tokensOut: Int32Array | null,
  ): Promise<void>;
  measureDecode(steps: number): Promise<{ bytesPerSec: number; secondsPerToken: number }>;
  memory(): { weightsMappedBytes: number; weightsResidentBytes: number; kvPoolBytes: number; scratchBytes: number; fileBytes: number };
  kvAllocate(sequenceId: number, tokens: number): void;
  kvExtend(sequenceId: number, tokens: number): void;
  kvFree(sequenceId: number): void;
  kvTruncate(sequenceId: number, tokens: number): void;
  kvCopyPrefix(destination: number, source: number, tokens: number): void;
  kvStats(): NativeKvStats;
  close(): void;
}

export interface NativeEngineInfo {
  path: string;
  arch: string;
  layers: number;
  layerStart: number;
  layerEnd: number;
  embeddingLength: number;
  feedForwardLength: number;
  headCount: number;
  headCountKv: number;
  headDim: number;
  vocabSize: number;
  contextLength: number;
  maxContext: number;
  maxBatchTokens: number;
  kvTokens: number;
  kvDType: 'f32' | 'f16' | 'q8_0';
  threads: number;
  tiedEmbeddings: boolean;
  ropeNeox: boolean;
  kernels: string;
  weightBytesPerToken: number;
}

export interface NativeKvStats {
  dtype: 'f32' | 'f16' | 'q8_0';
  blockTokens: number;
  blockBytes: number;
  blocksTotal: number;
  blocksUsed: number;
  poolBytes: number;
  sequences: { sequenceId: number; tokens: number; capacity: number; blocks: number }[];
}

export interface NativeGgufInfo {
  version: number;
  alignment: number;
  dataOffset: number;
  fileBytes: number;
  metadata: Record<string, string | number | bigint | boolean | (string | number)[]>;
  tensors: { name: string; shape: number[]; type: string; offset: number; bytes: number }[];
}

export interface NativeLoadOptions {
  path: string;
  layerStart: number;
  layerEnd: number;
  threads: number;
  kvDType: 'f32' | 'f16' | 'q8_0';
  kvTokens: number;
  maxBatchTokens: number;
  maxContext: number;
}

export interface NativeAddon {
  loadEngine(options: NativeLoadOptions): Promise<NativeEngine>;
  readGguf(path: string): Promise<NativeGgufInfo>;
  checkGgufBuffer(bytes: Uint8Array): string | null;
  measureReadBandwidth(bytes: number, passes: number, threads: number): Promise<number>;
  kernelsName(): string;
  forceScalarKernels(scalar: boolean): string;
}

/** Path of the compiled addon, relative to this module (works from src/ and dist/). */
export const ADDON_PATH = fileURLToPath(new URL('../build/Release/baton_engine.node', import.meta.url));

let cached: NativeAddon | undefined;

/** The addon, loaded on first use. Throws an error saying how to build it when it is missing. */
export function addon(): NativeAddon {
  if (cached) return cached;
  if (!existsSync(ADDON_PATH)) {
    throw new Error(`the native engine is not built (${ADDON_PATH} is missing): run \`npm run setup\` (or \`node infra/scripts/build-native.mjs engine\`) in the Baton checkout`);
  }
  const require = createRequire(import.meta.url);
  cached = require(ADDON_PATH) as NativeAddon;
  return cached;
}
