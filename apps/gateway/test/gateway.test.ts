// The gateway over real HTTP on a free port, against a test-double PipelineClient that generates
// deterministic token ids, a tiny generated GGUF (its real tokenizer and chat template), and the
// machine's Redis (own key prefix; discovery and planner answered by RPC handlers in this test).
import { mkdtemp, mkdir, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { RpcServer } from '@baton/control-plane';
import { readGguf, writeRandomModel } from '@baton/gguf';
import { Tokenizer } from '@baton/tokenizer';
import type { ChatCompletion, ChatCompletionChunk, ModelList, OpenAIErrorBody, Placement, TextCompletion } from '@baton/contracts';
import { createGatewayApp, gatewayUrl } from '../src/index.js';
import { FakePipeline } from './fake-pipeline.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const CONTEXT = 256;

let home: string;
let modelPath: string;
let tokenizer: Tokenizer;
let pipeline: FakePipeline;
let app: NestFastifyApplication;
let url: string;
let prefix: string;
let rpcServer: RpcServer;
const previewRequests: unknown[] = [];

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

async function readSse(response: Response): Promise<unknown[]> {
  const text = await response.text();
  expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
  const events = text.split('\n\n').filter((e) => e.length > 0);
  for (const e of events) expect(e.startsWith('data: ')).toBe(true);
  return events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
}

function chat(content: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: 'tiny', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content }], ...extra };
}

function expectChunkEnvelope(chunk: ChatCompletionChunk, id: string, created: number): void {
  expect(chunk.id).toBe(id);
  expect(chunk.object).toBe('chat.completion.chunk');
  expect(chunk.created).toBe(created);
  expect(chunk.model).toBe('tiny');
  expect(typeof chunk.system_fingerprint).toBe('string');
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'baton-gateway-'));
  await mkdir(join(home, 'models'), { recursive: true });
  modelPath = join(home, 'models', 'tiny-llama.gguf');
  await writeRandomModel({ out: modelPath, arch: 'llama', dim: 32, layers: 1, heads: 2, kvHeads: 1, ffn: 64, type: 'f32', context: CONTEXT, seed: 7 });
  // an Ollama store with one model (a copy of the same file, as a blob)
  const ollama = join(home, 'ollama');
  const digest = randomBytes(32).toString('hex');
  await mkdir(join(ollama, 'manifests', 'registry.ollama.ai', 'library', 'tinyllama'), { recursive: true });
  await mkdir(join(ollama, 'blobs'), { recursive: true });
  await copyFile(modelPath, join(ollama, 'blobs', `sha256-${digest}`));
  await writeFile(
    join(ollama, 'manifests', 'registry.ollama.ai', 'library', 'tinyllama', 'latest'),
    JSON.stringify({ schemaVersion: 2, layers: [{ mediaType: 'application/vnd.ollama.image.model', digest: `sha256:${digest}`, size: 1 }] }),
  );
  tokenizer = Tokenizer.fromGguf((await readGguf(modelPath)).metadata);
  pipeline = new FakePipeline(
    [
      { modelId: 'tiny', modelPath, contextLength: CONTEXT, planVersion: 3, ready: true },
      { modelId: 'cold', modelPath, contextLength: CONTEXT, planVersion: 1, ready: false, reason: 'loading 40% (node alpha)' },
    ],
    tokenizer,
  );
  prefix = `test-gateway-${randomBytes(4).toString('hex')}:`;
  rpcServer = new RpcServer({ redisUrl: REDIS_URL, prefix });
  rpcServer.register({
    'discovery.nodes.list': () => ({ nodes: [], links: [], discoveryVersion: 'test' }),
    'planner.list': () => ({ plans: [], unplaced: [{ modelId: 'big', modelPath: '/x/big.gguf', reason: 'does not fit' }] }),
    'planner.preview': (request) => {
      previewRequests.push(request);
      return { requirement: request.requirement, stages: [], hops: [], predicted: { msPerToken: 10, tokensPerSecond: 100, bottleneckMs: 10 }, alternatives: [], assumptions: [] } satisfies Placement;
    },
  });
  await rpcServer.listen();
  app = await createGatewayApp({
    port: 0,
    pipeline,
    controlPlane: { redisUrl: REDIS_URL, prefix },
    bodyLimitBytes: 64 * 1024,
    localModels: { batonHome: home, ollamaModels: ollama },
    logger: false,
  });
  url = gatewayUrl(app);
});

