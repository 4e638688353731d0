// Pure parts of batch jobs: options from the environment, validation of a submitted batch,
// OpenAI batch-input JSONL parsing (for `baton batch submit`), the stored record → the API's
// batch object, and the shape of one result line. No Redis, no Nest: table-tested.
import { randomUUID } from 'node:crypto';
import { ChatCompletionRequestDto, CompletionRequestDto, validateDto } from '@baton/contracts';
import {
  BATCH_ENDPOINTS, CreateBatchDto, MAX_METADATA_KEY_LENGTH, MAX_METADATA_PAIRS, MAX_METADATA_VALUE_LENGTH, type BatchEndpoint,
} from './batch.dto.js';

// ---- options --------------------------------------------------------------------------------

export interface BatchOptions {
  /** Requests the gateway runs at once across all batches (BullMQ worker concurrency). */
  concurrency: number;
  /** Most requests in one batch (400 above it). */
  maxRequests: number;
  /** Finished batches kept (the oldest beyond this are deleted when a new one is submitted). */
  keepBatches: number;
  /** Seconds a finished batch (status and results) is kept. */
  keepSeconds: number;
}

export const DEFAULT_BATCH_OPTIONS: BatchOptions = { concurrency: 2, maxRequests: 1000, keepBatches: 1000, keepSeconds: 7 * 24 * 3600 };

const BATCH_ENV: Record<keyof BatchOptions, { name: string; min: number; max: number }> = {
  concurrency: { name: 'BATON_BATCH_CONCURRENCY', min: 1, max: 256 },
  maxRequests: { name: 'BATON_BATCH_MAX_REQUESTS', min: 1, max: 100_000 },
  keepBatches: { name: 'BATON_BATCH_KEEP', min: 1, max: 1_000_000 },
  keepSeconds: { name: 'BATON_BATCH_KEEP_SECONDS', min: 1, max: 365 * 24 * 3600 },
};

/** The batch options from BATON_BATCH_* variables (defaults for unset ones); throws naming a bad one. */
export function batchOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): BatchOptions {
  const options = { ...DEFAULT_BATCH_OPTIONS };
  for (const [key, spec] of Object.entries(BATCH_ENV) as [keyof BatchOptions, (typeof BATCH_ENV)[keyof BatchOptions]][]) {
    const raw = env[spec.name];
    if (raw === undefined || raw.trim() === '') continue;
    const value = Number(raw);
    if (!/^\s*[0-9]+\s*$/.test(raw) || value < spec.min || value > spec.max) {
      throw new Error(`${spec.name} must be an integer from ${spec.min} to ${spec.max}, got ${JSON.stringify(raw)}`);
    }
    options[key] = value;
  }
  return options;
}

// ---- names ----------------------------------------------------------------------------------

/**
 * Where a cluster's batch data lives in Redis. The BullMQ queue's keys are `<prefix>batches:…`
 * (BullMQ joins its prefix and the queue name with ":"), Baton's own records `<prefix>batch:…`,
 * so everything starts with the control-plane prefix and clusters (and test runs) sharing one
 * Redis stay apart.
 */
export function batchKeys(prefix: string) {
  const bullPrefix = prefix.length > 1 && prefix.endsWith(':') ? prefix.slice(0, -1) : prefix;
  return {
    bullPrefix,
    queueName: 'batches',
    /** Hash: the batch's record (see BatchRecord). */
    record: (id: string) => `${prefix}batch:${id}`,
    /** Hash: request index → JSON BatchResultLine. */
    results: (id: string) => `${prefix}batch:${id}:results`,
    /** Sorted set: batch ids by creation time (ms). */
    index: `${prefix}batch:index`,
  };
}

export const BATCH_ID_PATTERN = /^batch_[0-9a-f]{32}$/;

export function newBatchId(): string {
  return `batch_${randomUUID().replaceAll('-', '')}`;
}

/** BullMQ job id of one request (BullMQ refuses ":" and all-digit ids). */
export function requestJobId(batchId: string, index: number): string {
  return `${batchId}-${index}`;
}

// ---- validation -----------------------------------------------------------------------------

export interface BatchRequest {
  custom_id: string;
  url: BatchEndpoint;
  body: Record<string, unknown>;
}

