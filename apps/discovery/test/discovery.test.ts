// The registry end to end with real processes and real Redis: join, update, goodbye, expiry
// after kill -9, invalid announcements, version mismatch, and a Redis restart (private server).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { BATON_VERSION, LEASE_TTL_MS, type ListNodesResponse } from '@baton/contracts';
import { RpcClient, hasRedisServerBinary, startRedisServer } from '@baton/control-plane';
import { announcement } from './fixtures.js';
import {
  DISCOVERY_MAIN, REDIS_URL, SHARD_MAIN, dropPrefix, redisClient, startProcess, stopProcess, streamEvents, tempHome, testPrefix, waitFor, type Proc,
} from './processes.js';

describe('discovery with real node processes', () => {
  const prefix = testPrefix();
  const home = tempHome();
  const env = { BATON_HOME: home };
  let redis: Redis;
  let discovery: Proc;
  let rpc: RpcClient;
  const procs: Proc[] = [];
  const list = () => rpc.send('discovery.nodes.list', {}, { timeoutMs: 1000 });

  beforeAll(async () => {
    redis = redisClient();
    discovery = startProcess(DISCOVERY_MAIN, ['--redis', REDIS_URL, '--prefix', prefix], env);
    rpc = new RpcClient({ redisUrl: REDIS_URL, prefix });
    await waitFor(() => rpc.send('discovery.ping', {}, { timeoutMs: 500 }));
  });
  afterAll(async () => {
    for (const p of procs) await stopProcess(p, 'SIGKILL');
    await stopProcess(discovery);
    await rpc.close();
    await dropPrefix(redis, prefix);
    redis.disconnect();
    rmSync(home, { recursive: true, force: true });
  });

  it('registers a node with its announcement and emits node-joined', async () => {
    const node = startProcess(SHARD_MAIN, ['--redis', REDIS_URL, '--prefix', prefix, '--id', 'alpha', '--name', 'alpha', '--memory-budget', '4GB'], env);
    procs.push(node);
    const found = await waitFor(async () => (await list()).nodes.find((n) => n.id === 'alpha'));
    expect(found).toMatchObject({ name: 'alpha', pid: node.child.pid, version: BATON_VERSION, versionMismatch: false, computeBytesPerSec: null });
    expect(found.memory.budgetBytes).toBe(4e9);
    expect(found.memory.totalBytes).toBeGreaterThan(0);
    expect(found.cpu.threads).toBeGreaterThan(0);
    const events = await streamEvents(redis, prefix);
    expect(events.some((e) => e.type === 'node.joined' && (e.data.node as { id: string }).id === 'alpha')).toBe(true);
  });

  it('says goodbye on a clean stop: node-left at once, reason goodbye', async () => {
    const node = startProcess(SHARD_MAIN, ['--redis', REDIS_URL, '--prefix', prefix, '--id', 'beta', '--name', 'beta'], env);
    await waitFor(async () => (await list()).nodes.find((n) => n.id === 'beta'));
    await stopProcess(node, 'SIGTERM');
    const left = await waitFor(async () => (await streamEvents(redis, prefix)).find((e) => e.type === 'node.left' && e.data.nodeId === 'beta'));
    expect(left.data.reason).toBe('goodbye');
    expect((await list()).nodes.some((n) => n.id === 'beta')).toBe(false);
  });

  it('drops a node killed with SIGKILL once its lease expires: node-left, reason expired', async () => {
    const node = startProcess(SHARD_MAIN, ['--redis', REDIS_URL, '--prefix', prefix, '--id', 'gamma', '--name', 'gamma'], env);
    await waitFor(async () => (await list()).nodes.find((n) => n.id === 'gamma'));
    const killedAt = Date.now();
    node.child.kill('SIGKILL');
    await node.exited;
    const left = await waitFor(async () => (await streamEvents(redis, prefix)).find((e) => e.type === 'node.left' && e.data.nodeId === 'gamma'), 15_000);
    expect(left.data.reason).toBe('expired');
    const goneAfterMs = Date.now() - killedAt;
    console.log(`kill -9 → node-left after ${goneAfterMs} ms (lease ${LEASE_TTL_MS} ms)`);
    expect((await list()).nodes.some((n) => n.id === 'gamma')).toBe(false);
  });

  it('reports an update with the fields that changed', async () => {
    const id = 'delta';
    const value = (status: string) => JSON.stringify({ announcement: { ...announcement(id), status }, heartbeatAtMs: Date.now() });
    await redis.set(`${prefix}node:${id}`, value('idle'), 'PX', 3000);
    await waitFor(async () => (await list()).nodes.find((n) => n.id === id));
    await redis.set(`${prefix}node:${id}`, value('loading 40%'), 'PX', 3000);
    const updated = await waitFor(async () => (await streamEvents(redis, prefix)).find((e) => e.type === 'node.updated' && (e.data.node as { id: string }).id === id));
    expect(updated.data.changed).toEqual(['status']);
    await redis.del(`${prefix}node:${id}`);
  });

  it('refuses invalid announcements and keeps serving', async () => {
    await redis.set(`${prefix}node:broken`, '{"announcement": {"id": "broken"}}', 'PX', 3000);
    await redis.set(`${prefix}node:garbage`, 'not json at all', 'PX', 3000);
    await redis.set(`${prefix}node:negative`, JSON.stringify({ announcement: announcement('negative', { memory: { totalBytes: -1, availableBytes: 0, budgetBytes: 0 } }), heartbeatAtMs: 1 }), 'PX', 3000);
    await waitFor(() => discovery.output().includes('refused the announcement at ' + `${prefix}node:negative`) || undefined);
    const { nodes } = await list();
    expect(nodes.map((n) => n.id)).not.toContain('broken');
    expect(nodes.map((n) => n.id)).not.toContain('negative');
    expect(discovery.output()).toMatch(/refused the announcement at .*node:broken: .*hostname/);
    expect(discovery.child.exitCode).toBeNull();
  });

  it('lists a node on another Baton version, marked as such', async () => {
    await redis.set(`${prefix}node:oldie`, JSON.stringify({ announcement: announcement('oldie', { version: '0.0.1' }), heartbeatAtMs: Date.now() }), 'PX', 3000);
    const found = await waitFor(async () => (await list()).nodes.find((n) => n.id === 'oldie'));
    expect(found.versionMismatch).toBe(true);
    expect(discovery.output()).toMatch(/oldie.*WARNING: runs Baton 0\.0\.1/);
  });
});

