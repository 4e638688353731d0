// Issue 7 end to end, with real processes and the shared Redis: `baton up` (discovery, planner,
// kv-cache, shards, gateway) serving a small random model.
// - A 4-turn conversation of about 1,000 tokens: turns 2–4 report cached prompt tokens and give
//   exactly the greedy output of a second stack with prefix reuse switched off (every turn cold);
//   a request sharing a running request's prefix gets a copy of it, with the cold output too.
// - A manager restart (SIGKILL, new process) during load: no lost or leaked blocks — the blocks
//   the manager accounts for equal the blocks every shard reports, and no shard holds blocks for
//   a running sequence after the load.
// - A tiny pool: idle sequences are evicted least recently used; a cache held full by a running
//   sequence answers 429 with the numbers; a request larger than the whole cache is refused.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveControlPlaneOptions, RpcClient } from '@baton/control-plane';
import type { KvUsageReport, ModelId, RequestId, SequenceId } from '@baton/contracts';
import { writeRandomModel } from '@baton/gguf';
import { REDIS_URL, redisClient, startProcess, startUp, stopProcess, stopUp, tempHome, waitFor, type Proc, type UpStack } from '../../discovery/test/processes.js';

const KV_MAIN = join(import.meta.dirname, '../dist/main.js');
const home = tempHome();
const modelPath = join(home, 'kv.gguf');
const redis = redisClient();
const MODEL = 'kv' as ModelId;

interface Stack extends UpStack { rpc: RpcClient; extra: Proc[] }

async function startStack(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Stack> {
  const up = await startUp(['--model', modelPath, '--kv-dtype', 'f32', ...args], { BATON_HOME: home, ...env });
  const rpc = new RpcClient(resolveControlPlaneOptions({ redisUrl: REDIS_URL, prefix: up.prefix }));
  await waitFor(async () => (await rpc.send('kv.usage', {}, { timeoutMs: 1000 })).nodes.length > 0 || undefined, 30_000, 200);
  return { ...up, rpc, extra: [] };
}

async function stopStack(stack: Stack | undefined) {
  if (!stack) return;
  for (const proc of stack.extra) await stopProcess(proc, 'SIGINT');
  await stack.rpc.close();
  await stopUp(stack, redis);
}

interface Completion { status: number; text: string; promptTokens: number; cachedTokens: number; error?: string }

async function complete(url: string, prompt: string, maxTokens: number): Promise<Completion> {
  const response = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'kv', prompt, max_tokens: maxTokens, temperature: 0 }) });
  const body = (await response.json()) as { choices?: { text: string }[]; usage?: { prompt_tokens: number; prompt_tokens_details?: { cached_tokens: number } }; error?: { message: string } };
  return {
    status: response.status,
    text: body.choices?.[0]?.text ?? '',
    promptTokens: body.usage?.prompt_tokens ?? 0,
    cachedTokens: body.usage?.prompt_tokens_details?.cached_tokens ?? -1,
    ...(body.error ? { error: body.error.message } : {}),
  };
}

/** Deterministic filler text: `words` words of a small vocabulary. */
function prose(seed: number, words: number): string {
  const vocabulary = ['the', 'model', 'runs', 'across', 'several', 'machines', 'and', 'each', 'stage', 'holds', 'its', 'layers', 'while', 'tokens', 'travel', 'round', 'ring', 'cache', 'keeps', 'history'];
  let x = seed * 7919 + 13;
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out.push(vocabulary[x % vocabulary.length]!);
  }
  return out.join(' ');
}

/** Waits until the manager is in sync with every shard and accounts for exactly what they report. */
async function settled(stack: Stack): Promise<KvUsageReport> {
  let last: KvUsageReport | undefined;
  try {
    return await waitFor(async () => {
      const usage = (last = await stack.rpc.send('kv.usage', {}, { timeoutMs: 1000 }));
      return usage.nodes.length > 0 && usage.nodes.every((n) => n.inSync && n.reportedBlocks === n.usedBlocks && n.runningSequences === 0) && usage;
    }, 20_000, 200);
  } catch (error) {
    throw new Error(`${(error as Error).message}; last usage ${JSON.stringify(last?.nodes)}`);
  }
}

beforeAll(async () => {
  await writeRandomModel({ out: modelPath, arch: 'llama', dim: 128, layers: 4, heads: 4, kvHeads: 2, ffn: 256, type: 'f32', context: 2048, seed: 7, name: 'kv' });
}, 120_000);

afterAll(async () => {
  redis.disconnect();
  rmSync(home, { recursive: true, force: true });
});

