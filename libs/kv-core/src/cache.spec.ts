import { describe, expect, it } from 'vitest';
import { KV_BLOCK_TOKENS, requestId, type KvAdmitResponse, type KvAdmitted, type SequenceId } from '@baton/contracts';
import { KvCacheCore } from './cache.js';
import { assertKvInvariants, kvAccounting } from './invariants.js';
import { formatCount, formatKvFullMessage } from './messages.js';
import { configOf, SimCluster, tokens } from '../test/shard-sim.js';

let requests = 0;
function admit(core: KvCacheCore, prompt: number[], maxTokens: number, nowMs: number): KvAdmitResponse {
  return core.admit({ requestId: requestId(`req-${++requests}`), tokens: prompt, maxTokens }, nowMs);
}

function admitted(response: KvAdmitResponse): KvAdmitted {
  if (response.verdict !== 'admitted') throw new Error(`expected admitted, got ${response.verdict}: ${'message' in response ? response.message : ''}`);
  return response;
}

/** Admits, prefills and decodes `generate` tokens on the shards, and (by default) releases keeping the KV. */
function converse(
  cluster: SimCluster,
  prompt: number[],
  { maxTokens = 32, generate = 8, nowMs = 0, release = true, keep = true }: { maxTokens?: number; generate?: number; nowMs?: number; release?: boolean; keep?: boolean } = {},
): { admission: KvAdmitted; held: number[]; id: SequenceId } {
  const admission = admitted(admit(cluster.core, prompt, maxTokens, nowMs));
  cluster.send(admission.commands);
  const id = admission.sequenceId;
  cluster.store(id, prompt.length);
  const output = tokens(generate, 1000 + requests);
  // Every generated token but the last is fed back through the model.
  for (let i = 1; i < generate; i++) cluster.store(id, prompt.length + i);
  cluster.deliverAll();
  const held = [...prompt, ...output.slice(0, Math.max(0, generate - 1))];
  if (release) cluster.send(cluster.core.release({ sequenceId: id, tokens: held, keep }, nowMs).commands);
  cluster.deliverAll();
  return { admission, held, id };
}

function setup(capacities: number[], names?: string[]): { core: KvCacheCore; cluster: SimCluster } {
  const core = new KvCacheCore(configOf(capacities, names));
  return { core, cluster: new SimCluster(core) };
}

describe('admission without a cached prefix', () => {
  it.each([
    // prompt, maxTokens, reserved blocks
    [1, 0, 1],
    [16, 0, 1],
    [16, 1, 2],
    [100, 28, 8],
    [1000, 200, 75],
  ])('a %i-token prompt with max_tokens %i reserves %i blocks on every stage', (promptLength, maxTokens, blocks) => {
    const { core } = setup([200, 100]);
    const response = admitted(admit(core, tokens(promptLength), maxTokens, 5));
    expect(response).toMatchObject({ cachedTokens: 0, prefillTokens: promptLength, reservedBlocks: blocks, reuse: { mode: 'none' }, evicted: [], commands: [] });
    expect(core.usedBlocks(0)).toBe(blocks);
    expect(core.usedBlocks(1)).toBe(blocks);
    assertKvInvariants(core);
  });

  it('gives each admitted sequence its own id', () => {
    const { core } = setup([100]);
    const ids = [1, 2, 3].map(() => admitted(admit(core, tokens(20, requests), 4, 0)).sequenceId);
    expect(new Set(ids).size).toBe(3);
  });

  it('refuses bad input with a message', () => {
    const { core } = setup([100]);
    expect(() => admit(core, [], 4, 0)).toThrow(/no tokens/);
    expect(() => admit(core, [1, -2], 4, 0)).toThrow(/tokens\[1\] is -2/);
    expect(() => admit(core, [1, 2], -1, 0)).toThrow(/maxTokens -1/);
  });
});

