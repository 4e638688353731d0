// @baton/gguf: GGUF v3 reading (header, metadata, tensor infos) and streaming writing, ggml block
// quantizers, random-weight model making with a byte-level BPE tokenizer, and the model manifest.
export * from './types.js';
export * from './values.js';
export * from './writer.js';
export * from './reader.js';
export * from './quant.js';
export * from './prng.js';
export * from './tokenizer.js';
export * from './random-model.js';
export * from './manifest.js';