afterAll(async () => {
  await app?.close();
  await rpcServer?.close();
  await rm(home, { recursive: true, force: true });
});

describe('POST /v1/chat/completions', () => {
  it('answers in OpenAI chat.completion shape with usage', async () => {
    const before = Math.floor(Date.now() / 1000);
    const response = await post('/v1/chat/completions', chat('say:Hello world;', { temperature: 0, seed: 42 }));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await response.json()) as ChatCompletion;
    expect(Object.keys(body).sort()).toEqual(['choices', 'created', 'id', 'model', 'object', 'system_fingerprint', 'usage']);
    expect(body.id).toMatch(/^chatcmpl-[0-9a-f]{32}$/);
    expect(body.object).toBe('chat.completion');
    expect(body.created).toBeGreaterThanOrEqual(before);
    expect(body.model).toBe('tiny');
    expect(body.choices).toHaveLength(1);
    expect(body.choices[0]).toEqual({ index: 0, message: { role: 'assistant', content: 'Hello world', refusal: null }, logprobs: null, finish_reason: 'stop' });
    // the prompt is the model's ChatML template rendered and tokenized
    const prompt = '<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nsay:Hello world;<|im_end|>\n<|im_start|>assistant\n';
    const expectedPrompt = tokenizer.encodePrompt(prompt);
    const sent = pipeline.requests.at(-1)!;
    expect(sent.promptTokens).toEqual(expectedPrompt);
    expect(sent.modelId).toBe('tiny');
    expect(sent.sampling).toMatchObject({ temperature: 0, topP: 1, topK: 0, minP: 0, seed: 42n, repetitionPenalty: 1 });
    expect(sent.maxTokens).toBe(CONTEXT - expectedPrompt.length); // default: the room left in the context
    expect(body.usage).toEqual({
      prompt_tokens: expectedPrompt.length,
      completion_tokens: Buffer.byteLength('Hello world'),
      total_tokens: expectedPrompt.length + Buffer.byteLength('Hello world'),
      prompt_tokens_details: { cached_tokens: 3 },
    });
  });

  it('passes sampling parameters through and accepts max_completion_tokens', async () => {
    const response = await post('/v1/chat/completions', chat('say:ok;', { temperature: 0.7, top_p: 0.9, top_k: 40, min_p: 0.05, presence_penalty: 0.5, frequency_penalty: -0.5, seed: -1, max_completion_tokens: 7, user: 'u1', n: 1 }));
    expect(response.status).toBe(200);
    const sent = pipeline.requests.at(-1)!;
    expect(sent.maxTokens).toBe(7);
    expect(sent.sampling).toEqual({ temperature: 0.7, topP: 0.9, topK: 40, minP: 0.05, presencePenalty: 0.5, frequencyPenalty: -0.5, repetitionPenalty: 1, seed: 2n ** 64n - 1n });
  });

  it('reports finish_reason length at max_tokens', async () => {
    const body = (await (await post('/v1/chat/completions', chat('say:abcdefgh;', { max_tokens: 3 }))).json()) as ChatCompletion;
    expect(body.choices[0]!.message.content).toBe('abc');
    expect(body.choices[0]!.finish_reason).toBe('length');
    expect(body.usage.completion_tokens).toBe(3);
    expect(body.usage.prompt_tokens_details.cached_tokens).toBe(3); // from the pipeline's final event
    expect(pipeline.aborted.filter((a) => a.request === pipeline.requests.at(-1))).toEqual([]); // ended by itself, not cancelled
  });

  it('streams chat.completion.chunk events ending with [DONE]', async () => {
    const response = await post('/v1/chat/completions', chat('say:Hi there;', { stream: true }));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const chunks = (await readSse(response)) as ChatCompletionChunk[];
    const first = chunks[0]!;
    expect(first.id).toMatch(/^chatcmpl-[0-9a-f]{32}$/);
    for (const c of chunks) {
      expectChunkEnvelope(c, first.id, first.created);
      expect(Object.keys(c).sort()).toEqual(['choices', 'created', 'id', 'model', 'object', 'system_fingerprint']);
    }
    expect(first.choices).toEqual([{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }]);
    const middle = chunks.slice(1, -1);
    expect(middle.length).toBeGreaterThan(0);
    for (const c of middle) {
      expect(c.choices).toHaveLength(1);
      expect(Object.keys(c.choices[0]!.delta)).toEqual(['content']);
      expect(c.choices[0]!.finish_reason).toBeNull();
      expect(c.choices[0]!.logprobs).toBeNull();
      expect(c.choices[0]!.delta.content!.length).toBeGreaterThan(0);
    }
    expect(middle.map((c) => c.choices[0]!.delta.content).join('')).toBe('Hi there');
    expect(chunks.at(-1)!.choices).toEqual([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]);
  });

  it('streams a usage chunk with empty choices when stream_options.include_usage is set', async () => {
    const response = await post('/v1/chat/completions', chat('say:abc;', { stream: true, stream_options: { include_usage: true } }));
    const chunks = (await readSse(response)) as ChatCompletionChunk[];
    for (const c of chunks.slice(0, -1)) expect(c.usage).toBeNull();
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    const promptTokens = pipeline.requests.at(-1)!.promptTokens.length;
    expect(last.usage).toEqual({ prompt_tokens: promptTokens, completion_tokens: 3, total_tokens: promptTokens + 3, prompt_tokens_details: { cached_tokens: 3 } });
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('stop');
  });

  it('keeps multi-byte UTF-8 characters whole across tokens', async () => {
    const text = 'héllo 世界 🎉 ünïcødé — ok';
    const response = await post('/v1/chat/completions', chat(`say:${text};`, { stream: true }));
    const chunks = (await readSse(response)) as ChatCompletionChunk[];
    const deltas = chunks.map((c) => c.choices[0]?.delta.content ?? '').filter((d) => d !== '');
    for (const d of deltas) expect(d).not.toContain('\uFFFD');
    expect(deltas.join('')).toBe(text);
    const body = (await (await post('/v1/chat/completions', chat(`say:${text};`))).json()) as ChatCompletion;
    expect(body.choices[0]!.message.content).toBe(text);
    expect(body.usage.completion_tokens).toBe(Buffer.byteLength(text));
  });

  it('accepts text content parts and the developer role', async () => {
    const response = await post('/v1/chat/completions', {
      model: 'tiny',
      messages: [{ role: 'developer', content: 'x' }, { role: 'user', content: [{ type: 'text', text: 'say:parts;' }] }],
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as ChatCompletion).choices[0]!.message.content).toBe('parts');
  });
});