describe('admission with a cached prefix', () => {
  it.each([
    // prompt tokens of the first turn, tokens the follow-up adds (the first turn generates 10)
    [100, 20],
    [1000, 20],
    [54, 30],
    [40, 40],
  ])('a follow-up turn over a %i-token history (+%i new) reuses the idle sequence in place', (historyLength, added) => {
    const { core, cluster } = setup([400, 300]);
    const first = converse(cluster, tokens(historyLength, 7), { generate: 10 });
    // The next turn resends everything the sequence holds, plus new tokens.
    const followUp = [...first.held, ...tokens(added, 8)];
    const expected = Math.floor(first.held.length / KV_BLOCK_TOKENS) * KV_BLOCK_TOKENS;
    const response = admitted(admit(core, followUp, 16, 100));
    expect(response.sequenceId).toBe(first.id);
    expect(response.cachedTokens).toBe(expected);
    expect(response.prefillTokens).toBe(followUp.length - expected);
    expect(response.reuse).toEqual({ mode: 'in-place', sequenceId: first.id, tokens: expected });
    expect(response.commands).toEqual([0, 1].map((stage) => expect.objectContaining({ kind: 'truncate', stage, sequenceId: first.id, tokens: expected })));
    expect(core.sequence(first.id)?.state).toBe('running');
    cluster.send(response.commands);
    cluster.deliverAll();
    assertKvInvariants(core);
  });

  it.each([
    // the prompt diverges from the cached history in block k → k whole blocks are reused
    [0, 0], [1, 16], [3, 48], [5, 80],
  ])('a prompt that diverges in block %i reuses %i tokens', (k, expected) => {
    const { core, cluster } = setup([400]);
    const first = converse(cluster, tokens(100, 3), { generate: 1 });
    const prompt = [...first.held];
    prompt[k * KV_BLOCK_TOKENS + 3] = 31_999 - prompt[k * KV_BLOCK_TOKENS + 3]!;
    const response = admitted(admit(core, prompt, 10, 50));
    expect(response.cachedTokens).toBe(expected);
    expect(response.reuse.mode).toBe(expected === 0 ? 'none' : 'in-place');
  });

  it('leaves at least one prompt token to prefill when the whole prompt is cached', () => {
    const { core, cluster } = setup([400]);
    const first = converse(cluster, tokens(64, 4), { generate: 1 });
    expect(first.held).toHaveLength(64);
    const response = admitted(admit(core, first.held, 10, 50));
    expect(response.cachedTokens).toBe(63);
    expect(response.prefillTokens).toBe(1);
  });

  it('copies the prefix of a running sequence once its shards have stored it', () => {
    const { core, cluster } = setup([400, 400]);
    const system = tokens(80, 5);
    const first = admitted(admit(core, [...system, ...tokens(10, 6)], 20, 0));
    cluster.send(first.commands);
    // Before the shards report the prefill, nothing can be copied.
    expect(admitted(admit(core, [...system, ...tokens(12, 9)], 20, 1)).cachedTokens).toBe(0);
    cluster.store(first.sequenceId, 90);
    cluster.deliverAll();
    expect(core.lookup([...system, ...tokens(12, 10)])).toEqual({ cachedTokens: 80, matchedBlocks: 5, holder: { sequenceId: first.sequenceId, state: 'running' }, mode: 'copy' });
    const second = admitted(admit(core, [...system, ...tokens(12, 10)], 20, 2));
    expect(second.sequenceId).not.toBe(first.sequenceId);
    expect(second.cachedTokens).toBe(80);
    expect(second.reuse).toEqual({ mode: 'copy', fromSequenceId: first.sequenceId, tokens: 80 });
    expect(second.commands.map((c) => [c.kind, c.stage])).toEqual([['copy', 0], ['copy', 1]]);
    cluster.send(second.commands);
    cluster.deliverAll();
    expect(cluster.overflows()).toEqual([]);
    assertKvInvariants(core);
  });

  it('reuses no more than every shard reports holding', () => {
    const { core, cluster } = setup([400, 400]);
    const first = admitted(admit(core, tokens(100, 11), 20, 0));
    cluster.shards[0]!.store(first.sequenceId, 100);
    cluster.shards[1]!.store(first.sequenceId, 40);
    cluster.deliverAll();
    expect(core.lookup([...tokens(100, 11), 1, 2, 3]).cachedTokens).toBe(40);
  });

  it('does not trust old content after an in-place truncate until the shard confirms it', () => {
    const { core, cluster } = setup([400]);
    const first = converse(cluster, tokens(200, 12), { generate: 1 });
    const followUp = [...first.held.slice(0, 64), ...tokens(100, 13)];
    const reuse = admitted(admit(core, followUp, 10, 5));
    expect(reuse.cachedTokens).toBe(64);
    // The truncate has not reached the shard: its report still says 200 tokens (of the old content).
    expect(core.lookup([...followUp, 9]).cachedTokens).toBe(64);
    cluster.send(reuse.commands);
    cluster.store(reuse.sequenceId, followUp.length);
    cluster.deliverAll();
    expect(core.lookup([...followUp, 9]).cachedTokens).toBe(followUp.length - followUp.length % 16);
  });

  it('prefers an idle holder (in place) over a running one with the same prefix', () => {
    const { core, cluster } = setup([400]);
    const shared = tokens(64, 14);
    const running = converse(cluster, [...shared, ...tokens(7, 16)], { generate: 1, release: false });
    // Copies the running one's prefix, then finishes: idle, holding the same 64 tokens.
    const idle = converse(cluster, [...shared, ...tokens(5, 15)], { generate: 1 });
    expect(idle.admission.reuse).toEqual({ mode: 'copy', fromSequenceId: running.id, tokens: 64 });
    const response = admitted(admit(core, [...shared, 1, 2, 3], 8, 10));
    expect(response.reuse).toEqual({ mode: 'in-place', sequenceId: idle.id, tokens: 64 });
    expect(running.id).not.toBe(idle.id);
  });
});

