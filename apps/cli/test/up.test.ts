// `baton up --shards 2`, `baton nodes --json`, kill -9 of one node: the foundation issue's
// "done when", with real processes and real Redis (a private key prefix).
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, REDIS_URL, dropPrefix, redisClient, startProcess, streamEvents, tempHome, testPrefix, waitFor } from '../../discovery/test/processes.js';

const run = promisify(execFile);

describe('baton up / baton nodes', () => {
  const prefix = testPrefix();
  const home = tempHome();
  const env = { ...process.env, BATON_HOME: home, REDIS_URL };
  const redis = redisClient();
  const up = startProcess(CLI, ['up', '--shards', '2', '--prefix', prefix], { BATON_HOME: home, REDIS_URL });
  const nodes = async () => JSON.parse((await run(process.execPath, [CLI, 'nodes', '--json', '--prefix', prefix], { env })).stdout) as { nodes: { id: string; name: string; pid: number; hostname: string; version: string; memory: { totalBytes: number; availableBytes: number; budgetBytes: number }; lastSeenMs: number }[] };

  afterAll(async () => {
    // SIGINT lets `baton up` stop its children (a SIGKILL would orphan them); SIGKILL after 30 s.
    if (up.child.exitCode === null) {
      up.child.kill('SIGINT');
      const timer = setTimeout(() => up.child.kill('SIGKILL'), 30_000);
      await up.exited;
      clearTimeout(timer);
    }
    await dropPrefix(redis, prefix);
    redis.disconnect();
    rmSync(home, { recursive: true, force: true });
  });

  it('starts discovery and two nodes; `nodes --json` lists both with the promised fields', async () => {
    await waitFor(() => up.output().includes('Baton is up') || undefined, 30_000);
    const listed = await nodes();
    expect(listed.nodes).toHaveLength(2);
    for (const node of listed.nodes) {
      expect(Object.keys(node)).toEqual(expect.arrayContaining(['id', 'name', 'hostname', 'pid', 'version', 'memory', 'lastSeenMs']));
      expect(Object.keys(node.memory).sort()).toEqual(['availableBytes', 'budgetBytes', 'totalBytes']);
    }
  });

  it('has the two nodes measure their link to each other (shown by `baton nodes`)', async () => {
    const links = await waitFor(async () => {
      const listed = JSON.parse((await run(process.execPath, [CLI, 'nodes', '--json', '--prefix', prefix], { env })).stdout) as { links: { from: string; to: string; rttP50Ms: number; bandwidthBytesPerSec: number }[] };
      return listed.links.length >= 2 ? listed.links : undefined;
    }, 20_000, 500);
    const ids = (await nodes()).nodes.map((n) => n.id).sort();
    expect(links.map((l) => [l.from, l.to].sort().join()).every((pair) => pair === ids.join())).toBe(true);
    for (const link of links) {
      expect(link.rttP50Ms).toBeGreaterThan(0);
      expect(link.bandwidthBytesPerSec).toBeGreaterThan(0);
    }
    const table = (await run(process.execPath, [CLI, 'nodes', '--prefix', prefix], { env })).stdout;
    expect(table).toMatch(/Links:/);
  });

  it('forgets a node killed with kill -9 and puts node-left on the stream', async () => {
    const victim = (await nodes()).nodes[0]!;
    process.kill(victim.pid, 'SIGKILL');
    await waitFor(async () => !(await nodes()).nodes.some((n) => n.id === victim.id), 15_000, 200);
    const events = await streamEvents(redis, prefix);
    expect(events.find((e) => e.type === 'node.left' && e.data.nodeId === victim.id)?.data.reason).toBe('expired');
    expect((await nodes()).nodes).toHaveLength(1);
  });

  it('stops everything it started on Ctrl-C', async () => {
    const listed = await nodes();
    up.child.kill('SIGINT');
    expect(await up.exited).toBe(0);
    for (const node of listed.nodes) expect(() => process.kill(node.pid, 0)).toThrow();
    const events = await streamEvents(redis, prefix);
    expect(events.filter((e) => e.type === 'node.left' && e.data.reason === 'goodbye').map((e) => e.data.nodeId)).toEqual(listed.nodes.map((n) => n.id));
  });
});

describe('the command line', () => {
  it('has --help on every command', async () => {
    const { COMMANDS } = await import('../src/commands/index.js');
    for (const command of COMMANDS) {
      const { stdout } = await run(process.execPath, [CLI, ...command.name.split(' '), '--help']);
      expect(stdout).toContain(`Usage: baton ${command.name}`);
    }
  });

  it('refuses unknown commands and flags with exit code 64 and a hint', async () => {
    const unknown = await run(process.execPath, [CLI, 'frobnicate']).catch((e: { code: number; stderr: string }) => e);
    expect(unknown).toMatchObject({ code: 64 });
    expect((unknown as { stderr: string }).stderr).toMatch(/unknown command "frobnicate"/);
    const badFlag = await run(process.execPath, [CLI, 'nodes', '--bogus']).catch((e: { code: number; stderr: string }) => e);
    expect(badFlag).toMatchObject({ code: 64 });
    expect((badFlag as { stderr: string }).stderr).toMatch(/--bogus/);
    const badSize = await run(process.execPath, [CLI, 'node', '--memory-budget', 'lots']).catch((e: { code: number; stderr: string }) => e);
    expect((badSize as { stderr: string }).stderr).toMatch(/--memory-budget: invalid byte size "lots"/);
  });

  it('says clearly when Redis is unreachable', async () => {
    const result = await run(process.execPath, [CLI, 'nodes', '--redis', 'redis://127.0.0.1:1']).catch((e: { code: number; stderr: string }) => e);
    expect((result as { stderr: string }).stderr).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
  });
});