describe('stop strings', () => {
  it('end the generation, are not included, and cancel the pipeline', async () => {
    const abortedBefore = pipeline.aborted.length;
    const body = (await (await post('/v1/chat/completions', chat('say:one two STOP three;', { stop: 'STOP' }))).json()) as ChatCompletion;
    expect(body.choices[0]!.message.content).toBe('one two ');
    expect(body.choices[0]!.finish_reason).toBe('stop');
    // the stop string is seen once the detokenizer releases it (it may hold a few bytes back)
    expect(body.usage.completion_tokens).toBeGreaterThanOrEqual(Buffer.byteLength('one two STOP'));
    expect(body.usage.completion_tokens).toBeLessThan(Buffer.byteLength('one two STOP three'));
    await vi_waitFor(() => pipeline.aborted.length > abortedBefore);
    expect(pipeline.aborted.at(-1)!.tokensSent).toBe(body.usage.completion_tokens);
  });

  it('match across token boundaries in a stream without emitting a partial stop string', async () => {
    const response = await post('/v1/chat/completions', chat('say:abc<EN abc<END> tail;', { stream: true, stop: ['<END>', 'zzz'] }));
    const chunks = (await readSse(response)) as ChatCompletionChunk[];
    const deltas = chunks.map((c) => c.choices[0]?.delta.content ?? '');
    expect(deltas.join('')).toBe('abc<EN abc');
    for (const d of deltas) expect(d).not.toContain('<END');
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('stop');
  });

  it('that never complete are emitted at the end', async () => {
    const body = (await (await post('/v1/completions', { model: 'tiny', prompt: 'say:ends with <EN;', stop: ['<END>'] })).json()) as TextCompletion;
    expect(body.choices[0]!.text).toBe('ends with <EN');
  });

  it('with multi-byte characters', async () => {
    const body = (await (await post('/v1/chat/completions', chat('say:日本語の停止テスト;', { stop: ['停止'] }))).json()) as ChatCompletion;
    expect(body.choices[0]!.message.content).toBe('日本語の');
  });
});