describe('eviction', () => {
  /** Four idle sequences of 4 blocks each, last used at the given times; 4 blocks free of 20. */
  function fourIdle(lastUsed: number[]): { core: KvCacheCore; cluster: SimCluster; ids: SequenceId[] } {
    const { core, cluster } = setup([20, 24]);
    const ids = lastUsed.map((nowMs, i) => converse(cluster, tokens(64, 100 + i), { maxTokens: 0, generate: 1, nowMs }).id);
    expect(core.usedBlocks(0)).toBe(16);
    return { core, cluster, ids };
  }

  it.each([
    // blocks the new request needs → which idle sequences go (by position in `lastUsed`)
    [4, []],
    [5, [0]],
    [8, [0]],
    [9, [0, 2]],
    [16, [0, 2, 1]],
    [20, [0, 2, 1, 3]],
  ])('a request needing %i blocks evicts the least recently used idle sequences %j', (needBlocks, victims) => {
    const { core, cluster, ids } = fourIdle([10, 30, 20, 40]);
    const response = admitted(admit(core, tokens(needBlocks * 16 - 8, 999), 8, 100));
    const expected = victims.map((i) => ids[i]!);
    expect(response.evicted).toEqual(expected);
    expect(response.commands).toEqual(expected.flatMap((id) => [0, 1].map((stage) => expect.objectContaining({ kind: 'free', stage, sequenceId: id }))));
    for (const id of expected) expect(core.sequence(id)).toBeUndefined();
    cluster.send(response.commands);
    cluster.store(response.sequenceId, needBlocks * 16 - 8);
    cluster.deliverAll();
    expect(cluster.overflows()).toEqual([]);
    assertKvInvariants(core);
  });

  it('touching a cached sequence (reusing it) makes it recently used', () => {
    const { core, cluster, ids } = fourIdle([10, 30, 20, 40]);
    // Reuse sequence 0's prefix via copy? No: in place, which turns it running, then release it again at t=50.
    const again = converse(cluster, [...tokens(64, 100), 7], { maxTokens: 0, generate: 1, nowMs: 50 });
    expect(again.id).toBe(ids[0]);
    const response = admitted(admit(core, tokens(5 * 16 - 8, 998), 8, 60));
    expect(response.evicted).toEqual([ids[2]]);
  });

  it('never evicts a running sequence: it queues with the numbers instead, evicting nothing', () => {
    const { core, cluster } = setup([20], ['mini-1']);
    converse(cluster, tokens(200, 1), { maxTokens: 56, generate: 1, release: false }); // 16 blocks running
    const idle = converse(cluster, tokens(64, 2), { maxTokens: 0, generate: 1, nowMs: 5 }); // 4 blocks idle
    const response = admit(core, tokens(100, 3), 20, 10); // 8 blocks
    expect(response.verdict).toBe('queue');
    if (response.verdict !== 'queue') return;
    expect(response.shortage).toEqual({ nodeId: 'mini-1', nodeName: 'mini-1', stage: 0, capacityBlocks: 20, usedBlocks: 20, runningBlocks: 16, cachedIdleBlocks: 4, neededBlocks: 8 });
    expect(response.message).toBe('KV cache full: 20 of 20 blocks in use on node mini-1; retry later or lower max_tokens');
    expect(core.sequence(idle.id)?.state).toBe('idle');
    // Lowering max_tokens makes it fit by evicting the idle one.
    const smaller = admitted(admit(core, tokens(50, 3), 14, 11));
    expect(smaller.evicted).toEqual([idle.id]);
  });

  it('reports the stage that is short when stages differ', () => {
    const { core, cluster } = setup([100, 12], ['big', 'small']);
    converse(cluster, tokens(150, 1), { maxTokens: 10, generate: 1, release: false }); // 10 blocks
    const response = admit(core, tokens(40, 2), 0, 1); // 3 blocks
    expect(response.verdict).toBe('queue');
    if (response.verdict !== 'queue') return;
    expect(response.shortage).toMatchObject({ nodeId: 'small', capacityBlocks: 12, usedBlocks: 10, neededBlocks: 3 });
    expect(response.message).toBe('KV cache full: 10 of 12 blocks in use on node small; retry later or lower max_tokens');
  });

  it('only evicts sequences that help the stage that is short', () => {
    const { core, cluster } = setup([30, 30]);
    const a = converse(cluster, tokens(64, 1), { maxTokens: 0, generate: 1, nowMs: 1 }).id; // 4 blocks, oldest
    const b = converse(cluster, tokens(64, 2), { maxTokens: 0, generate: 1, nowMs: 2 }).id;
    // a loses its blocks on stage 1 (the shard cut it back to nothing) → it only holds stage 0 now.
    cluster.shards[1]!.apply({ ...cluster.shards[1]!.ref, kind: 'truncate', sequenceId: a, tokens: 0 });
    cluster.deliverAll();
    converse(cluster, tokens(300, 3), { maxTokens: 52, generate: 1, release: false, nowMs: 3 }); // 22 blocks running
    // Stage 0: 30 - 4 - 4 - 22 = 0 free; stage 1: 30 - 0 - 4 - 22 = 4 free. Need 8 → stage 0 short by 8, stage 1 by 4.
    const response = admitted(admit(core, tokens(120, 4), 8, 10));
    expect(response.evicted).toEqual([a, b]);
  });
});

