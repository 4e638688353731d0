// The gateway in front of the real stack: `baton up --shards 2` (discovery, planner, two shard
// processes running the native engine, the gateway with the real PipelineClient) on a tiny
// generated model, driven over HTTP. Needs the built dist/ and native addons (`npm run setup`).
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeRandomModel } from '@baton/gguf';
import type { ChatCompletion, ChatCompletionChunk, ClusterView, ModelList, TextCompletion } from '@baton/contracts';
import { redisClient, startUp, stopUp, tempHome, type UpStack } from '../../discovery/test/processes.js';

const home = tempHome();
const redis = redisClient();
let up: UpStack | undefined;
let url = '';
let model = '';

function post(path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...(signal ? { signal } : {}) });
}

async function complete(prompt: string, extra: Record<string, unknown> = {}): Promise<TextCompletion> {
  const response = await post('/v1/completions', { model, prompt, max_tokens: 24, temperature: 0, ...extra });
  expect(response.status).toBe(200);
  return (await response.json()) as TextCompletion;
}

async function sse(response: Response): Promise<ChatCompletionChunk[]> {
  const text = await response.text();
  expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
  return text.split('\n\n').filter(Boolean).slice(0, -1).map((e) => JSON.parse(e.slice('data: '.length)) as ChatCompletionChunk);
}

beforeAll(async () => {
  mkdirSync(join(home, 'models'), { recursive: true });
  const modelPath = join(home, 'models', 'e2e-tiny.gguf');
  await writeRandomModel({ out: modelPath, arch: 'llama', dim: 64, layers: 4, heads: 4, kvHeads: 2, ffn: 128, type: 'f32', context: 512, seed: 11 });
  up = await startUp(['--shards', '2', '--model', modelPath], { BATON_HOME: home });
  url = up.url;
  const models = (await (await fetch(`${url}/v1/models`)).json()) as ModelList;
  model = models.data.find((m) => m.baton.status === 'ready')?.id ?? models.data[0]!.id;
}, 180_000);

afterAll(async () => {
  await stopUp(up, redis);
  redis.disconnect();
  rmSync(home, { recursive: true, force: true });
}, 60_000);

describe('gateway → 2 shards (baton up)', () => {
  it('greedy chat: the streamed text equals the non-streamed text, in OpenAI shapes', async () => {
    const body = { model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Tell me about the park.' }], max_tokens: 24, temperature: 0 };
    const whole = (await (await post('/v1/chat/completions', body)).json()) as ChatCompletion;
    expect(whole.object).toBe('chat.completion');
    expect(whole.choices[0]!.finish_reason).toBe('length');
    expect(whole.usage.completion_tokens).toBe(24);
    const chunks = await sse(await post('/v1/chat/completions', { ...body, stream: true, stream_options: { include_usage: true } }));
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '', refusal: null });
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(whole.choices[0]!.message.content);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('length');
    // Same counts; the second, identical request reuses the first one's cached KV prefix (issue 7).
    const { prompt_tokens_details: cached, ...counts } = chunks.at(-1)!.usage!;
    const { prompt_tokens_details: _wholeCached, ...wholeCounts } = whole.usage;
    expect(counts).toEqual(wholeCounts);
    expect(cached!.cached_tokens).toBe(Math.floor((whole.usage.prompt_tokens - 1) / 16) * 16);
  });

  it('a stop string ends the output right before it', async () => {
    const greedy = (await complete('The weather is')).choices[0]!.text;
    // a stop string from the middle of the greedy text (three printable characters)
    const at = [...greedy.matchAll(/[A-Za-z]{3}/g)].map((m) => m.index!).find((i) => i >= 4);
    expect(at).toBeDefined();
    const stop = greedy.slice(at, at! + 3);
    const cut = await complete('The weather is', { stop: [stop] });
    expect(cut.choices[0]!.text).toBe(greedy.slice(0, greedy.indexOf(stop)));
    expect(cut.choices[0]!.finish_reason).toBe('stop');
    // the cancelled sequence did not disturb the next one
    expect((await complete('The weather is')).choices[0]!.text).toBe(greedy);
  });

  it('8 concurrent requests each get their own output', async () => {
    const prompts = Array.from({ length: 8 }, (_, i) => `Request number ${i}: the children ${'and the dog '.repeat(i % 3)}are`);
    const sequential: string[] = [];
    for (const p of prompts) sequential.push((await complete(p)).choices[0]!.text);
    expect(new Set(sequential).size).toBeGreaterThan(1);
    const concurrent = await Promise.all(prompts.map(async (p) => (await complete(p)).choices[0]!.text));
    expect(concurrent).toEqual(sequential);
  });

  it('clients that disconnect mid-stream stop their sequences; the cluster keeps serving', async () => {
    const reference = (await complete('Thank you for')).choices[0]!.text;
    for (let i = 0; i < 10; i++) {
      const client = new AbortController();
      const response = await post('/v1/chat/completions', { model, messages: [{ role: 'user', content: `long answer ${i}` }], max_tokens: 400, stream: true }, client.signal);
      const reader = response.body!.getReader();
      let seen = 0;
      while (seen < 3) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += new TextDecoder().decode(value).split('data: ').length - 1;
      }
      client.abort();
    }
    expect((await complete('Thank you for')).choices[0]!.text).toBe(reference);
  });

  it('GET /v1/cluster shows both nodes and the plan', async () => {
    const cluster = (await (await fetch(`${url}/v1/cluster`)).json()) as ClusterView;
    expect(cluster.nodes).toHaveLength(2);
    expect(cluster.plans.map((p) => p.modelId)).toEqual([model]);
    expect(cluster.plans[0]!.stages).toHaveLength(2);
  });
});