export interface ValidBatch {
  requests: BatchRequest[];
  metadata: Record<string, string> | null;
}

export type BatchValidation =
  | { ok: true; value: ValidBatch }
  | { ok: false; status: 400; problems: string[]; code: 'invalid_request' | 'too_many_requests' };

/** `requests.3.body` (class-validator's path) → `requests[3].body`. */
function indexPath(problem: string): string {
  return problem.replace(/^requests\.(\d+)(?=[.:\s]|$)/, 'requests[$1]');
}

/**
 * Checks a POST /v1/batches body: the envelope, every request body against its endpoint's DTO
 * (the same checks the synchronous endpoint makes), unique custom_ids, metadata. The request
 * count is checked first so an oversized batch is refused before any work.
 */
export function validateBatchCreate(body: unknown, maxRequests: number): BatchValidation {
  const requestsField = (body as { requests?: unknown } | null)?.requests;
  if (Array.isArray(requestsField) && requestsField.length > maxRequests) {
    return {
      ok: false,
      status: 400,
      code: 'too_many_requests',
      problems: [`requests: ${requestsField.length} requests in one batch, the limit is ${maxRequests} (BATON_BATCH_MAX_REQUESTS); split them into several batches`],
    };
  }
  const checked = validateDto(CreateBatchDto, body);
  if (!checked.ok) {
    // the bodies of requests whose envelope is fine are checked too, so one round lists everything
    const items = Array.isArray(requestsField) ? requestsField : [];
    const bodyProblems = items.flatMap((item: unknown, i) => {
      const { url, body: itemBody } = (item ?? {}) as { url?: unknown; body?: unknown };
      const known = (BATCH_ENDPOINTS as readonly unknown[]).includes(url) && itemBody !== null && typeof itemBody === 'object' && !Array.isArray(itemBody);
      return known ? requestBodyProblems(`requests[${i}]`, url as BatchEndpoint, itemBody as Record<string, unknown>) : [];
    });
    return { ok: false, status: 400, code: 'invalid_request', problems: [...checked.problems.map(indexPath), ...bodyProblems] };
  }
  const problems: string[] = [];
  const seen = new Map<string, number>();
  const requests: BatchRequest[] = [];
  for (const [i, item] of checked.value.requests.entries()) {
    const at = `requests[${i}]`;
    const first = seen.get(item.custom_id);
    if (first !== undefined) problems.push(`${at}.custom_id: ${JSON.stringify(item.custom_id)} is already used by requests[${first}]; custom_ids must be unique`);
    else seen.set(item.custom_id, i);
    problems.push(...requestBodyProblems(at, item.url, item.body));
    requests.push({ custom_id: item.custom_id, url: item.url, body: item.body });
  }
  const metadata = checked.value.metadata ?? null;
  if (metadata !== null) problems.push(...metadataProblems(metadata));
  if (problems.length > 0) return { ok: false, status: 400, code: 'invalid_request', problems };
  return { ok: true, value: { requests, metadata } };
}

/** A request body checked as its endpoint would check it; streaming is refused (results are collected whole). */
function requestBodyProblems(at: string, url: BatchEndpoint, body: Record<string, unknown>): string[] {
  const checked = url === '/v1/chat/completions' ? validateDto(ChatCompletionRequestDto, body) : validateDto(CompletionRequestDto, body);
  const problems = checked.ok ? [] : checked.problems.map((p) => `${at}.body.${p}`);
  if (body.stream === true) problems.push(`${at}.body.stream: streaming is not available in a batch; remove stream (results are collected whole)`);
  return problems;
}

function metadataProblems(metadata: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const entries = Object.entries(metadata);
  if (entries.length > MAX_METADATA_PAIRS) problems.push(`metadata: at most ${MAX_METADATA_PAIRS} keys, got ${entries.length}`);
  for (const [key, value] of entries) {
    if (key.length > MAX_METADATA_KEY_LENGTH) problems.push(`metadata: key ${JSON.stringify(key.slice(0, 20))}… is longer than ${MAX_METADATA_KEY_LENGTH} characters`);
    if (typeof value !== 'string') problems.push(`metadata.${key} must be a string`);
    else if (value.length > MAX_METADATA_VALUE_LENGTH) problems.push(`metadata.${key} must be at most ${MAX_METADATA_VALUE_LENGTH} characters`);
  }
  return problems;
}