describe('a request larger than the whole cache', () => {
  it.each([
    // capacities, prompt, maxTokens, the named node, its capacity, needed blocks
    [[100], 1600, 1, 'node-0', 100, 101],
    [[1240, 300], 5000, 200, 'node-1', 300, 325],
    [[50, 40, 60], 600, 100, 'node-1', 40, 44],
  ])('with capacities %j, a %i-token prompt + %i is refused at once', (capacities, promptLength, maxTokens, node, capacity, needed) => {
    const { core } = setup(capacities);
    const response = admit(core, tokens(promptLength), maxTokens, 0);
    expect(response.verdict).toBe('refused');
    if (response.verdict !== 'refused') return;
    expect(response.shortage).toMatchObject({ nodeId: node, capacityBlocks: capacity, neededBlocks: needed });
    expect(response.maxSequenceTokens).toBe(capacity * 16);
    expect(response.message).toBe(
      `request needs ${formatCount(needed)} KV blocks (${formatCount(promptLength)} prompt + ${formatCount(maxTokens)} max_tokens = ${formatCount(promptLength + maxTokens)} tokens) ` +
      `but node ${node} holds at most ${formatCount(capacity)} blocks (${formatCount(capacity * 16)} tokens) for this model; shorten the prompt or lower max_tokens`,
    );
    expect(core.sequences()).toEqual([]);
  });

  it('exactly the whole capacity is admitted', () => {
    const { core } = setup([10]);
    expect(admit(core, tokens(150), 10, 0).verdict).toBe('admitted');
  });
});

describe('messages', () => {
  it.each([[0, '0'], [999, '999'], [1000, '1,000'], [1234, '1,234'], [1_234_567, '1,234,567'], [-4500, '-4,500']])('formats %i as %s', (value, text) => {
    expect(formatCount(value)).toBe(text);
  });

  it('writes the 429 message with the numbers', () => {
    expect(formatKvFullMessage({ usedBlocks: 1234, capacityBlocks: 1240, nodeName: 'mini-1' })).toBe('KV cache full: 1,234 of 1,240 blocks in use on node mini-1; retry later or lower max_tokens');
  });
});

