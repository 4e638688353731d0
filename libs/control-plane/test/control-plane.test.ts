// Service tests of the control-plane library against real Redis: the machine's shared one
// (under a private key prefix) and, for outages, a private redis-server this test starts and stops.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { BATON_VERSION, BatonError, ErrorCode, type NodeId } from '@baton/contracts';
import { EventLog, Lease, RedisConnections, RpcClient, RpcServer, compareStreamIds, hasRedisServerBinary, startRedisServer, type ControlPlaneOptions } from '../src/index.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = () => `batontest-${randomBytes(4).toString('hex')}:`;

async function waitFor<T>(fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000, stepMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined && value !== false) return value as T;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
}

async function cleanup(redis: Redis, p: string) {
  const keys = await redis.keys(`${p}*`);
  if (keys.length) await redis.del(...keys);
}

describe('typed RPC over the Nest Redis transport', () => {
  const options: ControlPlaneOptions = { redisUrl: REDIS_URL, prefix: prefix() };
  const server = new RpcServer(options);
  const client = new RpcClient(options);
  const hints: unknown[] = [];

  beforeAll(async () => {
    server.register({
      'discovery.ping': () => ({ service: 'test', version: BATON_VERSION, pid: process.pid, uptimeMs: 1 }),
      'discovery.nodes.list': (request) => {
        if (request.includeMismatched === false) throw new BatonError(ErrorCode.NOT_FOUND, 'nothing here');
        return { nodes: [], links: [], discoveryVersion: BATON_VERSION };
      },
    });
    server.onHint('node.changed', (hint) => void hints.push(hint));
    await server.listen();
  });
  afterAll(async () => {
    await client.close();
    await server.close();
  });

  it('answers a request with the typed response', async () => {
    const reply = await client.send('discovery.ping', {});
    expect(reply).toMatchObject({ service: 'test', pid: process.pid });
  });

  it('keeps a remote error code', async () => {
    await expect(client.send('discovery.nodes.list', { includeMismatched: false })).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND, message: 'nothing here' });
  });

  it('refuses an invalid request with every problem listed, and keeps serving', async () => {
    const error = await client.send('discovery.nodes.list', { includeMismatched: 'yes', bogus: 1 } as never).catch((e: BatonError) => e);
    expect(error).toBeInstanceOf(BatonError);
    expect((error as BatonError).code).toBe(ErrorCode.VALIDATION);
    expect((error as BatonError).message).toMatch(/includeMismatched/);
    expect((error as BatonError).message).toMatch(/bogus/);
    expect(await client.send('discovery.ping', {})).toMatchObject({ service: 'test' });
  });

  it('times out with a message when nobody serves the pattern', async () => {
    const lonely = new RpcClient({ redisUrl: REDIS_URL, prefix: prefix() });
    await expect(lonely.send('discovery.ping', {}, { timeoutMs: 300 })).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
    await lonely.close();
  });

  it('delivers valid hints and drops invalid ones', async () => {
    await client.emit('node.changed', { nodeId: 'n-1', goodbye: true });
    await client.emit('node.changed', { nodeId: 'bad id with spaces', goodbye: 'no' } as never);
    await waitFor(() => hints.length >= 1 || undefined);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(hints).toEqual([{ nodeId: 'n-1', goodbye: true }]);
  });
});