describe('POST /v1/completions', () => {
  it('answers in text_completion shape', async () => {
    const response = await post('/v1/completions', { model: 'tiny', prompt: 'say:raw text;', max_tokens: 50 });
    expect(response.status).toBe(200);
    const body = (await response.json()) as TextCompletion;
    expect(Object.keys(body).sort()).toEqual(['choices', 'created', 'id', 'model', 'object', 'system_fingerprint', 'usage']);
    expect(body.id).toMatch(/^cmpl-[0-9a-f]{32}$/);
    expect(body.object).toBe('text_completion');
    expect(body.choices).toEqual([{ index: 0, text: 'raw text', logprobs: null, finish_reason: 'stop' }]);
    expect(pipeline.requests.at(-1)!.promptTokens).toEqual(tokenizer.encodePrompt('say:raw text;'));
    expect(body.usage!.completion_tokens).toBe(8);
  });

  it('streams text_completion chunks', async () => {
    const response = await post('/v1/completions', { model: 'tiny', prompt: 'say:streamed;', stream: true, stream_options: { include_usage: true } });
    const chunks = (await readSse(response)) as TextCompletion[];
    for (const c of chunks) {
      expect(c.object).toBe('text_completion');
      expect(c.id).toBe(chunks[0]!.id);
    }
    const withChoices = chunks.filter((c) => c.choices.length > 0);
    expect(withChoices.map((c) => c.choices[0]!.text).join('')).toBe('streamed');
    expect(withChoices.at(-1)!.choices[0]).toEqual({ index: 0, text: '', logprobs: null, finish_reason: 'stop' });
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage!.completion_tokens).toBe(8);
  });
});

