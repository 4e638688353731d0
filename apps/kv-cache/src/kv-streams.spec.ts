// The kv-cache service's Redis side against a real Redis: shard entries are read in order and
// validated (bad ones skipped and counted, never thrown), commands land on each node's own
// stream, and the ledger snapshot round-trips.
import { afterAll, describe, expect, it } from 'vitest';
import { KvKeys, type KvShardCommand } from '@baton/contracts';
import { RedisConnections, resolveControlPlaneOptions } from '@baton/control-plane';
import { KvStreams } from './kv-streams.js';

const options = resolveControlPlaneOptions({ prefix: `batontest-kvstreams-${process.pid}-${Date.now()}:` });
const connections = new RedisConnections(options);
const redis = connections.open('test');
const streams = new KvStreams(options, connections);
const ref = { modelId: 'm', planId: 'p1', nodeId: 'n1', stage: 0 };

afterAll(async () => {
  await streams.close();
  const keys = await redis.keys(`${options.prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await connections.onApplicationShutdown();
});

describe('KvStreams', () => {
  it('reads shard events and dumps after an id, skipping entries that do not validate', async () => {
    const start = await streams.lastId();
    const key = KvKeys.events(options.prefix);
    const event = { ...ref, kind: 'stored', epoch: 'e1', seq: 1, atMs: 1, sequenceId: 5, tokens: 20, blocks: 2 };
    await redis.xadd(key, '*', 'type', 'event', 'data', JSON.stringify(event));
    await redis.xadd(key, '*', 'type', 'event', 'data', JSON.stringify({ ...event, seq: 0 }));
    await redis.xadd(key, '*', 'type', 'event', 'data', '{not json');
    await redis.xadd(key, '*', 'type', 'gossip', 'data', '{}');
    await redis.xadd(key, '*', 'type', 'dump', 'data', JSON.stringify({ ...ref, epoch: 'e1', seq: 1, atMs: 2, capacityBlocks: 64, sequences: [{ sequenceId: 5, tokens: 20, blocks: 2 }] }));
    const { entries, lastId } = await streams.read(start, 100);
    expect(entries).toEqual([
      { type: 'event', event },
      { type: 'dump', dump: expect.objectContaining({ capacityBlocks: 64, seq: 1 }) },
    ]);
    expect(streams.invalidEntries).toBe(3);
    expect((await streams.read(lastId, 50)).entries).toEqual([]);
  });

  it('puts each command on its node\'s stream, in order', async () => {
    const commands: KvShardCommand[] = [
      { ...ref, kind: 'truncate', sequenceId: 5, tokens: 16 },
      { ...ref, nodeId: 'n2', stage: 1, kind: 'truncate', sequenceId: 5, tokens: 16 },
      { ...ref, kind: 'free', sequenceId: 6 },
    ] as KvShardCommand[];
    await streams.send(commands);
    const read = async (node: string) => ((await redis.xrange(KvKeys.commands(options.prefix, node), '-', '+')) as [string, string[]][]).map(([, f]) => JSON.parse(f[1]!) as KvShardCommand);
    expect(await read('n1')).toEqual([commands[0], commands[2]]);
    expect(await read('n2')).toEqual([commands[1]]);
  });

  it('keeps the ledger snapshot per model', async () => {
    expect(await streams.loadSnapshot('m')).toBeNull();
    await streams.saveSnapshot('m', '{"version":1}');
    expect(await streams.loadSnapshot('m')).toBe('{"version":1}');
  });
});