describe('event log on Redis Streams', () => {
  const p = prefix();
  const connections = new RedisConnections({ redisUrl: REDIS_URL, prefix: p });
  let redis: Redis;
  let log: EventLog;

  beforeAll(() => {
    redis = connections.open('test');
    log = new EventLog(redis, p);
  });
  afterAll(async () => {
    await cleanup(redis, p);
    await connections.onApplicationShutdown();
  });

  it('appends and reads typed events in order, after an id', async () => {
    const start = await log.lastId();
    const a = await log.append('node.left', { nodeId: 'a' as NodeId, name: 'a', reason: 'goodbye' });
    await log.append('node.left', { nodeId: 'b' as NodeId, name: 'b', reason: 'expired' });
    const all = await log.read(start);
    expect(all.events.map((e) => [e.type, (e.data as { nodeId: string }).nodeId])).toEqual([['node.left', 'a'], ['node.left', 'b']]);
    expect(all.gap).toBe(false);
    const later = await log.read(a);
    expect(later.events).toHaveLength(1);
    expect((await log.read(later.lastId)).events).toHaveLength(0);
  });

  it('skips and counts entries that do not parse', async () => {
    const start = await log.lastId();
    await redis.xadd(log.key, '*', 'type', 'martian.landed', 'at', '1', 'data', '{}');
    await redis.xadd(log.key, '*', 'type', 'node.left', 'at', '1', 'data', 'not json');
    await log.append('plan.withdrawn', { modelId: 'm', reason: 'test' });
    const before = log.invalidEntries;
    const { events } = await log.read(start);
    expect(events.map((e) => e.type)).toEqual(['plan.withdrawn']);
    expect(log.invalidEntries - before).toBe(2);
  });

  it('serves consumer groups with acknowledgements', async () => {
    await log.ensureGroup('planner');
    await log.ensureGroup('planner');
    await log.append('plan.withdrawn', { modelId: 'g', reason: 'one' });
    const events = await log.readGroup('planner', 'c1');
    expect(events.map((e) => (e.data as { reason: string }).reason)).toEqual(['one']);
    expect(await log.ack('planner', ...events.map((e) => e.id))).toBe(1);
    expect(await log.readGroup('planner', 'c1')).toHaveLength(0);
  });

  it('reports a gap when entries after the reader were trimmed', async () => {
    const first = await log.append('plan.withdrawn', { modelId: 'x', reason: '1' });
    for (let i = 0; i < 5; i++) await log.append('plan.withdrawn', { modelId: 'x', reason: String(i) });
    await redis.xtrim(log.key, 'MAXLEN', 2);
    const result = await log.read(first);
    expect(result.gap).toBe(true);
    const fresh = await log.read(await log.lastId());
    expect(fresh.gap).toBe(false);
  });

  it('compares stream ids numerically', () => {
    expect(compareStreamIds('10-0', '9-5')).toBe(1);
    expect(compareStreamIds('5-2', '5-10')).toBe(-1);
    expect(compareStreamIds('5-2', '5-2')).toBe(0);
  });
});

describe('leases', () => {
  const p = prefix();
  const connections = new RedisConnections({ redisUrl: REDIS_URL, prefix: p });
  afterAll(() => connections.onApplicationShutdown());

  it('exist while refreshed, expire when not, vanish on stop', async () => {
    const redis = connections.open('lease');
    const lease = new Lease(redis, `${p}node:x`, () => 'v', 400, 100);
    await lease.start();
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(await redis.get(`${p}node:x`)).toBe('v');
    await lease.stop();
    expect(await redis.get(`${p}node:x`)).toBeNull();
    await redis.set(`${p}node:y`, 'v', 'PX', 200);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await redis.get(`${p}node:y`)).toBeNull();
  });
});

describe.skipIf(!hasRedisServerBinary())('Redis outage (private redis-server)', () => {
  it('leases and RPC recover by themselves when Redis comes back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-redis-'));
    let server = await startRedisServer({ dir });
    const options = { redisUrl: server.url, prefix: prefix() };
    const connections = new RedisConnections(options);
    const redis = connections.open('lease', { failFast: true });
    const probe = connections.open('probe');
    const rpcServer = new RpcServer(options);
    rpcServer.register({ 'discovery.ping': () => ({ service: 'outage', version: BATON_VERSION, pid: 1, uptimeMs: 0 }) });
    await rpcServer.listen();
    const client = new RpcClient(options);
    try {
      await waitFor(() => redis.status === 'ready' || undefined);
      const lease = new Lease(redis, `${options.prefix}node:z`, () => 'alive', 3000, 100);
      await lease.start();
      expect(await client.send('discovery.ping', {})).toMatchObject({ service: 'outage' });

      await server.stop();
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await lease.refresh()).toBe(false);
      server = await startRedisServer({ dir, port: server.port });

      await waitFor(async () => ((await probe.get(`${options.prefix}node:z`).catch(() => null)) === 'alive') || undefined, 15_000);
      const reply = await waitFor(() => client.send('discovery.ping', {}, { timeoutMs: 500 }).catch(() => undefined), 15_000, 200);
      expect(reply).toMatchObject({ service: 'outage' });
      await lease.stop();
    } finally {
      await client.close();
      await rpcServer.close();
      await connections.onApplicationShutdown();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
