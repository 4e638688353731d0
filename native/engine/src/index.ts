// @baton/engine: the native inference engine (C++ via node-addon-api) — one layer range of a
// GGUF llama / qwen2 / qwen3 model with its paged KV pool and sampler — and a TypeScript API
// over it. See engine.ts for the API and its buffer lifetimes.
export {
  Engine,
  EngineError,
  readGgufInfo,
  checkGgufBytes,
  kernelsName,
  measureReadBandwidth,
  type EngineOptions,
  type EngineInfo,
  type EngineMemory,
  type ComputeRate,
  type ForwardOutput,
  type ForwardRequest,
  type ForwardResult,
  type ForwardSequence,
  type KvStats,
  type SamplingOptions,
} from './engine.js';
export { LocalPipeline, parseSplit, type LayerRange } from './pipeline.js';
export { ADDON_PATH, type NativeGgufInfo } from './native.js';
