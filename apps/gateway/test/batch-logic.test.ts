// The pure parts of batch jobs: JSONL input, validation, options, status and result shapes.
import { describe, expect, it } from 'vitest';
import {
  BatchInputError, batchKeys, batchOptionsFromEnv, batchStatus, DEFAULT_BATCH_OPTIONS, errorLine, newRecordFields, orderResults, parseBatchJsonl,
  parseRecord, requestJobId, responseLine, succeeded, toBatchObject, validateBatchCreate, withLineNumbers, type BatchRecord,
} from '../src/batch/batch-logic.js';

const chat = (id: string, extra: Record<string, unknown> = {}) => ({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'm', messages: [{ role: 'user', content: 'hi' }], ...extra } });

describe('parseBatchJsonl', () => {
  it('reads OpenAI batch-input lines, skipping blank ones, with their line numbers', () => {
    const text = [JSON.stringify(chat('a')), '', '  ', JSON.stringify({ custom_id: 'b', url: '/v1/completions', body: { model: 'm', prompt: 'x' } }) + '\r', ''].join('\n');
    const parsed = parseBatchJsonl(text);
    expect(parsed.requests.map((r) => r.custom_id)).toEqual(['a', 'b']);
    expect(parsed.lines).toEqual([1, 4]);
  });

  it.each([
    ['{"custom_id": "a", "url": "/v1/completions", "body": {}}\n{"custom_id": "b",', /^line 2: not valid JSON \(.+\): \{"custom_id": "b",$/],
    ['[1, 2]', /^line 1: expected a JSON object \{"custom_id", "method", "url", "body"\}, got an array$/],
    ['\n\n"text"', /^line 3: expected a JSON object .*, got string$/],
    ['{"custom_id": "a", "url": "/v1/completions"}', /^line 1: "body" is missing; each line needs \{"custom_id", "method", "url", "body"\}$/],
    ['\n \n', /^the file holds no requests: write one JSON object per line$/],
  ])('names the line of a malformed input: %j', (text, message) => {
    expect(() => parseBatchJsonl(text)).toThrow(BatchInputError);
    expect(() => parseBatchJsonl(text)).toThrow(message);
  });

  it('maps requests[i] in server messages back to line numbers', () => {
    expect(withLineNumbers('invalid request (2 problems): requests[0].body.temperature must not be greater than 2; requests[1].custom_id: "a" is already used by requests[0]', [3, 7]))
      .toBe('invalid request (2 problems): line 3: body.temperature must not be greater than 2; line 7: custom_id: "a" is already used by line 3');
    expect(withLineNumbers('requests[9] x', [1])).toBe('requests[9] x');
  });
});

describe('validateBatchCreate', () => {
  it('accepts inline requests and metadata', () => {
    const result = validateBatchCreate({ requests: [chat('a'), { custom_id: 'b', url: '/v1/completions', body: { model: 'm', prompt: 'p', max_tokens: 4 } }], metadata: { team: 'x' } }, 10);
    expect(result).toEqual({
      ok: true,
      value: {
        requests: [
          { custom_id: 'a', url: '/v1/chat/completions', body: chat('a').body },
          { custom_id: 'b', url: '/v1/completions', body: { model: 'm', prompt: 'p', max_tokens: 4 } },
        ],
        metadata: { team: 'x' },
      },
    });
  });

  it('refuses an oversized batch before looking at its requests', () => {
    const result = validateBatchCreate({ requests: Array.from({ length: 11 }, () => 'not even an object') }, 10);
    expect(result).toEqual({ ok: false, status: 400, code: 'too_many_requests', problems: ['requests: 11 requests in one batch, the limit is 10 (BATON_BATCH_MAX_REQUESTS); split them into several batches'] });
  });

  it('lists every problem: envelope, bodies, duplicates, metadata', () => {
    const result = validateBatchCreate({
      requests: [chat('a', { temperature: 3, max_tokens: 0 }), chat('a'), { custom_id: 'c', url: '/v1/completions', body: { model: 'm', prompt: 'x', stream: true } }],
      metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])),
    }, 10);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems).toEqual([
      'requests[0].body.max_tokens must be at least 1',
      'requests[0].body.temperature must not be greater than 2',
      'requests[1].custom_id: "a" is already used by requests[0]; custom_ids must be unique',
      'requests[2].body.stream: streaming is not available in a batch; remove stream (results are collected whole)',
      'metadata: at most 16 keys, got 17',
    ]);
  });

  it('names envelope problems by request index', () => {
    const result = validateBatchCreate({ requests: [{ custom_id: 'a', url: '/v1/embeddings', body: {} }, { url: '/v1/completions', body: 'x' }], extra: 1 }, 10);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems).toEqual(expect.arrayContaining([
      'requests[0].url must be one of /v1/chat/completions, /v1/completions',
      'requests[1].custom_id must be a string',
      'requests[1].body must be an object (the request body of url)',
    ]));
    expect(result.problems.some((p) => p.includes('extra'))).toBe(true);
  });
});

