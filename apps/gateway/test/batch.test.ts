// Batch jobs through the real gateway over HTTP and the machine's Redis (own key prefix), with
// the test-double pipeline (deterministic answers, see fake-pipeline.ts): submit → progress →
// results (equal to the synchronous endpoint's) → cancel; validation; a restart that resumes an
// unfinished batch; retention.
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { readGguf, writeRandomModel } from '@baton/gguf';
import { Tokenizer } from '@baton/tokenizer';
import type { ChatCompletion, OpenAIErrorBody, TextCompletion } from '@baton/contracts';
import { createGatewayApp, gatewayUrl } from '../src/index.js';
import type { BatchObject, BatchResults } from '../src/batch/batch-logic.js';
import { FakePipeline, type FakeModel } from './fake-pipeline.js';
import { RedisConnections } from '@baton/control-plane';
import { BatchQueue } from '../src/batch/batch.queue.js';
import { responseLine } from '../src/batch/batch-logic.js';
import { REDIS_URL, dropPrefix, redisClient, testPrefix, waitFor } from '../../discovery/test/processes.js';

const CONTEXT = 256;
const MAX_REQUESTS = 6;
const KEEP_SECONDS = 3600;
// read by the batch module when the app starts
process.env.BATON_BATCH_MAX_REQUESTS = String(MAX_REQUESTS);
process.env.BATON_BATCH_CONCURRENCY = '2';
process.env.BATON_BATCH_KEEP_SECONDS = String(KEEP_SECONDS);
process.env.BATON_BATCH_KEEP = '100';

const redis = redisClient();
const prefix = testPrefix();
let home: string;
let pipeline: FakePipeline;
let app: NestFastifyApplication;
let url: string;
/** A model that is still loading until a test says otherwise. */
const warm: FakeModel = { modelId: 'warm', modelPath: '', contextLength: CONTEXT, planVersion: 1, ready: false, reason: 'loading 10%' };

function startApp(): Promise<NestFastifyApplication> {
  return createGatewayApp({ port: 0, pipeline, controlPlane: { redisUrl: REDIS_URL, prefix }, logger: false, localModels: { batonHome: home, ollamaModels: null } });
}

async function post(path: string, body: unknown): Promise<Response> {
  return fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

async function json<T>(response: Response, status = 200): Promise<T> {
  const body = (await response.json()) as T;
  if (response.status !== status) throw new Error(`expected ${status}, got ${response.status}: ${JSON.stringify(body)}`);
  return body;
}

const chatBody = (content: string, extra: Record<string, unknown> = {}) => ({ model: 'tiny', messages: [{ role: 'user', content }], temperature: 0, ...extra });
const chatItem = (id: string, content: string, extra: Record<string, unknown> = {}) => ({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: chatBody(content, extra) });
const textItem = (id: string, prompt: string, extra: Record<string, unknown> = {}) => ({ custom_id: id, url: '/v1/completions', body: { model: 'tiny', prompt, temperature: 0, ...extra } });

const status = async (id: string) => json<BatchObject>(await fetch(`${url}/v1/batches/${id}`));
const results = async (id: string) => json<BatchResults>(await fetch(`${url}/v1/batches/${id}/results`));
const ended = (id: string) => waitFor(async () => {
  const b = await status(id);
  return ['completed', 'failed', 'cancelled'].includes(b.status) ? b : undefined;
}, 30_000);

/** A completion body without the fields that differ per call. */
function comparable(body: ChatCompletion | TextCompletion): unknown {
  const { id: _id, created: _created, ...rest } = body;
  return rest;
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'baton-batch-'));
  await mkdir(join(home, 'models'), { recursive: true });
  const modelPath = join(home, 'models', 'tiny.gguf');
  warm.modelPath = modelPath;
  await writeRandomModel({ out: modelPath, arch: 'llama', dim: 32, layers: 1, heads: 2, kvHeads: 1, ffn: 64, type: 'f32', context: CONTEXT, seed: 7 });
  const tokenizer = Tokenizer.fromGguf((await readGguf(modelPath)).metadata);
  pipeline = new FakePipeline([{ modelId: 'tiny', modelPath, contextLength: CONTEXT, planVersion: 1, ready: true }, warm], tokenizer);
  app = await startApp();
  url = gatewayUrl(app);
});