describe('release', () => {
  it.each([
    // what the release says → outcome, blocks left accounted
    ['keeps the KV when tokens are given', { keep: undefined, held: 70 }, 'cached', 5],
    ['frees when keep is false', { keep: false, held: 70 }, 'freed', 0],
    ['frees when no tokens are given', { keep: true, held: undefined }, 'freed', 0],
    ['frees when less than a block is held', { keep: true, held: 10 }, 'freed', 0],
    ['frees when the tokens overrun the reservation', { keep: true, held: 200 }, 'freed', 0],
  ] as const)('%s', (_name, { keep, held }, outcome, blocks) => {
    const { core, cluster } = setup([100, 100]);
    const admission = admitted(admit(core, tokens(60), 40, 0));
    cluster.send(admission.commands);
    const heldTokens = held === undefined ? undefined : tokens(held);
    const response = core.release({ sequenceId: admission.sequenceId, tokens: heldTokens, keep }, 10);
    expect(response.outcome).toBe(outcome);
    expect(core.usedBlocks(0)).toBe(blocks);
    if (outcome === 'freed') {
      expect(response.commands.map((c) => [c.kind, c.stage, 'sequenceId' in c ? c.sequenceId : null])).toEqual([['free', 0, admission.sequenceId], ['free', 1, admission.sequenceId]]);
      expect(core.sequence(admission.sequenceId)).toBeUndefined();
    } else {
      expect(core.sequence(admission.sequenceId)).toMatchObject({ state: 'idle', tokens: 70, hashedBlocks: 4, lastUsedMs: 10 });
    }
    cluster.send(response.commands);
    cluster.deliverAll();
    assertKvInvariants(core);
  });

  it('answers unknown for a sequence it does not have, and is idempotent', () => {
    const { core, cluster } = setup([100]);
    expect(core.release({ sequenceId: 77 as SequenceId, tokens: tokens(20) }, 0)).toEqual({ sequenceId: 77, outcome: 'unknown', cachedTokens: 0, commands: [] });
    const { id } = converse(cluster, tokens(40), { generate: 1 });
    expect(core.release({ sequenceId: id, tokens: tokens(40) }, 5)).toEqual({ sequenceId: id, outcome: 'cached', cachedTokens: 40, commands: [] });
  });
});

describe('usage and accounting', () => {
  it('reports per node capacity, used, running, cached-idle and sequences', () => {
    const { core, cluster } = setup([100, 50], ['mini-1', 'mini-2']);
    converse(cluster, tokens(100, 1), { maxTokens: 28, generate: 1, release: false }); // 8 blocks running
    converse(cluster, tokens(50, 2), { maxTokens: 10, generate: 4 }); // idle: 53 tokens → 4 blocks
    const usage = core.usage(1234);
    expect(usage.atMs).toBe(1234);
    expect(usage.nodes.map((node) => [node.nodeId, node.capacityBlocks, node.usedBlocks, node.runningBlocks, node.cachedIdleBlocks, node.sequences, node.runningSequences, node.idleSequences, node.reportedBlocks, node.inSync])).toEqual([
      ['mini-1', 100, 12, 8, 4, 2, 1, 1, 11, true],
      ['mini-2', 50, 12, 8, 4, 2, 1, 1, 11, true],
    ]);
    expect(kvAccounting(core).map((a) => [a.accountedBlocks, a.reportedBlocks])).toEqual([[12, 11], [12, 11]]);
  });

  it('has no shard report before the first event', () => {
    const { core } = setup([10]);
    expect(core.usage(0).nodes[0]).toMatchObject({ reportedBlocks: null, inSync: false, usedBlocks: 0 });
  });
});

describe('previewing an admission', () => {
  it('answers what admit would, and changes nothing', () => {
    const { core, cluster } = setup([10, 10]);
    const idle = converse(cluster, tokens(40), { maxTokens: 8 });
    const before = JSON.stringify(core.snapshot());
    // Fits (after evicting the idle sequence): null, and the idle sequence is still there.
    expect(core.previewAdmission({ requestId: requestId('p1'), tokens: tokens(100, 7), maxTokens: 50 }, 9)).toBeNull();
    expect(JSON.stringify(core.snapshot())).toBe(before);
    expect(core.sequences().map((s) => s.sequenceId)).toEqual([idle.id]);
    // Larger than a whole stage: refused with the numbers.
    expect(core.previewAdmission({ requestId: requestId('p2'), tokens: tokens(100, 7), maxTokens: 100 }, 9)).toMatchObject({ verdict: 'refused' });
    // Held by a running sequence: queue, with the full stage's numbers.
    admitted(admit(core, tokens(20, 9), 140, 10));
    const wait = core.previewAdmission({ requestId: requestId('p3'), tokens: tokens(20, 8), maxTokens: 20 }, 11);
    expect(wait).toMatchObject({ verdict: 'queue', shortage: { capacityBlocks: 10, runningBlocks: 10 } });
    expect(wait?.message).toBe(formatKvFullMessage(wait!.shortage));
  });
});