describe('bad input', () => {
  async function expectError(response: Response, status: number): Promise<OpenAIErrorBody['error']> {
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await response.json()) as OpenAIErrorBody;
    expect(Object.keys(body)).toEqual(['error']);
    expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    return body.error;
  }

  it('lists every validation problem in one 400', async () => {
    const error = await expectError(
      await post('/v1/chat/completions', { model: 'tiny', messages: [{ role: 'wizard', content: 5, extra: 1 }], max_tokens: 0, temperature: 'hot', stream: 'yes', bogus: true }),
      400,
    );
    expect(error.type).toBe('invalid_request_error');
    for (const part of ['bogus: unknown field', 'max_tokens must be at least 1', 'temperature', 'stream', 'messages.0.role', 'messages.0.content', 'messages.0.extra: unknown field']) {
      expect(error.message).toContain(part);
    }
    expect(error.message).toMatch(/\(\d+ problems\)/);
    // a wrong type is reported once, not with the range checks it also fails
    expect(error.message.match(/temperature/g)).toHaveLength(1);
    expect(error.message).toContain('temperature must be a number');
    expect(error.param).toBe('bogus');
    const notObject = await expectError(await post('/v1/chat/completions', { model: 'tiny', messages: ['hi'] }), 400);
    expect(notObject.message).toBe('invalid request: messages.0 must be an object');
  });

  it('refuses empty messages, a missing model, wrong stop types, n > 1', async () => {
    expect((await expectError(await post('/v1/chat/completions', { model: 'tiny', messages: [] }), 400)).message).toContain('messages must not be empty');
    expect((await expectError(await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }] }), 400)).message).toContain('model');
    expect((await expectError(await post('/v1/chat/completions', chat('x', { stop: [1] })), 400)).message).toContain('stop must be');
    expect((await expectError(await post('/v1/chat/completions', chat('x', { n: 2 })), 400)).message).toContain('n must be 1');
    expect((await expectError(await post('/v1/completions', { model: 'tiny', prompt: 7 }), 400)).message).toContain('prompt must be a string');
    expect((await expectError(await post('/v1/completions', { model: 'tiny', prompt: 'x', max_tokens: -5 }), 400)).param).toBe('max_tokens');
    expect((await expectError(await post('/v1/chat/completions', [1, 2]), 400)).message).toContain('expected a JSON object');
  });

  it('refuses invalid JSON', async () => {
    const error = await expectError(await post('/v1/chat/completions', '{"model": '), 400);
    expect(error.message).toContain('not valid JSON');
  });

  it('400 when prompt + max_tokens exceed the context', async () => {
    const promptTokens = tokenizer.encodePrompt('say:x;').length;
    const error = await expectError(await post('/v1/completions', { model: 'tiny', prompt: 'say:x;', max_tokens: CONTEXT }), 400);
    expect(error.message).toContain(`context length exceeded: prompt ${promptTokens} + max_tokens ${CONTEXT} > ${CONTEXT}`);
    expect(error.code).toBe('context_length_exceeded');
    const long = 'word '.repeat(CONTEXT);
    const error2 = await expectError(await post('/v1/chat/completions', chat(long)), 400);
    expect(error2.message).toMatch(new RegExp(`^context length exceeded: prompt \\d+ \\+ max_tokens 1 > ${CONTEXT}`));
  });

  it('404 for an unknown model, naming the served ones', async () => {
    const error = await expectError(await post('/v1/chat/completions', chat('x', { model: 'gpt-4' })), 404);
    expect(error.message).toBe("model 'gpt-4' not found; served models: tiny, cold");
    expect(error.code).toBe('model_not_found');
    expect(error.param).toBe('model');
    // a GGUF file on this machine that is not served: say how to serve it
    const local = await expectError(await post('/v1/chat/completions', chat('x', { model: 'tinyllama:latest' })), 404);
    expect(local.message).toMatch(/^model 'tinyllama:latest' not found; served models: tiny, cold; \S+sha256-[0-9a-f]{64} is on this machine but not served: serve it with `baton up --model \S+`$/);
  });

  it('503 with the reason when the model has no ready plan', async () => {
    const error = await expectError(await post('/v1/chat/completions', chat('x', { model: 'cold' })), 503);
    expect(error.message).toBe("model 'cold' is not ready: loading 40% (node alpha)");
  });

  it('503 naming the file when a served model\'s GGUF is not on the gateway\'s machine', async () => {
    const ghost = new FakePipeline([{ modelId: 'ghost', modelPath: join(home, 'nope.gguf'), contextLength: CONTEXT, planVersion: 1, ready: true }], tokenizer);
    const other = await createGatewayApp({ port: 0, pipeline: ghost, controlPlane: { redisUrl: REDIS_URL, prefix }, logger: false, localModels: { batonHome: home, ollamaModels: null } });
    try {
      const response = await fetch(`${gatewayUrl(other)}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat('x', { model: 'ghost' })) });
      const error = await expectError(response, 503);
      expect(error.message).toBe(`model 'ghost' cannot be used: ${join(home, 'nope.gguf')} is not on the gateway's machine (the gateway reads the tokenizer and chat template from the GGUF header): copy the file to the same path here`);
      expect(ghost.requests).toHaveLength(0);
    } finally {
      await other.close();
    }
  });

  it('413 for an oversized body', async () => {
    const error = await expectError(await post('/v1/chat/completions', chat('y'.repeat(100 * 1024))), 413);
    expect(error.message).toContain('65536 bytes');
  });

  it('404 in OpenAI shape for an unknown route', async () => {
    const error = await expectError(await fetch(`${url}/v1/nothing`), 404);
    expect(error.message).toContain('/v1/chat/completions');
  });

  it('does not disturb a request in flight', async () => {
    const text = 'steady stream of text';
    pipeline.tokenDelayMs = 5;
    try {
      const inflight = post('/v1/chat/completions', chat(`say:${text};`, { stream: true }));
      const bad = await Promise.all([
        post('/v1/chat/completions', { model: 'tiny', messages: [] }),
        post('/v1/chat/completions', '{'),
        post('/v1/chat/completions', chat('z'.repeat(100 * 1024))),
        post('/v1/chat/completions', chat('x', { model: 'nope' })),
        post('/v1/chat/completions', chat('x', { model: 'cold' })),
        post('/v1/completions', { model: 'tiny', prompt: 'x', max_tokens: 100000 }),
      ]);
      expect(bad.map((r) => r.status)).toEqual([400, 400, 413, 404, 503, 400]);
      const chunks = (await readSse(await inflight)) as ChatCompletionChunk[];
      expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(text);
    } finally {
      pipeline.tokenDelayMs = 1;
    }
  });
});

