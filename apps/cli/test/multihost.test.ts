// Two machines, for real: two `baton node` processes in their own network namespaces (hosts
// 10.215.x.2 and .3 behind a bridge, each link shaped to 200 Mbit/s with tbf), and Redis,
// discovery, the planner, the KV-cache manager and the gateway on the "router" host (.1). Each
// node finds its LAN address by itself (no --advertise), the nodes measure the link between them
// (the shaped bandwidth shows), the model is placed in two stages across the hosts, and greedy
// completions through the gateway equal the single-process engine's (`baton generate`).
// Needs root and `ip netns` / `tc`; skipped with the reason otherwise.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedisServer, type RedisServerHandle } from '@baton/control-plane';
import { readGguf, writeRandomModel } from '@baton/gguf';
import { Tokenizer, plainMetadata } from '@baton/tokenizer';
import { CLI, startProcess, stopProcess, tempHome, testPrefix, waitFor, type Proc } from '../../discovery/test/processes.js';

const root = join(import.meta.dirname, '../../..');
const MAIN = (app: string) => join(root, `apps/${app}/dist/main.js`);
const tag = `${process.pid % 100000}`;
const octet = 1 + (process.pid % 250);
const bridge = `bbr${tag}`;
const hosts = [
  { ns: `bnsa${tag}`, veth: `bva${tag}`, peer: `bpa${tag}`, address: `10.215.${octet}.2`, id: 'host-a' },
  { ns: `bnsb${tag}`, veth: `bvb${tag}`, peer: `bpb${tag}`, address: `10.215.${octet}.3`, id: 'host-b' },
];
const router = `10.215.${octet}.1`;
/** Each host's egress is shaped to this (tbf): 200 Mbit/s = 25 MB/s. */
const SHAPED_BYTES_PER_SEC = 25_000_000;
const MAX_TOKENS = 16;
const PROMPTS = ['Two machines run one model', 'The relay passes the baton', 'Hello from the other host'];

