// @baton/kv-core: pure KV-cache accounting for one model and plan — block math, chained block
// hashes and the prefix index, admission with prefix reuse and LRU eviction, shard event
// mirrors with gap detection, invariant checks. No I/O and no clock: callers pass `nowMs`.
export * from './blocks.js';
export * from './hash.js';
export * from './prefix-index.js';
export * from './messages.js';
export * from './cache.js';
export * from './invariants.js';