describe.skipIf(!hasRedisServerBinary())('discovery through a Redis restart (private redis-server)', () => {
  it('services retry and recover by themselves; nothing crashes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-redis-'));
    let server = await startRedisServer({ dir });
    const prefix = testPrefix();
    const home = tempHome();
    const args = ['--redis', server.url, '--prefix', prefix];
    const discovery = startProcess(DISCOVERY_MAIN, args, { BATON_HOME: home });
    const node = startProcess(SHARD_MAIN, [...args, '--id', 'phoenix'], { BATON_HOME: home });
    const rpc = new RpcClient({ redisUrl: server.url, prefix });
    const has = async () => ((await rpc.send('discovery.nodes.list', {}, { timeoutMs: 500 })) as ListNodesResponse).nodes.some((n) => n.id === 'phoenix');
    try {
      await waitFor(has);
      await server.stop();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(discovery.child.exitCode).toBeNull();
      expect(node.child.exitCode).toBeNull();
      server = await startRedisServer({ dir, port: server.port });
      await waitFor(has, 20_000, 200);
      expect(discovery.child.exitCode).toBeNull();
      expect(node.child.exitCode).toBeNull();
    } finally {
      await rpc.close();
      await stopProcess(node);
      await stopProcess(discovery);
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
      rmSync(home, { recursive: true, force: true });
    }
  });
});