describe('concurrency and disconnects', () => {
  it('8 concurrent requests each get their own output', async () => {
    const texts = Array.from({ length: 8 }, (_, i) => `answer number ${i} ${'#'.repeat(i)}`);
    const results = await Promise.all(
      texts.map(async (t, i) => {
        if (i % 2 === 0) {
          const chunks = (await readSse(await post('/v1/chat/completions', chat(`say:${t};`, { stream: true })))) as ChatCompletionChunk[];
          return chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
        }
        return ((await (await post('/v1/chat/completions', chat(`say:${t};`))).json()) as ChatCompletion).choices[0]!.message.content;
      }),
    );
    expect(results).toEqual(texts);
  });

  it('a client that disconnects mid-stream aborts its generation', async () => {
    const abortedBefore = pipeline.aborted.length;
    const response = await post('/v1/chat/completions', chat('forever', { stream: true }));
    const reader = response.body!.getReader();
    let received = '';
    while (!received.includes('"content":"x')) received += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    await vi_waitFor(() => pipeline.aborted.length > abortedBefore);
    const aborted = pipeline.aborted.at(-1)!;
    expect(aborted.request.signal!.aborted).toBe(true);
    expect(aborted.tokensSent).toBeLessThan(aborted.request.maxTokens);
  });

  it('a client that disconnects before a non-streamed answer aborts its generation', async () => {
    const abortedBefore = pipeline.aborted.length;
    const client = new AbortController();
    const pending = fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(chat('forever')), signal: client.signal }).catch(() => null);
    const started = pipeline.requests.length;
    await vi_waitFor(() => pipeline.requests.length > started);
    client.abort();
    await pending;
    await vi_waitFor(() => pipeline.aborted.length > abortedBefore);
  });
});

describe('GET /v1/models', () => {
  it('lists served models with their status, then GGUF files from $BATON_HOME/models and Ollama', async () => {
    const response = await fetch(`${url}/v1/models`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as ModelList;
    expect(body.object).toBe('list');
    const tiny = body.data.find((m) => m.id === 'tiny')!;
    expect(tiny).toMatchObject({ object: 'model', owned_by: 'baton', baton: { status: 'ready', path: modelPath, contextLength: CONTEXT, planVersion: 3 } });
    expect(typeof tiny.created).toBe('number');
    expect(body.data.find((m) => m.id === 'cold')!.baton).toMatchObject({ status: 'not_ready', reason: 'loading 40% (node alpha)' });
    // tiny-llama.gguf is served (same path), so it is not listed again; the Ollama copy is
    expect(body.data.find((m) => m.id === 'tiny-llama')).toBeUndefined();
    const ollama = body.data.find((m) => m.id === 'tinyllama:latest')!;
    expect(ollama).toMatchObject({ object: 'model', owned_by: 'ollama', baton: { status: 'available', source: 'ollama', arch: 'llama', fileType: 'ALL_F32', contextLength: CONTEXT } });
    expect(ollama.baton.path).toMatch(/blobs\/sha256-[0-9a-f]{64}$/);
  });

  it('GET /v1/models/{id} returns one entry (ids with ":" and "/" included) or 404', async () => {
    const tiny = (await (await fetch(`${url}/v1/models/tiny`)).json()) as ModelList['data'][number];
    expect(tiny).toMatchObject({ id: 'tiny', object: 'model', baton: { status: 'ready' } });
    expect(((await (await fetch(`${url}/v1/models/tinyllama:latest`)).json()) as { id: string }).id).toBe('tinyllama:latest');
    const missing = await fetch(`${url}/v1/models/org/none`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as OpenAIErrorBody).error.message).toMatch(/^model 'org\/none' not found; known models: tiny, cold, tinyllama:latest$/);
  });

  it('listLocalModels finds both stores', async () => {
    const { listLocalModels } = await import('../src/index.js');
    const models = await listLocalModels({ batonHome: home, ollamaModels: join(home, 'ollama') });
    expect(models.map((m) => [m.name, m.source, m.arch])).toEqual([
      ['tiny-llama', 'baton', 'llama'],
      ['tinyllama:latest', 'ollama', 'llama'],
    ]);
  });
});

