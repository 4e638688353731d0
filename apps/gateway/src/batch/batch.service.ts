// Batch jobs: submit (validate, store, queue), read (status, results, recent), cancel, and the
// worker's handler, which runs each request through the same CompletionService as
// /v1/chat/completions and /v1/completions, so a batch's output is the synchronous endpoint's.
import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { CompletionService, validationError } from '../generation/completion.service.js';
import { chatCompletion, textCompletion } from '../generation/openai-shapes.js';
import { OpenAIHttpError, logIfInternal, toOpenAIError } from '../http/openai-error.js';
import {
  BATCH_ID_PATTERN, batchStatus, newBatchId, orderResults, responseLine, succeeded, toBatchObject, validateBatchCreate,
  type BatchObject, type BatchOptions, type BatchRequest, type BatchResultLine, type BatchResults,
} from './batch-logic.js';
import { BatchQueue, type BatchJobData, type JobOutcome } from './batch.queue.js';

export const BATCH_OPTIONS = Symbol('BATCH_OPTIONS');

/** How often running requests check whether their batch was cancelled elsewhere (another gateway). */
const CANCEL_POLL_MS = 1000;
/** Statuses worth retrying: the model not ready yet, the pipeline replanning or failing for a moment. */
const RETRYABLE_STATUS = new Set([502, 503]);
/** How long an API call waits for the Redis connection (at start-up, or a reconnect) before answering 503. */
const REDIS_WAIT_MS = 1000;

export interface BatchList {
  object: 'list';
  data: BatchObject[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}

@Injectable()
export class BatchService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Batches');
  /** Abort controllers of the requests this process is running, by batch id. */
  private readonly running = new Map<string, Set<AbortController>>();
  private completions!: CompletionService;
  private cancelPoll: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(
    private readonly queue: BatchQueue,
    private readonly moduleRef: ModuleRef,
    @Inject(BATCH_OPTIONS) readonly options: BatchOptions,
  ) {}

  onModuleInit(): void {
    // the gateway module provides the completion service; this module is imported by it, so
    // the instance is looked up (one instance: the model text cache is shared)
    this.completions = this.moduleRef.get(CompletionService, { strict: false });
    this.queue.configureWorker((data, attempt) => this.runJob(data, attempt), this.options.concurrency, this.options.keepSeconds);
    this.cancelPoll = setInterval(() => void this.pollCancels(), CANCEL_POLL_MS);
    this.cancelPoll.unref();
  }

  async onModuleDestroy(): Promise<void> {
    this.closing = true;
    clearInterval(this.cancelPoll);
    // stop taking jobs, then abort the running ones: they go back to the queue and the next
    // gateway start finishes them
    await this.queue.close(() => {
      for (const set of this.running.values()) for (const controller of set) controller.abort(new Error('the gateway is shutting down'));
    });
  }

  // ---- API ----------------------------------------------------------------------------------

  /** Runs a Redis operation of an API call: while Redis is down, a 503 that says so (not a 500). */
  private async store<T>(operation: () => Promise<T>): Promise<T> {
    await this.queue.ready(REDIS_WAIT_MS);
    try {
      return await operation();
    } catch (error) {
      if (error instanceof OpenAIHttpError || this.queue.connected) throw error;
      throw new OpenAIHttpError(503, `batch jobs are unavailable: Redis at ${this.queue.options.redisUrl} does not answer (${(error as Error).message}); retry when it is back`, 'server_error', null, 'redis_unavailable');
    }
  }

  async submit(body: unknown): Promise<BatchObject> {
    const checked = validateBatchCreate(body, this.options.maxRequests);
    if (!checked.ok) {
      const error = validationError(checked.problems);
      throw checked.code === 'too_many_requests' ? new OpenAIHttpError(400, error.message, 'invalid_request_error', 'requests', 'too_many_requests') : error;
    }
    const id = newBatchId();
    const now = Date.now();
    await this.store(() => this.queue.create(id, checked.value.requests, checked.value.metadata, now, this.options.keepSeconds));
    this.queue.ensureWorker();
    this.logger.log(`${id}: ${checked.value.requests.length} requests queued`);
    await this.queue.trim(this.options.keepBatches).catch((error: Error) => this.logger.warn(`could not delete old batches: ${error.message}`));
    return this.get(id);
  }

  async get(id: string): Promise<BatchObject> {
    return toBatchObject(await this.record(id));
  }

  async results(id: string): Promise<BatchResults> {
    const record = await this.record(id);
    const [stored, customIds] = await this.store(() => Promise.all([this.queue.results(id), this.queue.customIds(id)]));
    return orderResults(record, stored, customIds);
  }

  async cancel(id: string): Promise<BatchObject> {
    checkId(id);
    const outcome = await this.store(() => this.queue.cancel(id, Date.now(), this.options.keepSeconds));
    if (outcome === 'not_found') throw notFound(id);
    if (outcome === 'already_ended') {
      const batch = await this.get(id);
      throw new OpenAIHttpError(409, `batch ${id} has already ${batch.status === 'failed' ? 'failed' : 'completed'}; there is nothing to cancel`, 'invalid_request_error', null, 'batch_ended');
    }
    if (outcome === 'cancelled') {
      this.abortBatch(id);
      this.logger.log(`${id}: cancelled`);
    }
    return this.get(id);
  }