// ---- JSONL input (OpenAI's batch input file) ------------------------------------------------

export class BatchInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BatchInputError';
  }
}

/**
 * Parses OpenAI batch-input JSONL ({"custom_id", "method", "url", "body"} per line; blank lines
 * skipped) into the `requests` of POST /v1/batches, with `lines[i]` the 1-based line number of
 * requests[i]. Throws BatchInputError naming the line of a malformed one. Field values are
 * checked by the server, which lists every problem; this only needs each line to be a JSON object.
 */
export function parseBatchJsonl(text: string): { requests: Record<string, unknown>[]; lines: number[] } {
  const requests: Record<string, unknown>[] = [];
  const lines: number[] = [];
  const all = text.split('\n');
  for (const [i, raw] of all.entries()) {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new BatchInputError(`line ${i + 1}: not valid JSON (${(error as Error).message}): ${line.length > 80 ? `${line.slice(0, 80)}…` : line}`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new BatchInputError(`line ${i + 1}: expected a JSON object {"custom_id", "method", "url", "body"}, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`);
    }
    const record = value as Record<string, unknown>;
    for (const field of ['custom_id', 'url', 'body'] as const) {
      if (!(field in record)) throw new BatchInputError(`line ${i + 1}: "${field}" is missing; each line needs {"custom_id", "method", "url", "body"}`);
    }
    requests.push(record);
    lines.push(i + 1);
  }
  if (requests.length === 0) throw new BatchInputError('the file holds no requests: write one JSON object per line');
  return { requests, lines };
}

/** Rewrites `requests[i]` in a server message as the JSONL line it came from. */
export function withLineNumbers(message: string, lines: number[]): string {
  return message.replace(/requests\[(\d+)\](\.?)/g, (whole, i: string, dot: string) => (lines[Number(i)] !== undefined ? `line ${lines[Number(i)]}${dot ? ': ' : ''}` : whole));
}

// ---- records and the batch object -----------------------------------------------------------