describe('cluster, plans, health', () => {
  it('GET /v1/cluster combines discovery and planner', async () => {
    const response = await fetch(`${url}/v1/cluster`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ nodes: [], links: [], plans: [], unplaced: [{ modelId: 'big', modelPath: '/x/big.gguf', reason: 'does not fit' }] });
  });

  it('POST /v1/plans/preview resolves a model name and fills the requirement', async () => {
    const response = await post('/v1/plans/preview', { model: 'tiny', sequences: 2 });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { modelPath: string; placement: Placement };
    expect(body.modelPath).toBe(modelPath);
    expect(previewRequests.at(-1)).toEqual({ modelPath, requirement: { contextTokens: CONTEXT, sequences: 2, kvDType: 'f16', objective: 'latency' } });
    expect(body.placement.predicted.tokensPerSecond).toBe(100);
    expect((await post('/v1/plans/preview', { model: 'nope' })).status).toBe(404);
    expect((await post('/v1/plans/preview', { model: 'tiny', kvDType: 'f8' })).status).toBe(400);
  });

  it('GET /healthz and /readyz', async () => {
    expect(await (await fetch(`${url}/healthz`)).json()).toMatchObject({ status: 'ok' });
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, reasons: [] });
  });

  it('/readyz is 503 with reasons when Redis is unreachable and no model is ready', async () => {
    const cold = new FakePipeline([{ modelId: 'cold', modelPath, contextLength: CONTEXT, planVersion: 1, ready: false, reason: 'loading' }], tokenizer);
    const other = await createGatewayApp({ port: 0, pipeline: cold, controlPlane: { redisUrl: 'redis://127.0.0.1:1', prefix }, logger: false, localModels: { batonHome: home, ollamaModels: null } });
    try {
      const response = await fetch(`${gatewayUrl(other)}/readyz`);
      expect(response.status).toBe(503);
      const body = (await response.json()) as { ready: boolean; reasons: string[] };
      expect(body.ready).toBe(false);
      expect(body.reasons).toHaveLength(2);
      expect(body.reasons[0]).toContain('Redis at redis://127.0.0.1:1 is unreachable');
      expect(body.reasons[1]).toBe('no model is ready: cold: loading');
    } finally {
      await other.close();
    }
  });

  it('answers CORS preflights from local pages only (by default)', async () => {
    const preflight = (origin: string) =>
      fetch(`${url}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
    const local = await preflight('http://localhost:3000');
    expect(local.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
    expect(local.headers.get('access-control-allow-methods')).toContain('POST');
    expect((await preflight('https://evil.example')).headers.get('access-control-allow-origin')).toBeNull();
  });

  it('requires an API key when configured', async () => {
    const other = await createGatewayApp({ port: 0, pipeline, controlPlane: { redisUrl: REDIS_URL, prefix }, apiKeys: ['sekrit'], logger: false, localModels: { batonHome: home, ollamaModels: null } });
    try {
      const base = gatewayUrl(other);
      const denied = await fetch(`${base}/v1/models`);
      expect(denied.status).toBe(401);
      expect(((await denied.json()) as OpenAIErrorBody).error.code).toBe('invalid_api_key');
      expect((await fetch(`${base}/v1/models`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      expect((await fetch(`${base}/v1/models`, { headers: { authorization: 'Bearer sekrit' } })).status).toBe(200);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
    } finally {
      await other.close();
    }
  });
});

async function vi_waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
