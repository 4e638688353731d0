// The mission end to end, with real processes: `baton up --shards N --model F` (Redis, discovery,
// planner, N shards, gateway) and OpenAI-style HTTP requests. Greedy output through 1, 2 and 3
// shards is identical, and identical to llama.cpp on the same prompt tokens; streamed chunks
// have OpenAI's shape; 8 concurrent requests each get their own output; a client that
// disconnects stops its sequence and its KV blocks are freed.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readGguf, writeRandomModel } from '@baton/gguf';
import { greedyTokens } from '@baton/llama-ref';
import { Tokenizer, plainMetadata } from '@baton/tokenizer';
import { redisClient, startUp, stopUp, tempHome, waitFor, type UpStack } from '../../discovery/test/processes.js';

const home = tempHome();
const modelPath = join(home, 'pipe.gguf');
const redis = redisClient();
const PROMPTS = ['The quick brown fox', 'Once upon a time', 'Hello, world', 'In the beginning', 'Baton runs one model', 'A B C D', 'numbers 1 2 3', 'the end'];
const MAX_TOKENS = 16;

const startStack = (shards: number) =>
  startUp(['--shards', String(shards), '--model', modelPath, '--kv-dtype', 'f32', '--context', '512', '--sequences', '8'], { BATON_HOME: home });

async function complete(url: string, prompt: string, extra: Record<string, unknown> = {}): Promise<{ text: string; finish: string; usage: { prompt_tokens: number; completion_tokens: number } }> {
  const response = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'pipe', prompt, max_tokens: MAX_TOKENS, temperature: 0, ...extra }) });
  const body = (await response.json()) as { choices: { text: string; finish_reason: string }[]; usage: { prompt_tokens: number; completion_tokens: number }; error?: unknown };
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${JSON.stringify(body)}`);
  return { text: body.choices[0]!.text, finish: body.choices[0]!.finish_reason, usage: body.usage };
}

const outputs = new Map<number, string[]>();

beforeAll(async () => {
  await writeRandomModel({ out: modelPath, arch: 'llama', dim: 128, layers: 6, heads: 4, kvHeads: 2, ffn: 256, type: 'f32', context: 1024, seed: 11, name: 'pipe' });
}, 120_000);

afterAll(async () => {
  redis.disconnect();
  rmSync(home, { recursive: true, force: true });
});

describe.each([1, 2, 3])('a pipeline of %i shard(s)', (shards) => {
  let stack: UpStack | undefined;
  beforeAll(async () => {
    stack = await startStack(shards);
  }, 180_000);
  afterAll(() => stopUp(stack, redis), 60_000);

  it('places one stage per shard and serves greedy completions', async () => {
    const { plans } = (await (await fetch(`${stack!.url}/v1/cluster`)).json()) as { plans: { stages: unknown[] }[] };
    expect(plans[0]!.stages).toHaveLength(shards);
    const texts: string[] = [];
    for (const prompt of PROMPTS.slice(0, 3)) {
      const result = await complete(stack!.url, prompt);
      expect(result.usage.completion_tokens).toBeGreaterThan(0);
      texts.push(result.text);
    }
    expect(new Set(texts).size).toBe(3);
    outputs.set(shards, texts);
    if (outputs.has(1)) expect(texts).toEqual(outputs.get(1));
  });

  if (shards === 2) {
    it('streams chat chunks in OpenAI\'s shape, ending with [DONE]', async () => {
      const response = await fetch(`${stack!.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'pipe', messages: [{ role: 'user', content: 'Hi there' }], max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true } }),
      });
      expect(response.headers.get('content-type')).toMatch(/text\/event-stream/);
      const lines = (await response.text()).split('\n').filter((l) => l.startsWith('data: '));
      expect(lines.at(-1)).toBe('data: [DONE]');
      const chunks = lines.slice(0, -1).map((l) => JSON.parse(l.slice(6)) as Record<string, unknown>);
      for (const chunk of chunks) {
        expect(chunk).toMatchObject({ object: 'chat.completion.chunk', model: 'pipe' });
        expect(typeof chunk.id).toBe('string');
        expect(typeof chunk.created).toBe('number');
      }
      const withChoices = chunks.filter((c) => (c.choices as unknown[]).length > 0);
      expect((withChoices[0]!.choices as { delta: { role: string } }[])[0]!.delta.role).toBe('assistant');
      expect(['stop', 'length']).toContain((withChoices.at(-1)!.choices as { finish_reason: string }[])[0]!.finish_reason);
      expect(chunks.at(-1)!.usage).toMatchObject({ completion_tokens: expect.any(Number), prompt_tokens: expect.any(Number) });
    });

    it('runs 8 concurrent requests, each with its own correct output', async () => {
      const sequential: string[] = [];
      for (const prompt of PROMPTS) sequential.push((await complete(stack!.url, prompt)).text);
      const concurrent = await Promise.all(PROMPTS.map((prompt) => complete(stack!.url, prompt)));
      expect(concurrent.map((c) => c.text)).toEqual(sequential);
    });

    it('stops a sequence whose client disconnects and frees its KV', async () => {
      const controller = new AbortController();
      const response = await fetch(`${stack!.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'pipe', prompt: 'a long story', max_tokens: 400, temperature: 0, stream: true }),
        signal: controller.signal,
      });
      const reader = response.body!.getReader();
      await reader.read();
      await reader.read();
      controller.abort();
      const kvFree = async () => {
        const { nodes } = (await (await fetch(`${stack!.url}/v1/cluster`)).json()) as { nodes: { kv?: { blocksUsed: number } }[] };
        return nodes.length > 0 && nodes.every((n) => n.kv !== undefined && n.kv.blocksUsed === 0) || undefined;
      };
      await waitFor(kvFree, 15_000, 250);
      // and the pipeline still serves
      expect((await complete(stack!.url, PROMPTS[0]!)).text).toBe(outputs.get(1)?.[0] ?? outputs.get(2)![0]);
    });
  }
});

describe('against llama.cpp', () => {
  it('gives the tokens llama.cpp gives for the same prompt tokens (F32 model, F32 KV, greedy)', async () => {
    const file = await readGguf(modelPath);
    const tokenizer = Tokenizer.fromGguf(plainMetadata(file.metadata));
    const eog = new Set(tokenizer.vocab.eog);
    for (const [i, prompt] of PROMPTS.slice(0, 3).entries()) {
      const ids = await greedyTokens(modelPath, tokenizer.encodePrompt(prompt), MAX_TOKENS, { contextSize: 512, kvType: 'f32' });
      const end = ids.findIndex((id) => eog.has(id));
      const expected = tokenizer.decode(end < 0 ? ids : ids.slice(0, end));
      expect(outputs.get(1)![i]).toBe(expected);
    }
  }, 120_000);
});