afterAll(async () => {
  await app?.close();
  await dropPrefix(redis, prefix);
  redis.disconnect();
  await rm(home, { recursive: true, force: true });
});

describe('POST /v1/batches', () => {
  it('runs every request and gives the synchronous endpoint\'s response bodies', async () => {
    const created = await json<BatchObject>(await post('/v1/batches', {
      requests: [chatItem('a', 'say:Hello;'), textItem('b', 'say:plain text;'), chatItem('c', 'say:abcdefgh;', { max_tokens: 3 })],
      metadata: { job: 'nightly' },
    }));
    expect(created).toMatchObject({ object: 'batch', endpoint: null, request_counts: { total: 3 }, metadata: { job: 'nightly' }, errors: null });
    expect(created.id).toMatch(/^batch_[0-9a-f]{32}$/);
    expect(['queued', 'in_progress']).toContain(created.status);
    expect(created.created_at).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));

    const done = await ended(created.id);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: 3, completed: 3, failed: 0 });
    expect(done.in_progress_at).not.toBeNull();
    expect(done.completed_at).toBeGreaterThanOrEqual(done.in_progress_at!);
    expect(done.expires_at).toBeGreaterThanOrEqual(done.completed_at! + KEEP_SECONDS);

    const out = await results(created.id);
    expect(out).toMatchObject({ object: 'list', batch_id: created.id, status: 'completed' });
    expect(out.data.map((r) => r.custom_id)).toEqual(['a', 'b', 'c']);
    const sync = [
      await json<ChatCompletion>(await post('/v1/chat/completions', chatBody('say:Hello;'))),
      await json<TextCompletion>(await post('/v1/completions', { model: 'tiny', prompt: 'say:plain text;', temperature: 0 })),
      await json<ChatCompletion>(await post('/v1/chat/completions', chatBody('say:abcdefgh;', { max_tokens: 3 }))),
    ];
    for (const [i, line] of out.data.entries()) {
      expect(line.id).toMatch(/^batch_req_[0-9a-f]{32}$/);
      expect(line.error).toBeNull();
      expect(line.response!.status_code).toBe(200);
      const body = line.response!.body as ChatCompletion | TextCompletion;
      expect(line.response!.request_id).toBe(body.id);
      expect(comparable(body)).toEqual(comparable(sync[i]!));
    }
    expect((out.data[0]!.response!.body as ChatCompletion).choices[0]!.message.content).toBe('Hello');
    expect((out.data[2]!.response!.body as ChatCompletion).choices[0]!.finish_reason).toBe('length');
    // the batch's keys expire with it
    const ttl = await redis.pttl(`${prefix}batch:${created.id}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(KEEP_SECONDS * 1000);
  });

  it('gives an unknown model\'s request a 404 result and carries on', async () => {
    const created = await json<BatchObject>(await post('/v1/batches', {
      requests: [chatItem('ok-1', 'say:one;'), { ...chatItem('bad', 'say:two;'), body: { ...chatBody('say:two;'), model: 'gpt-4' } }, textItem('ok-2', 'say:three;')],
    }));
    const done = await ended(created.id);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: 3, completed: 2, failed: 1 });
    const out = await results(created.id);
    const bad = out.data.find((r) => r.custom_id === 'bad')!;
    expect(bad.response!.status_code).toBe(404);
    expect((bad.response!.body as OpenAIErrorBody).error).toMatchObject({ code: 'model_not_found', param: 'model', type: 'invalid_request_error' });
    expect((bad.response!.body as OpenAIErrorBody).error.message).toBe("model 'gpt-4' not found; served models: tiny, warm");
    expect(out.data.filter((r) => r.response!.status_code === 200).map((r) => r.custom_id)).toEqual(['ok-1', 'ok-2']);
  });

  it('reports a batch whose every request failed as failed', async () => {
    const created = await json<BatchObject>(await post('/v1/batches', { requests: [textItem('x', 'hi', { model: 'nope' })] }));
    const done = await ended(created.id);
    expect(done.status).toBe('failed');
    expect(done.failed_at).not.toBeNull();
    expect(done.request_counts).toEqual({ total: 1, completed: 0, failed: 1 });
  });

  it('refuses invalid batches with every problem listed, and queues nothing', async () => {
    const before = pipeline.requests.length;
    const response = await post('/v1/batches', {
      requests: [
        chatItem('a', 'x', { temperature: 5 }),
        { custom_id: 'a', url: '/v1/embeddings', body: {} },
        { custom_id: 'c', url: '/v1/completions', body: { model: 'tiny', prompt: 'x', stream: true } },
        { custom_id: '', url: '/v1/completions', body: { model: 'tiny', prompt: 'x', bogus: 1 } },
      ],
      metadata: { k: 5 },
    });
    const error = (await json<OpenAIErrorBody>(response, 400)).error;
    expect(error.type).toBe('invalid_request_error');
    expect(error.message).toMatch(/^invalid request \(\d+ problems\): /);
    expect(error.message).toContain('requests[1].url must be one of /v1/chat/completions, /v1/completions');
    expect(error.message).toContain('requests[3].custom_id must not be empty');
    expect(error.message).toContain('requests[0].body.temperature must not be greater than 2');
    expect(error.message).toContain('requests[3].body.bogus: unknown field (remove it)');
    // envelope problems come first; bodies are checked once the envelope is valid
    const second = (await json<OpenAIErrorBody>(await post('/v1/batches', {
      requests: [
        chatItem('a', 'x', { temperature: 5 }),
        { custom_id: 'a', url: '/v1/completions', body: { model: 'tiny', prompt: 'x', stream: true } },
        { custom_id: 'd', url: '/v1/completions', body: { model: 'tiny', prompt: 'x', bogus: 1 } },
      ],
      metadata: { k: 5 },
    }), 400)).error;
    expect(second.message).toContain('requests[0].body.temperature must not be greater than 2');
    expect(second.message).toContain('requests[1].custom_id: "a" is already used by requests[0]; custom_ids must be unique');
    expect(second.message).toContain('requests[1].body.stream: streaming is not available in a batch');
    expect(second.message).toContain('requests[2].body.bogus: unknown field (remove it)');
    expect(second.message).toContain('metadata.k must be a string');
    for (const bad of [{}, { requests: [] }, { requests: 'x' }, [1], { requests: [1] }]) {
      const e = (await json<OpenAIErrorBody>(await post('/v1/batches', bad), 400)).error;
      expect(e.message).toMatch(/^invalid request/);
    }
    expect(pipeline.requests.length).toBe(before);
  });

  it('refuses more requests than the limit with the limit in the message', async () => {
    const requests = Array.from({ length: MAX_REQUESTS + 1 }, (_, i) => textItem(`r${i}`, 'x'));
    const error = (await json<OpenAIErrorBody>(await post('/v1/batches', { requests }), 400)).error;
    expect(error.code).toBe('too_many_requests');
    expect(error.message).toBe(`invalid request: requests: ${MAX_REQUESTS + 1} requests in one batch, the limit is ${MAX_REQUESTS} (BATON_BATCH_MAX_REQUESTS); split them into several batches`);
  });
});

describe('retries', () => {
  it('retries a request whose model is not ready yet (503) and completes it once it is', async () => {
    const created = await json<BatchObject>(await post('/v1/batches', { requests: [textItem('w', 'say:warm;', { model: 'warm' })] }));
    // the first attempt got 503 and BullMQ holds the job back for its backoff
    await waitFor(async () => (await redis.zscore(`${prefix.slice(0, -1)}:batches:delayed`, `${created.id}-0`)) !== null || undefined);
    expect((await status(created.id)).status).toBe('in_progress');
    warm.ready = true;
    const done = await ended(created.id);
    expect(done.request_counts).toEqual({ total: 1, completed: 1, failed: 0 });
    expect(((await results(created.id)).data[0]!.response!.body as TextCompletion).choices[0]!.text).toBe('warm');
  });
});

describe('progress and cancel', () => {
  it('counts requests as they finish, queues batches behind busy workers, and cancels running and waiting requests', async () => {
    pipeline.tokenDelayMs = 20;
    try {
      // concurrency 2: the two short requests finish, then the two "forever" ones occupy both workers
      const created = await json<BatchObject>(await post('/v1/batches', {
        requests: [chatItem('s1', 'say:ab;'), chatItem('s2', 'say:cd;'), textItem('f1', 'forever'), textItem('f2', 'forever'), textItem('f3', 'forever')],
      }));
      const midway = await waitFor(async () => {
        const b = await status(created.id);
        return b.request_counts.completed === 2 && pipeline.active === 2 ? b : undefined;
      });
      expect(midway.status).toBe('in_progress');
      expect(midway.request_counts).toEqual({ total: 5, completed: 2, failed: 0 });
      const partial = await results(created.id);
      expect(partial.status).toBe('in_progress');
      expect(partial.data.map((r) => r.custom_id)).toEqual(['s1', 's2']);

      const second = await json<BatchObject>(await post('/v1/batches', { requests: [textItem('later', 'say:later;')] }));
      expect(second.status).toBe('queued');

      const abortedBefore = pipeline.aborted.length;
      const cancelled = await json<BatchObject>(await post(`/v1/batches/${created.id}/cancel`, {}));
      expect(cancelled.status).toBe('cancelled');
      expect(cancelled.cancelled_at).not.toBeNull();
      // the running ones stop (their sequences are aborted), the waiting one never starts
      await waitFor(() => pipeline.aborted.length >= abortedBefore + 2 || undefined);
      const out = await results(created.id);
      expect(out.status).toBe('cancelled');
      expect(out.data.map((r) => [r.custom_id, r.response?.status_code ?? r.error!.code])).toEqual([
        ['s1', 200], ['s2', 200], ['f1', 'batch_cancelled'], ['f2', 'batch_cancelled'], ['f3', 'batch_cancelled'],
      ]);
      expect((await status(created.id)).request_counts).toEqual({ total: 5, completed: 2, failed: 0 });
      // the queued batch runs now
      expect((await ended(second.id)).status).toBe('completed');
      // cancelling again is harmless; cancelling an ended batch is a conflict
      expect((await json<BatchObject>(await post(`/v1/batches/${created.id}/cancel`, {}))).status).toBe('cancelled');
      const conflict = (await json<OpenAIErrorBody>(await post(`/v1/batches/${second.id}/cancel`, {}), 409)).error;
      expect(conflict.message).toBe(`batch ${second.id} has already completed; there is nothing to cancel`);
    } finally {
      pipeline.tokenDelayMs = 1;
    }
  });

  it('answers 404 for unknown or malformed batch ids', async () => {
    const unknown = (await json<OpenAIErrorBody>(await fetch(`${url}/v1/batches/batch_${'0'.repeat(32)}`), 404)).error;
    expect(unknown).toMatchObject({ code: 'batch_not_found', message: `batch batch_${'0'.repeat(32)} not found (unknown, or its results have expired)` });
    expect((await json<OpenAIErrorBody>(await fetch(`${url}/v1/batches/nope/results`), 404)).error.code).toBe('batch_not_found');
    expect((await json<OpenAIErrorBody>(await post('/v1/batches/nope/cancel', {}), 404)).error.code).toBe('batch_not_found');
  });

  it('lists recent batches newest first, with paging', async () => {
    const list = await json<{ object: string; data: BatchObject[]; has_more: boolean; first_id: string; last_id: string }>(await fetch(`${url}/v1/batches`));
    expect(list.object).toBe('list');
    expect(list.data.length).toBeGreaterThanOrEqual(4);
    const times = list.data.map((b) => b.created_at);
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    const page = await json<{ data: BatchObject[]; has_more: boolean; last_id: string }>(await fetch(`${url}/v1/batches?limit=2`));
    expect(page.data.map((b) => b.id)).toEqual(list.data.slice(0, 2).map((b) => b.id));
    expect(page.has_more).toBe(true);
    const next = await json<{ data: BatchObject[] }>(await fetch(`${url}/v1/batches?limit=2&after=${page.last_id}`));
    expect(next.data.map((b) => b.id)).toEqual(list.data.slice(2, 4).map((b) => b.id));
    expect((await json<OpenAIErrorBody>(await fetch(`${url}/v1/batches?limit=0`), 400)).error.message).toBe('invalid request: limit must be an integer from 1 to 100, got "0"');
  });
});

describe('restart', () => {
  it('resumes an unfinished batch when the gateway starts again', async () => {
    pipeline.tokenDelayMs = 20;
    let id: string;
    try {
      const created = await json<BatchObject>(await post('/v1/batches', {
        requests: [textItem('r1', 'say:0123456789;'), textItem('r2', 'say:abcdefghij;'), textItem('r3', 'say:klmnopqrst;')],
      }));
      id = created.id;
      await waitFor(() => pipeline.active > 0 || undefined);
      const abortedBefore = pipeline.aborted.length;
      await app.close(); // aborts the running requests and puts them back in the queue
      expect(pipeline.aborted.length).toBeGreaterThan(abortedBefore);
      expect((await redis.hget(`${prefix}batch:${id}`, 'completed'))).not.toBe('3');
    } finally {
      pipeline.tokenDelayMs = 1;
    }
    expect(pipeline.active).toBe(0);
    app = await startApp();
    url = gatewayUrl(app);
    const done = await ended(id);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: 3, completed: 3, failed: 0 });
    const out = await results(id);
    expect(out.data.map((r) => (r.response!.body as TextCompletion).choices[0]!.text)).toEqual(['0123456789', 'abcdefghij', 'klmnopqrst']);
  });
});

describe('retention', () => {
  it('deletes the oldest ended batches beyond the kept count, never unfinished ones', async () => {
    // the queue class alone (no worker) under its own prefix: batches are ended by recording results
    const own = testPrefix();
    const options = { redisUrl: REDIS_URL, prefix: own };
    const connections = new RedisConnections(options);
    const queue = new BatchQueue(connections, options);
    try {
      await queue.ready(10_000);
      const request = { custom_id: 'a', url: '/v1/completions' as const, body: { model: 'tiny', prompt: 'x' } };
      const ids = ['batch_' + '1'.repeat(32), 'batch_' + '2'.repeat(32), 'batch_' + '3'.repeat(32), 'batch_' + '4'.repeat(32)];
      for (const [i, id] of ids.entries()) await queue.create(id, [request], null, Date.now() + i, 60);
      // the oldest stays unfinished; the next two end
      for (const id of ids.slice(1, 3)) expect(await queue.record(id, 0, responseLine('a', 200, {}), 'completed', Date.now(), 60)).toBe(1);
      expect(await queue.record(ids[1]!, 0, responseLine('a', 200, {}), 'completed', Date.now(), 60)).toBeNull(); // recorded once only
      expect(await queue.trim(2)).toBe(1);
      expect((await queue.list(10)).records.map((r) => r.id)).toEqual([ids[3], ids[2], ids[0]]);
      expect(await queue.get(ids[1]!)).toBeNull();
      expect(await redis.exists(`${own}batch:${ids[1]}:results`)).toBe(0);
    } finally {
      await queue.close(() => undefined);
      await connections.onApplicationShutdown();
      await dropPrefix(redis, own);
    }
  });
});

describe('Redis unreachable', () => {
  it('answers 503 saying so, and the gateway still starts and stops', async () => {
    const other = await createGatewayApp({ port: 0, pipeline, controlPlane: { redisUrl: 'redis://127.0.0.1:1', prefix }, logger: false, localModels: { batonHome: home, ollamaModels: null } });
    try {
      const response = await fetch(`${gatewayUrl(other)}/v1/batches`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ requests: [textItem('a', 'x')] }) });
      const error = (await json<OpenAIErrorBody>(response, 503)).error;
      expect(error.code).toBe('redis_unavailable');
      expect(error.message).toMatch(/^batch jobs are unavailable: Redis at redis:\/\/127\.0\.0\.1:1 does not answer \(.+\); retry when it is back$/);
      expect((await json<OpenAIErrorBody>(await fetch(`${gatewayUrl(other)}/v1/batches`), 503)).error.code).toBe('redis_unavailable');
    } finally {
      await other.close();
    }
  });
});
