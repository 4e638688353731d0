// Batch jobs end to end with real processes: `baton up` (Redis, discovery, planner, a shard, the
// gateway with its BullMQ worker) and the `baton batch` CLI. A 3-request batch's greedy outputs
// equal the synchronous endpoints' answers to the same requests.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeRandomModel } from '@baton/gguf';
import type { ChatCompletion, TextCompletion } from '@baton/contracts';
import type { BatchObject, BatchResultLine } from '../src/batch/batch-logic.js';
import { CLI, redisClient, startProcess, startUp, stopUp, tempHome, type UpStack } from '../../discovery/test/processes.js';

const home = tempHome();
const modelPath = join(home, 'bat.gguf');
const redis = redisClient();
let stack: UpStack | undefined;
let url: string;

const REQUESTS = [
  { custom_id: 'fox', method: 'POST', url: '/v1/completions', body: { model: 'bat', prompt: 'The quick brown fox', max_tokens: 12, temperature: 0 } },
  { custom_id: 'chat', method: 'POST', url: '/v1/chat/completions', body: { model: 'bat', messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 12, temperature: 0 } },
  { custom_id: 'once', method: 'POST', url: '/v1/completions', body: { model: 'bat', prompt: 'Once upon a time', max_tokens: 12, temperature: 0 } },
];

/** Runs the CLI to completion; its exit code and output. */
async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = startProcess(CLI, args, { BATON_HOME: home });
  let stdout = '';
  let stderr = '';
  proc.child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await proc.exited;
  return { code, stdout, stderr };
}

function comparable(body: ChatCompletion | TextCompletion): unknown {
  const { id: _id, created: _created, ...rest } = body;
  return rest;
}

beforeAll(async () => {
  await writeRandomModel({ out: modelPath, arch: 'llama', dim: 128, layers: 4, heads: 4, kvHeads: 2, ffn: 256, type: 'f32', context: 1024, seed: 5, name: 'bat' });
  stack = await startUp(['--shards', '1', '--model', modelPath, '--kv-dtype', 'f32', '--context', '512', '--sequences', '4'], { BATON_HOME: home });
  url = stack.url;
}, 180_000);

afterAll(async () => {
  await stopUp(stack, redis);
  redis.disconnect();
  rmSync(home, { recursive: true, force: true });
}, 60_000);

describe('baton batch against a real cluster', () => {
  it('gives the same greedy outputs as the synchronous endpoints', async () => {
    const input = join(home, 'in.jsonl');
    writeFileSync(input, REQUESTS.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const submitted = await cli(['batch', 'submit', input, '--url', url, '--wait', '--json']);
    expect(submitted.code, submitted.stderr).toBe(0);
    const batch = JSON.parse(submitted.stdout) as BatchObject;
    expect(batch.status).toBe('completed');
    expect(batch.request_counts).toEqual({ total: 3, completed: 3, failed: 0 });

    const out = join(home, 'out.jsonl');
    const fetched = await cli(['batch', 'results', batch.id, '--url', url, '--out', out]);
    expect(fetched.code, fetched.stderr).toBe(0);
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as BatchResultLine);
    expect(lines.map((l) => l.custom_id)).toEqual(['fox', 'chat', 'once']);

    for (const [i, request] of REQUESTS.entries()) {
      const response = await fetch(`${url}${request.url}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request.body) });
      expect(response.status).toBe(200);
      const sync = (await response.json()) as ChatCompletion | TextCompletion;
      expect(lines[i]!.response!.status_code).toBe(200);
      const body = lines[i]!.response!.body as ChatCompletion | TextCompletion;
      expect(comparable(body)).toEqual(comparable(sync));
      expect(body.usage.completion_tokens).toBeGreaterThan(0);
    }
    const texts = lines.map((l) => {
      const body = l.response!.body as ChatCompletion & TextCompletion;
      return body.object === 'chat.completion' ? (body as ChatCompletion).choices[0]!.message.content : (body as TextCompletion).choices[0]!.text;
    });
    expect(new Set(texts).size).toBe(3);

    const status = await cli(['batch', 'status', batch.id, '--url', url]);
    expect(status.stdout.trim()).toBe(`${batch.id}  completed  3/3 done (3 completed, 0 failed)`);
  }, 120_000);

  it('reports a malformed line by its number and an unknown model per request', async () => {
    const bad = join(home, 'bad.jsonl');
    writeFileSync(bad, `${JSON.stringify(REQUESTS[0])}\n\n{"custom_id": "x", "url": \n`);
    const malformed = await cli(['batch', 'submit', bad, '--url', url]);
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toMatch(/^baton batch submit: \S+bad\.jsonl: line 3: not valid JSON/);

    const invalid = join(home, 'invalid.jsonl');
    writeFileSync(invalid, `${JSON.stringify(REQUESTS[0])}\n${JSON.stringify({ ...REQUESTS[2], body: { ...REQUESTS[2]!.body, temperature: 9 } })}\n`);
    const refused = await cli(['batch', 'submit', invalid, '--url', url]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^baton batch submit: 400: \S+invalid\.jsonl: invalid request: line 2: body\.temperature must not be greater than 2$/m);

    const unknown = join(home, 'unknown.jsonl');
    writeFileSync(unknown, `${JSON.stringify({ ...REQUESTS[0], body: { ...REQUESTS[0]!.body, model: 'nope' } })}\n${JSON.stringify(REQUESTS[2])}\n`);
    const run = await cli(['batch', 'submit', unknown, '--url', url, '--wait', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const batch = JSON.parse(run.stdout) as BatchObject;
    expect(batch.request_counts).toEqual({ total: 2, completed: 1, failed: 1 });
    const results = await cli(['batch', 'results', batch.id, '--url', url]);
    const lines = results.stdout.trim().split('\n').map((l) => JSON.parse(l) as BatchResultLine);
    expect(lines[0]!.response!.status_code).toBe(404);
    expect(lines[1]!.response!.status_code).toBe(200);

    const listed = await cli(['batch', 'list', '--url', url, '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { data: BatchObject[] }).data[0]!.id).toBe(batch.id);
    const table = await cli(['batch', 'list', '--url', url]);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+STATUS\s+TOTAL\s+COMPLETED\s+FAILED\s+CREATED$/);
    const cancel = await cli(['batch', 'cancel', batch.id, '--url', url]);
    expect(cancel.code).toBe(1);
    expect(cancel.stderr.trim()).toBe(`baton batch cancel: 409: batch ${batch.id} has already completed; there is nothing to cancel`);
  }, 120_000);
});