  async list(limitText: string | undefined, after: string | undefined): Promise<BatchList> {
    let limit = 20;
    if (limitText !== undefined) {
      limit = Number(limitText);
      if (!/^[0-9]+$/.test(limitText) || limit < 1 || limit > 100) {
        throw new OpenAIHttpError(400, `invalid request: limit must be an integer from 1 to 100, got ${JSON.stringify(limitText)}`, 'invalid_request_error', 'limit', 'invalid_request');
      }
    }
    if (after !== undefined && !BATCH_ID_PATTERN.test(after)) {
      throw new OpenAIHttpError(400, `invalid request: after must be a batch id (batch_ and 32 hex digits), got ${JSON.stringify(after)}`, 'invalid_request_error', 'after', 'invalid_request');
    }
    const { records, hasMore } = await this.store(() => this.queue.list(limit, after));
    const data = records.map(toBatchObject);
    return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: hasMore };
  }

  private async record(id: string) {
    checkId(id);
    const record = await this.store(() => this.queue.get(id));
    if (record === null) throw notFound(id);
    return record;
  }

  // ---- worker -------------------------------------------------------------------------------

  /** Runs one request of a batch (called by the BullMQ worker). Throws to have it retried. */
  private async runJob(data: BatchJobData, attempt: { number: number; last: boolean }): Promise<JobOutcome> {
    const { batchId, index, request } = data;
    const state = await this.queue.begin(batchId, index, Date.now());
    if (state !== 'run') return 'done'; // batch deleted or cancelled, or this result is already stored
    const controller = new AbortController();
    let set = this.running.get(batchId);
    if (!set) this.running.set(batchId, (set = new Set()));
    set.add(controller);
    try {
      if (this.closing) return 'requeue';
      const line = await this.runRequest(request, controller.signal);
      if (line === null) {
        // aborted: by a shutdown (run it again on the next start) or by a cancel (nothing to record)
        return this.closing ? 'requeue' : 'done';
      }
      const status = line.response?.status_code ?? 0;
      if (RETRYABLE_STATUS.has(status) && !attempt.last) {
        throw new Error(`attempt ${attempt.number}: ${status} ${(line.response?.body as { error?: { message?: string } }).error?.message ?? ''}`);
      }
      const ended = await this.queue.record(batchId, index, line, succeeded(line) ? 'completed' : 'failed', Date.now(), this.options.keepSeconds);
      if (ended !== null) await this.logIfEnded(batchId, ended);
      return 'done';
    } finally {
      set.delete(controller);
      if (set.size === 0) this.running.delete(batchId);
    }
  }

  /** One request through the completion service: its result line, or null when aborted. */
  private async runRequest(request: BatchRequest, signal: AbortSignal): Promise<BatchResultLine | null> {
    try {
      const prepared = request.url === '/v1/chat/completions' ? await this.completions.prepareChat(request.body) : await this.completions.prepareText(request.body);
      const result = await this.completions.collect(prepared, signal);
      if (result === null) return null;
      const body = prepared.kind === 'chat'
        ? chatCompletion(prepared, result.text, result.finishReason, result.usage)
        : textCompletion(prepared, result.text, result.finishReason, result.usage);
      return responseLine(request.custom_id, 200, body);
    } catch (cause) {
      if (signal.aborted) return null;
      const error = cause instanceof OpenAIHttpError ? cause : toOpenAIError(cause, 0);
      logIfInternal(error, cause);
      return responseLine(request.custom_id, error.status, error.toBody());
    }
  }

  private async logIfEnded(batchId: string, ended: number): Promise<void> {
    const record = await this.queue.get(batchId);
    if (record === null || ended < record.total) return;
    this.logger.log(`${batchId}: ${batchStatus(record)} (${record.completed} completed, ${record.failed} failed)`);
  }

  private abortBatch(batchId: string): void {
    for (const controller of this.running.get(batchId) ?? []) controller.abort(new Error('the batch was cancelled'));
  }

  /** Aborts running requests of batches cancelled by another gateway sharing this Redis. */
  private async pollCancels(): Promise<void> {
    for (const batchId of [...this.running.keys()]) {
      try {
        if (await this.queue.isCancelled(batchId)) this.abortBatch(batchId);
      } catch {
        // Redis unavailable: try again on the next tick
      }
    }
  }
}

function checkId(id: string): void {
  if (!BATCH_ID_PATTERN.test(id)) {
    throw new OpenAIHttpError(404, `batch ${JSON.stringify(id)} not found: batch ids look like batch_ followed by 32 hex digits`, 'invalid_request_error', 'batch_id', 'batch_not_found');
  }
}

function notFound(id: string): OpenAIHttpError {
  return new OpenAIHttpError(404, `batch ${id} not found (unknown, or its results have expired)`, 'invalid_request_error', 'batch_id', 'batch_not_found');
}