describe('options', () => {
  it('reads BATON_BATCH_* with defaults and names a bad value', () => {
    expect(batchOptionsFromEnv({})).toEqual(DEFAULT_BATCH_OPTIONS);
    expect(batchOptionsFromEnv({ BATON_BATCH_CONCURRENCY: '4', BATON_BATCH_MAX_REQUESTS: '50', BATON_BATCH_KEEP: '9', BATON_BATCH_KEEP_SECONDS: '60' }))
      .toEqual({ concurrency: 4, maxRequests: 50, keepBatches: 9, keepSeconds: 60 });
    expect(() => batchOptionsFromEnv({ BATON_BATCH_CONCURRENCY: '0' })).toThrow('BATON_BATCH_CONCURRENCY must be an integer from 1 to 256, got "0"');
    expect(() => batchOptionsFromEnv({ BATON_BATCH_MAX_REQUESTS: '1.5' })).toThrow('BATON_BATCH_MAX_REQUESTS must be an integer');
  });

  it('puts every key under the control-plane prefix', () => {
    const keys = batchKeys('batontest-ab12:');
    expect(keys.bullPrefix).toBe('batontest-ab12');
    expect(`${keys.bullPrefix}:${keys.queueName}:wait`.startsWith('batontest-ab12:')).toBe(true);
    expect(keys.record('batch_1')).toBe('batontest-ab12:batch:batch_1');
    expect(keys.results('batch_1')).toBe('batontest-ab12:batch:batch_1:results');
    expect(batchKeys('solo').bullPrefix).toBe('solo');
    expect(requestJobId('batch_1', 3)).toBe('batch_1-3');
  });
});

describe('records, status and results', () => {
  const base = (over: Partial<BatchRecord> = {}): BatchRecord => ({
    id: 'batch_x', createdAt: 1_700_000_000_123, total: 3, completed: 0, failed: 0, endpoint: null, metadata: null,
    inProgressAt: null, finishedAt: null, cancelledAt: null, expiresAt: null, ...over,
  });

  it.each([
    [{}, 'queued'],
    [{ inProgressAt: 1 }, 'in_progress'],
    [{ inProgressAt: 1, completed: 2, failed: 1, finishedAt: 2 }, 'completed'],
    [{ inProgressAt: 1, failed: 3, finishedAt: 2 }, 'failed'],
    [{ inProgressAt: 1, completed: 1, cancelledAt: 2 }, 'cancelled'],
  ] as const)('%j → %s', (over, status) => {
    expect(batchStatus(base(over))).toBe(status);
  });

  it('round-trips a stored hash into OpenAI\'s batch object', () => {
    const fields = newRecordFields('batch_x', [{ custom_id: 'a', url: '/v1/completions', body: {} }], { k: 'v' }, 1_700_000_000_123);
    const record = parseRecord({ ...fields, completed: '1', in_progress_at: '1700000001000', finished_at: '1700000002999', expires_at: '1700003602999' })!;
    expect(toBatchObject(record)).toEqual({
      id: 'batch_x', object: 'batch', endpoint: '/v1/completions', errors: null, input_file_id: null, output_file_id: null, error_file_id: null,
      completion_window: null, status: 'completed', created_at: 1_700_000_000, in_progress_at: 1_700_000_001, completed_at: 1_700_000_002,
      failed_at: null, cancelled_at: null, expires_at: 1_700_003_602, request_counts: { total: 1, completed: 1, failed: 0 }, metadata: { k: 'v' },
    });
    expect(parseRecord({})).toBeNull();
  });

  it('shapes result lines as OpenAI\'s batch output', () => {
    const ok = responseLine('a', 200, { id: 'chatcmpl-1', object: 'chat.completion' });
    expect(ok).toEqual({ id: expect.stringMatching(/^batch_req_[0-9a-f]{32}$/), custom_id: 'a', response: { status_code: 200, request_id: 'chatcmpl-1', body: { id: 'chatcmpl-1', object: 'chat.completion' } }, error: null });
    expect(succeeded(ok)).toBe(true);
    const notFound = responseLine('b', 404, { error: { message: 'no', type: 'invalid_request_error', param: 'model', code: 'model_not_found' } });
    expect(notFound.response!.request_id).toBe('');
    expect(succeeded(notFound)).toBe(false);
    expect(succeeded(errorLine('c', 'batch_cancelled', 'x'))).toBe(false);
  });

  it('orders results by request and fills in the requests a cancel kept from running', () => {
    const stored = { '2': JSON.stringify(responseLine('c', 200, {})), '0': JSON.stringify(responseLine('a', 200, {})) };
    const running = orderResults(base({ inProgressAt: 1, completed: 2 }), stored, ['a', 'b', 'c']);
    expect(running.status).toBe('in_progress');
    expect(running.data.map((r) => r.custom_id)).toEqual(['a', 'c']);
    const cancelled = orderResults(base({ inProgressAt: 1, completed: 2, cancelledAt: 5 }), stored, ['a', 'b', 'c']);
    expect(cancelled.data.map((r) => [r.custom_id, r.error?.code ?? r.response!.status_code])).toEqual([['a', 200], ['b', 'batch_cancelled'], ['c', 200]]);
  });
});
