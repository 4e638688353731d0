// The shard's KV protocol against a real Redis: commands from the node's stream run in order on
// the pool, every change is a numbered event, every `free` is answered (held or not), dumps carry
// the number of the last event they include, and commands for another plan or stage are ignored.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvKeys } from '@baton/contracts';
import { parseRedisUrl } from '@baton/control-plane';
import { KvAgent } from './kv-agent.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `batontest-kvagent-${process.pid}-${Date.now()}:`;

/** A pool double: positions held per sequence, 16 per block. */
function fakeEngine() {
  const held = new Map<number, number>();
  const kv = {
    allocate: async () => undefined,
    extend: async () => undefined,
    free: async (id: number) => void held.delete(id),
    truncate: async (id: number, tokens: number) => {
      if (!held.has(id)) throw new Error(`no sequence ${id}`);
      held.set(id, Math.min(tokens, held.get(id)!));
    },
    copyPrefix: async (to: number, from: number, tokens: number) => {
      if (!held.has(from)) throw new Error(`no sequence ${from}`);
      held.set(to, Math.min(tokens, held.get(from)!));
    },
    stats: async () => ({
      dtype: 'f32' as const, blockTokens: 16, blockBytes: 1024, blocksTotal: 100, poolBytes: 102400,
      blocksUsed: [...held.values()].reduce((n, t) => n + Math.ceil(t / 16), 0),
      sequences: [...held].map(([sequenceId, tokens]) => ({ sequenceId, tokens, capacity: tokens, blocks: Math.ceil(tokens / 16) })),
    }),
  };
  return { held, engine: { kv } as never };
}

async function entries(redis: Redis): Promise<{ type: string; data: Record<string, unknown> }[]> {
  const raw = (await redis.xrange(KvKeys.events(prefix), '-', '+')) as [string, string[]][];
  return raw.map(([, f]) => ({ type: f[f.indexOf('type') + 1]!, data: JSON.parse(f[f.indexOf('data') + 1]!) as Record<string, unknown> }));
}

describe('KvAgent', () => {
  const redis = new Redis({ ...parseRedisUrl(REDIS_URL), maxRetriesPerRequest: 1 });
  const writer = new Redis({ ...parseRedisUrl(REDIS_URL), maxRetriesPerRequest: 1 });
  const reader = new Redis({ ...parseRedisUrl(REDIS_URL), maxRetriesPerRequest: 1 });
  const { held, engine } = fakeEngine();
  const ref = { modelId: 'm', planId: 'p1', nodeId: 'n1', stage: 1 };
  const agent = new KvAgent(writer, reader, prefix, ref, engine);
  const forgotten: number[] = [];
  agent.runner = { forget: (id) => void forgotten.push(id) };

  beforeAll(async () => {
    held.set(7, 40);
    await agent.start();
  });
  afterAll(async () => {
    await agent.stop();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    for (const client of [redis, writer, reader]) client.disconnect();
  });

  it('starts with a dump, then numbers every change and runs the stream\'s commands in order', async () => {
    agent.stored(7, 41);
    const send = (command: Record<string, unknown>) => redis.xadd(KvKeys.commands(prefix, 'n1'), '*', 'data', JSON.stringify({ ...ref, ...command }));
    await send({ kind: 'copy', fromSequenceId: 7, sequenceId: 8, tokens: 32 });
    await send({ kind: 'truncate', sequenceId: 7, tokens: 16 });
    await send({ kind: 'free', sequenceId: 99 });
    await send({ kind: 'free', sequenceId: 8, stage: 0 }); // another stage's: ignored
    await send({ kind: 'free', sequenceId: 8, planId: 'p0' }); // an old plan's: ignored
    await redis.xadd(KvKeys.commands(prefix, 'n1'), '*', 'data', '{"kind":"explode"}'); // invalid: skipped
    await send({ kind: 'dump' });
    const all = await (async () => {
      for (let i = 0; i < 100; i++) {
        const got = await entries(redis);
        if (got.filter((e) => e.type === 'dump').length === 2) return got;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`no second dump: ${JSON.stringify(await entries(redis))}`);
    })();
    expect(all[0]).toMatchObject({ type: 'dump', data: { ...ref, seq: 0, capacityBlocks: 100, sequences: [{ sequenceId: 7, tokens: 40, blocks: 3 }] } });
    const events = all.filter((e) => e.type === 'event').map((e) => e.data);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(new Set(events.map((e) => e.epoch)).size).toBe(1);
    expect(events).toMatchObject([
      { kind: 'stored', sequenceId: 7, tokens: 41, blocks: 3 },
      { kind: 'copied', sequenceId: 8, fromSequenceId: 7, tokens: 32, blocks: 2 },
      { kind: 'truncated', sequenceId: 7, tokens: 16, blocks: 1 },
      { kind: 'freed', sequenceId: 99 },
    ]);
    expect(all.at(-1)).toMatchObject({ type: 'dump', data: { seq: 4, sequences: [{ sequenceId: 7, tokens: 16 }, { sequenceId: 8, tokens: 32 }] } });
    expect(held.get(8)).toBe(32);
    expect(forgotten).toEqual([8, 99]);
  });

  it('reports a failed copy as a target holding nothing (the manager then knows the reuse failed)', async () => {
    await agent.execute({ ...ref, kind: 'copy', fromSequenceId: 12345, sequenceId: 9, tokens: 16 } as never);
    await new Promise((r) => setTimeout(r, 50));
    const last = (await entries(redis)).at(-1)!;
    expect(last.data).toMatchObject({ kind: 'copied', sequenceId: 9, tokens: 0, blocks: 0, seq: 5 });
  });
});
