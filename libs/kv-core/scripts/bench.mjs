// Micro-benchmark of the pure core, each figure next to a reference measured in the same run.
// Run: npx tsc -b libs/kv-core && node libs/kv-core/scripts/bench.mjs
import { createHash } from 'node:crypto';
import { KvCacheCore, chainBlockHashes } from '../dist/index.js';

const stages = [0, 1, 2].map((stage) => ({ stage, nodeId: `node-${stage}`, nodeName: `node-${stage}`, layerStart: stage * 8, layerEnd: stage * 8 + 8, kvBudgetBytes: 0, blockBytes: 1, capacityBlocks: 20_000 }));
const tokens = (n, seed) => { let x = seed * 2654435761 >>> 0 || 1; return Array.from({ length: n }, () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x % 32000; }); };
function time(label, n, fn) {
  for (let i = 0; i < Math.min(n, 200); i++) fn(i);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  const us = Number(process.hrtime.bigint() - t0) / 1e3 / n;
  console.log(`${label.padEnd(62)} ${us.toFixed(2).padStart(9)} µs/op`);
  return us;
}

const prompt = tokens(1024, 1);
time('chainBlockHashes, 1,024 tokens (64 blocks)', 2000, () => chainBlockHashes(prompt));
const bytes = new Uint8Array(80 * 64);
time('reference: node:crypto sha256 of the same 64 × 80 bytes', 2000, () => { for (let b = 0; b < 64; b++) createHash('sha256').update(bytes.subarray(b * 80, b * 80 + 80)).digest(); });

// Admission + release with prefix reuse: 200 conversations × growing turns on a 3-stage plan.
const core = new KvCacheCore({ modelId: 'm', planId: 'p', stages });
const histories = Array.from({ length: 200 }, (_, i) => tokens(1000, i + 10));
let now = 0;
const shardSeq = [0, 0, 0];
const emit = (stage, kind, sequenceId, tokens) => core.applyShardEvent({ modelId: 'm', planId: 'p', nodeId: `node-${stage}`, stage, epoch: 'e1', seq: ++shardSeq[stage], atMs: 0, kind, sequenceId, tokens, blocks: Math.ceil(tokens / 16) });
let reused = 0;
time('admit 1,020-token follow-up (+ shard events) + release, 200 convs', 4000, (i) => {
  const history = histories[i % 200];
  const promptIds = [...history, ...tokens(20, i)];
  const verdict = core.admit({ requestId: `r${i}`, tokens: promptIds, maxTokens: 64 }, ++now);
  if (verdict.verdict !== 'admitted') throw new Error(verdict.verdict);
  if (verdict.cachedTokens > 0) reused++;
  for (let s = 0; s < 3; s++) {
    if (verdict.reuse.mode === 'in-place') emit(s, 'truncated', verdict.sequenceId, verdict.cachedTokens);
    emit(s, 'stored', verdict.sequenceId, history.length);
  }
  core.release({ sequenceId: verdict.sequenceId, tokens: history }, now);
});
console.log(`  (${reused} of ${4000 + 200} admissions reused a cached prefix)`);

// Shard events: stored events of decode steps.
const epoch = 'e1';
let seq = 0;
const events = Array.from({ length: 50_200 }, (_, i) => ({ modelId: 'm', planId: 'p', nodeId: 'node-0', stage: 0, epoch, seq: ++shardSeq[0], atMs: 0, kind: 'stored', sequenceId: 1_000_000 + (i % 50), tokens: 16 + Math.floor(i / 50), blocks: 1 + Math.floor(Math.floor(i / 50) / 16) }));
let k = 0;
time('applyShardEvent (stored), 50 streams', 50_000, () => core.applyShardEvent(events[k++]));
const json = events.map((e) => JSON.stringify(e));
let j = 0;
time('reference: JSON.parse of the same event', 50_000, () => JSON.parse(json[j++ % json.length]));
console.log(`ledger: ${core.sequences().length} sequences; used blocks stage 0: ${core.usedBlocks(0)}`);