const home = tempHome();
const modelPath = join(home, 'hosts.gguf');
const prefix = testPrefix();
const procs: Proc[] = [];
let redis: RedisServerHandle | undefined;
let skipReason: string | undefined;
let url = '';

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function setUpNetwork(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  try {
    ip('link', 'add', bridge, 'type', 'bridge');
    ip('addr', 'add', `${router}/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    for (const host of hosts) {
      ip('netns', 'add', host.ns);
      ip('link', 'add', host.veth, 'type', 'veth', 'peer', 'name', host.peer);
      ip('link', 'set', host.peer, 'netns', host.ns);
      ip('link', 'set', host.veth, 'master', bridge);
      ip('link', 'set', host.veth, 'up');
      ip('-n', host.ns, 'addr', 'add', `${host.address}/24`, 'dev', host.peer);
      ip('-n', host.ns, 'link', 'set', 'lo', 'up');
      ip('-n', host.ns, 'link', 'set', host.peer, 'up');
      execFileSync('ip', ['netns', 'exec', host.ns, 'tc', 'qdisc', 'add', 'dev', host.peer, 'root', 'tbf', 'rate', '200mbit', 'burst', '64kb', 'latency', '100ms'], { stdio: ['ignore', 'ignore', 'pipe'] });
    }
    return undefined;
  } catch (error) {
    return `ip netns / tc do not work here: ${((error as { stderr?: Buffer }).stderr ?? '').toString().trim() || (error as Error).message}`;
  }
}

function tearDownNetwork(): void {
  for (const host of hosts) spawnSync('ip', ['netns', 'del', host.ns], { stdio: 'ignore' });
  spawnSync('ip', ['link', 'del', bridge], { stdio: 'ignore' });
}

/** A process on one of the hosts (in its namespace). */
function onHost(ns: string, args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', ...env } });
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => text, exited };
}

beforeAll(async () => {
  skipReason = setUpNetwork();
  if (skipReason) {
    console.warn(`multi-host test skipped: ${skipReason}`);
    tearDownNetwork();
    return;
  }
  await writeRandomModel({ out: modelPath, arch: 'llama', dim: 128, layers: 6, heads: 4, kvHeads: 2, ffn: 256, type: 'f32', context: 512, seed: 31, name: 'hosts' });
  redis = await startRedisServer({ dir: join(home, 'redis'), bind: router });
  const env = { BATON_HOME: home, REDIS_URL: redis.url };
  const common = ['--redis', redis.url, '--prefix', prefix];
  for (const app of ['discovery', 'planner', 'kv-cache']) procs.push(startProcess(MAIN(app), common, env));
  const port = await freePort();
  procs.push(startProcess(MAIN('gateway'), [...common, '--host', router, '--port', String(port)], env));
  url = `http://${router}:${port}`;
  for (const host of hosts) procs.push(onHost(host.ns, [CLI, 'node', ...common, '--id', host.id, '--name', host.id, '--threads', '1'], env));
}, 120_000);

afterAll(async () => {
  for (const proc of procs.reverse()) await stopProcess(proc, 'SIGINT');
  await redis?.stop();
  tearDownNetwork();
  rmSync(home, { recursive: true, force: true });
}, 60_000);

interface Cluster {
  nodes: { id: string; endpoints: { address: string }[] }[];
  links: { from: string; to: string; rttP50Ms: number; bandwidthBytesPerSec: number }[];
  plans: { stages: { nodeId: string; layerStart: number; layerEnd: number }[] }[];
}

const cluster = async (): Promise<Cluster> => (await (await fetch(`${url}/v1/cluster`)).json()) as Cluster;

describe('two hosts in network namespaces', () => {
  it('nodes announce their LAN address and measure the shaped link between them', async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const seen = await waitFor(async () => {
      const { nodes, links } = await cluster();
      const both = (from: string, to: string) => links.find((l) => l.from === from && l.to === to);
      return nodes.length === 2 && both('host-a', 'host-b') && both('host-b', 'host-a') && { nodes, links };
    }, 60_000, 250);
    for (const host of hosts) expect(seen.nodes.find((n) => n.id === host.id)!.endpoints[0]!.address).toBe(host.address);
    for (const link of seen.links.filter((l) => l.from.startsWith('host-') && l.to.startsWith('host-'))) {
      console.log(`link ${link.from} → ${link.to}: rtt p50 ${link.rttP50Ms.toFixed(3)} ms, ${(link.bandwidthBytesPerSec / 1e6).toFixed(1)} MB/s (shaped to ${SHAPED_BYTES_PER_SEC / 1e6} MB/s)`);
      expect(link.rttP50Ms).toBeGreaterThan(0);
      // The shaper caps what the probe can see (it can only measure less, never more).
      expect(link.bandwidthBytesPerSec).toBeLessThan(3 * SHAPED_BYTES_PER_SEC);
    }
  }, 90_000);

  it('places the model across both hosts and serves the single-process output', async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const applied = spawnSync(process.execPath, [CLI, 'plan', '--model', modelPath, '--stages', '2', '--context', '512', '--sequences', '2', '--kv-dtype', 'f32', '--apply', '--redis', redis!.url, '--prefix', prefix], { env: { ...process.env, BATON_HOME: home }, encoding: 'utf8' });
    expect(applied.status, applied.stderr + applied.stdout).toBe(0);
    await waitFor(async () => (await fetch(`${url}/readyz`)).ok || undefined, 60_000, 250);
    const { plans } = await cluster();
    expect(plans[0]!.stages.map((s) => s.nodeId).sort()).toEqual(['host-a', 'host-b']);

    const file = await readGguf(modelPath);
    const tokenizer = Tokenizer.fromGguf(plainMetadata(file.metadata));
    const eog = new Set(tokenizer.vocab.eog);
    for (const prompt of PROMPTS) {
      const response = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'hosts', prompt, max_tokens: MAX_TOKENS, temperature: 0 }) });
      const body = (await response.json()) as { choices: { text: string }[] };
      expect(response.status, JSON.stringify(body)).toBe(200);
      const generated = spawnSync(process.execPath, [CLI, 'generate', '--model', modelPath, '--tokens', tokenizer.encodePrompt(prompt).join(','), '-n', String(MAX_TOKENS), '--greedy', '--json'], { encoding: 'utf8' });
      expect(generated.status, generated.stderr).toBe(0);
      const ids = (JSON.parse(generated.stdout) as { tokens: number[] }).tokens;
      const end = ids.findIndex((id) => eog.has(id));
      expect(body.choices[0]!.text).toBe(tokenizer.decode(end < 0 ? ids : ids.slice(0, end)));
    }
  }, 120_000);
});