export const BATCH_STATUSES = ['queued', 'in_progress', 'completed', 'failed', 'cancelled'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

/** A batch as stored in its Redis hash (all fields strings there; parsed by parseRecord). */
export interface BatchRecord {
  id: string;
  /** Unix ms. */
  createdAt: number;
  total: number;
  completed: number;
  failed: number;
  endpoint: BatchEndpoint | null;
  metadata: Record<string, string> | null;
  inProgressAt: number | null;
  finishedAt: number | null;
  cancelledAt: number | null;
  /** Unix ms after which the record and results are deleted (set when the batch ends). */
  expiresAt: number | null;
}

/** The hash fields of a new batch. */
export function newRecordFields(id: string, requests: BatchRequest[], metadata: Record<string, string> | null, now: number): Record<string, string> {
  const endpoints = new Set(requests.map((r) => r.url));
  return {
    id,
    created_at: String(now),
    total: String(requests.length),
    completed: '0',
    failed: '0',
    endpoint: endpoints.size === 1 ? [...endpoints][0]! : '',
    metadata: metadata === null ? '' : JSON.stringify(metadata),
  };
}

function num(value: string | undefined): number | null {
  if (value === undefined || value === '') return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

/** A Redis hash → BatchRecord; null when it is empty (unknown or expired batch). */
export function parseRecord(hash: Record<string, string>): BatchRecord | null {
  if (!hash.id) return null;
  return {
    id: hash.id,
    createdAt: num(hash.created_at) ?? 0,
    total: num(hash.total) ?? 0,
    completed: num(hash.completed) ?? 0,
    failed: num(hash.failed) ?? 0,
    endpoint: (BATCH_ENDPOINTS as readonly string[]).includes(hash.endpoint ?? '') ? (hash.endpoint as BatchEndpoint) : null,
    metadata: hash.metadata ? (JSON.parse(hash.metadata) as Record<string, string>) : null,
    inProgressAt: num(hash.in_progress_at),
    finishedAt: num(hash.finished_at),
    cancelledAt: num(hash.cancelled_at),
    expiresAt: num(hash.expires_at),
  };
}

/**
 * A batch's status. `completed` when every request has ended and at least one succeeded,
 * `failed` when every request failed (an unknown model, say: the per-request errors are in the
 * results), `cancelled` once cancelled, else `in_progress` after its first request started.
 */
export function batchStatus(r: BatchRecord): BatchStatus {
  if (r.cancelledAt !== null) return 'cancelled';
  if (r.completed + r.failed >= r.total) return r.completed > 0 ? 'completed' : 'failed';
  return r.inProgressAt !== null ? 'in_progress' : 'queued';
}

export function isFinal(status: BatchStatus): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}

/** OpenAI's batch object (times in Unix seconds), with inline requests instead of files. */
export interface BatchObject {
  id: string;
  object: 'batch';
  /** The url of every request, or null when the batch mixes endpoints. */
  endpoint: BatchEndpoint | null;
  errors: null;
  input_file_id: null;
  output_file_id: null;
  error_file_id: null;
  completion_window: null;
  status: BatchStatus;
  created_at: number;
  in_progress_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  cancelled_at: number | null;
  /** When the batch and its results will be deleted (set once it has ended). */
  expires_at: number | null;
  request_counts: { total: number; completed: number; failed: number };
  metadata: Record<string, string> | null;
}

const seconds = (ms: number | null) => (ms === null ? null : Math.floor(ms / 1000));

export function toBatchObject(r: BatchRecord): BatchObject {
  const status = batchStatus(r);
  return {
    id: r.id,
    object: 'batch',
    endpoint: r.endpoint,
    errors: null,
    input_file_id: null,
    output_file_id: null,
    error_file_id: null,
    completion_window: null,
    status,
    created_at: seconds(r.createdAt)!,
    in_progress_at: seconds(r.inProgressAt),
    completed_at: status === 'completed' ? seconds(r.finishedAt) : null,
    failed_at: status === 'failed' ? seconds(r.finishedAt) : null,
    cancelled_at: seconds(r.cancelledAt),
    expires_at: seconds(r.expiresAt),
    request_counts: { total: r.total, completed: r.completed, failed: r.failed },
    metadata: r.metadata,
  };
}

// ---- results --------------------------------------------------------------------------------

/**
 * One line of OpenAI's batch output: `response` holds the status code and the body the
 * synchronous endpoint would have sent (an OpenAI error body for 4xx/5xx); `error` is set
 * instead when the request was never run (the batch was cancelled first).
 */
export interface BatchResultLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: unknown } | null;
  error: { code: string; message: string } | null;
}

export function responseLine(customId: string, statusCode: number, body: unknown): BatchResultLine {
  const requestId = (body as { id?: unknown } | null)?.id;
  return {
    id: `batch_req_${randomUUID().replaceAll('-', '')}`,
    custom_id: customId,
    response: { status_code: statusCode, request_id: typeof requestId === 'string' ? requestId : '', body },
    error: null,
  };
}

export function errorLine(customId: string, code: string, message: string): BatchResultLine {
  return { id: `batch_req_${randomUUID().replaceAll('-', '')}`, custom_id: customId, response: null, error: { code, message } };
}

/** Whether a result counts as completed (a 2xx response) or failed. */
export function succeeded(line: BatchResultLine): boolean {
  return line.response !== null && line.response.status_code >= 200 && line.response.status_code < 300;
}

export interface BatchResults {
  object: 'list';
  batch_id: string;
  status: BatchStatus;
  /** One line per request that has ended, in request order (every request once the batch ends). */
  data: BatchResultLine[];
}

/**
 * The results in request order. Requests of a cancelled batch that never ran get a
 * `batch_cancelled` error line, so a finished batch has exactly one line per request.
 */
export function orderResults(record: BatchRecord, stored: Record<string, string>, customIds: string[]): BatchResults {
  const status = batchStatus(record);
  const data: BatchResultLine[] = [];
  for (let i = 0; i < record.total; i++) {
    const line = stored[String(i)];
    if (line !== undefined) data.push(JSON.parse(line) as BatchResultLine);
    else if (status === 'cancelled') data.push(errorLine(customIds[i] ?? '', 'batch_cancelled', 'the batch was cancelled before this request ran'));
  }
  return { object: 'list', batch_id: record.id, status, data };
}