describe('prefix reuse through a 2-shard pipeline', () => {
  let warm: Stack | undefined;
  let cold: Stack | undefined;
  beforeAll(async () => {
    const started = await Promise.allSettled([
      startStack(['--shards', '2', '--context', '2048', '--sequences', '4'], { BATON_KV_RUNNING_LEASE_MS: '3000' }),
      startStack(['--shards', '2', '--context', '2048', '--sequences', '4'], { BATON_KV_REUSE: 'off' }),
    ]);
    [warm, cold] = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
    for (const s of started) if (s.status === 'rejected') throw s.reason;
  }, 240_000);
  afterAll(() => Promise.all([stopStack(warm), stopStack(cold)]), 60_000);

  it('prefills only the new tokens of turns 2–4 and gives the output of cold runs', async () => {
    let history = prose(1, 110);
    const warmTurns: Completion[] = [];
    const coldTurns: Completion[] = [];
    for (let turn = 1; turn <= 4; turn++) {
      if (turn > 1) history += ` ${warmTurns.at(-1)!.text} ${prose(turn, 95)}`;
      warmTurns.push(await complete(warm!.url, history, 24));
      coldTurns.push(await complete(cold!.url, history, 24));
    }
    for (const c of [...warmTurns, ...coldTurns]) expect(c.status, c.error).toBe(200);
    expect(warmTurns.at(-1)!.promptTokens).toBeGreaterThan(900);
    expect(warmTurns.map((t) => t.text)).toEqual(coldTurns.map((t) => t.text));
    expect(coldTurns.map((t) => t.cachedTokens)).toEqual([0, 0, 0, 0]);
    expect(warmTurns[0]!.cachedTokens).toBe(0);
    for (let turn = 1; turn < 4; turn++) {
      // Everything up to the previous turn's prompt is reused (whole blocks), the new text is prefilled.
      expect(warmTurns[turn]!.cachedTokens).toBeGreaterThanOrEqual(Math.floor(warmTurns[turn - 1]!.promptTokens / 16) * 16 - 16);
      expect(warmTurns[turn]!.cachedTokens).toBeLessThan(warmTurns[turn]!.promptTokens);
    }
    const usage = await settled(warm!);
    expect(usage.nodes.every((n) => n.idleSequences >= 1 && n.cachedIdleBlocks > 0)).toBe(true);
    // The same prompt again is answered from the cache: every whole block of it (the last token
    // is always prefilled, to yield logits).
    const again = await complete(warm!.url, history, 24);
    expect(again.text).toBe(warmTurns[3]!.text);
    expect(again.cachedTokens).toBe(Math.floor((again.promptTokens - 1) / 16) * 16);
  }, 120_000);

  it('copies the prefix of a running sequence into a new request that shares it', async () => {
    const shared = prose(50, 120);
    // A: running (streaming, long) when B arrives; its prompt is prefilled on every stage once its first token is out.
    const controller = new AbortController();
    const a = await fetch(`${warm!.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'kv', prompt: `${shared} first`, max_tokens: 1500, temperature: 0, stream: true }), signal: controller.signal });
    const reader = a.body!.getReader();
    await reader.read();
    await reader.read();
    const b = await complete(warm!.url, `${shared} second`, 24);
    controller.abort();
    expect(b.status, b.error).toBe(200);
    expect(b.cachedTokens).toBeGreaterThan(0);
    expect(b.text).toBe((await complete(cold!.url, `${shared} second`, 24)).text);
    await settled(warm!);
  }, 60_000);

  it('survives a manager restart during load without losing or leaking blocks', async () => {
    const { pid } = await warm!.rpc.send('kv.ping', {});
    const prompts = Array.from({ length: 6 }, (_, i) => `${prose(100, 60)} ${prose(200 + i, 20)}`);
    const load = Promise.all(prompts.map((p) => complete(warm!.url, p, 40)));
    await new Promise((resolve) => setTimeout(resolve, 30));
    process.kill(pid, 'SIGKILL');
    const restarted = startProcess(KV_MAIN, ['--redis', REDIS_URL, '--prefix', warm!.prefix], { BATON_KV_RUNNING_LEASE_MS: '3000' });
    warm!.extra.push(restarted);
    const results = await load;
    // Each request either completed or was refused as retryable; none hangs or fails otherwise.
    for (const r of results) expect([200, 503], r.error).toContain(r.status);
    await waitFor(() => restarted.output().includes('managing kv'), 30_000, 100);
    const after = await Promise.all(prompts.map((p) => complete(warm!.url, p, 40)));
    for (const r of after) expect(r.status, r.error).toBe(200);
    const usage = await settled(warm!);
    for (const node of usage.nodes) {
      expect(node.usedBlocks).toBe(node.reportedBlocks);
      expect(node.usedBlocks).toBeLessThanOrEqual(node.capacityBlocks);
    }
    // No shard keeps blocks for a sequence that is neither running nor cached.
    await waitFor(async () => {
      const { nodes } = (await (await fetch(`${warm!.url}/v1/cluster`)).json()) as { nodes: { kv?: { blocksUsed: number } }[] };
      return nodes.length > 0 && nodes.every((n) => n.kv?.blocksUsed === 0);
    }, 10_000, 200);
  }, 120_000);
});

describe('a tiny KV pool', () => {
  let stack: Stack | undefined;
  beforeAll(async () => {
    stack = await startStack(['--shards', '1', '--context', '256', '--sequences', '2'], { BATON_KV_QUEUE_WAIT_MS: '300' });
  }, 180_000);
  afterAll(() => stopStack(stack), 60_000);

  it('evicts idle sequences least recently used and stays within capacity', async () => {
    const capacity = (await stack!.rpc.send('kv.usage', {})).nodes[0]!.capacityBlocks;
    expect(capacity).toBeGreaterThan(0);
    const prompts = Array.from({ length: 12 }, (_, i) => prose(300 + i, 70));
    for (const prompt of prompts) expect((await complete(stack!.url, prompt, 8)).status).toBe(200);
    const usage = await settled(stack!);
    expect(usage.nodes[0]!.usedBlocks).toBeLessThanOrEqual(capacity);
    expect(usage.nodes[0]!.idleSequences).toBeLessThan(prompts.length);
    // The oldest were evicted, the newest is still cached.
    const lookup = (prompt: string) => complete(stack!.url, prompt, 8);
    const newest = await lookup(prompts.at(-1)!);
    expect(newest.cachedTokens).toBeGreaterThan(0);
    const oldest = await lookup(prompts[0]!);
    expect(oldest.cachedTokens).toBe(0);
  }, 120_000);

  it('answers 429 with the numbers while a running sequence holds the cache, and refuses what can never fit', async () => {
    const node = (await stack!.rpc.send('kv.usage', {})).nodes[0]!;
    const capacityTokens = node.capacityBlocks * 16;
    // A running sequence reserving the whole cache (as a gateway would), so a request must wait.
    const hog = await stack!.rpc.send('kv.admit', { modelId: MODEL, requestId: 'hog' as RequestId, tokens: [1, 2, 3], maxTokens: capacityTokens - 3 });
    expect(hog.verdict).toBe('admitted');
    const full = await complete(stack!.url, 'the model runs', 8);
    expect(full.status).toBe(429);
    expect(full.error).toMatch(new RegExp(`KV cache full: ${node.capacityBlocks.toLocaleString('en-US')} of ${node.capacityBlocks.toLocaleString('en-US')} blocks in use on node .+; retry later or lower max_tokens`));
    if (hog.verdict === 'admitted') await stack!.rpc.send('kv.release', { modelId: MODEL, sequenceId: hog.sequenceId, keep: false });
    expect((await complete(stack!.url, 'the model runs', 8)).status).toBe(200);
    const huge = await stack!.rpc.send('kv.admit', { modelId: MODEL, requestId: 'huge' as RequestId, tokens: [1, 2, 3], maxTokens: capacityTokens + 16, waitMs: 5000 });
    expect(huge.verdict).toBe('refused');
    if (huge.verdict === 'refused') expect(huge.message).toContain(String(node.capacityBlocks));
  }, 60_000);

  it('lets waiting requests in first come first served as room appears', async () => {
    const node = (await stack!.rpc.send('kv.usage', {})).nodes[0]!;
    const capacityTokens = node.capacityBlocks * 16;
    const admit = (id: string, maxTokens: number, waitMs: number) =>
      stack!.rpc.send('kv.admit', { modelId: MODEL, requestId: id as RequestId, tokens: [1, 2, 3], maxTokens, waitMs }, { timeoutMs: waitMs + 5000 });
    const release = (sequenceId: SequenceId) => stack!.rpc.send('kv.release', { modelId: MODEL, sequenceId, keep: false });
    const hog = await admit('fifo-hog', capacityTokens - 3, 0);
    if (hog.verdict !== 'admitted') throw new Error(hog.message);
    // A big request, then a small one: the small one would fit before the big one does, but waits its turn.
    const order: string[] = [];
    const big = admit('fifo-big', capacityTokens - 3, 20_000).then((v) => (order.push('big'), v));
    await waitFor(async () => (await stack!.rpc.send('kv.usage', {})).queuedRequests === 1 || undefined, 5000, 20);
    const small = admit('fifo-small', 13, 20_000).then((v) => (order.push('small'), v));
    await waitFor(async () => (await stack!.rpc.send('kv.usage', {})).queuedRequests === 2 || undefined, 5000, 20);
    await release(hog.sequenceId);
    const first = await big;
    expect(first.verdict).toBe('admitted');
    expect(order).toEqual(['big']);
    if (first.verdict === 'admitted') await release(first.sequenceId);
    const second = await small;
    expect(second.verdict).toBe('admitted');
    expect(order).toEqual(['big', 'small']);
    if (second.verdict === 'admitted') await release(second.sequenceId);
    // A wait that runs out answers 'queue' with the numbers.
    const hog2 = await admit('fifo-hog2', capacityTokens - 3, 0);
    const late = await admit('fifo-late', 13, 300);
    expect(late.verdict).toBe('queue');
    if (late.verdict === 'queue') expect(late.message).toMatch(/^KV cache full: /);
    if (hog2.verdict === 'admitted') await release(hog2.sequenceId);
    expect((await stack!.rpc.send('kv.usage', {})).queuedRequests).toBe(0);
  }, 60_000);
});
