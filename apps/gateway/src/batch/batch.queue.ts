// Every side effect of batch jobs, behind one class: the BullMQ queue and worker (one job per
// request, so concurrency, retries and restart recovery are BullMQ's), and Baton's records of
// batches in the same Redis (a hash per batch for its counts and times, a hash of result lines,
// a sorted set of ids by creation time). Count updates are Lua scripts so a request's result is
// written and counted exactly once even when BullMQ runs a job again after a crash.
import { Inject, Injectable, Logger } from '@nestjs/common';
import { Queue, Worker, WaitingError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { CONTROL_PLANE_OPTIONS, RedisConnections, backoffMs, parseRedisUrl, waitForRedis, type ControlPlaneOptions } from '@baton/control-plane';
import {
  batchKeys, errorLine, newRecordFields, parseRecord, requestJobId, type BatchRecord, type BatchRequest, type BatchResultLine,
} from './batch-logic.js';

/** What a worker job carries: one request of one batch. */
export interface BatchJobData {
  batchId: string;
  index: number;
  request: BatchRequest;
}

/** What the request handler tells the queue: the job is finished, or goes back to wait (shutdown). */
export type JobOutcome = 'done' | 'requeue';

export type RequestHandler = (data: BatchJobData, attempt: { number: number; last: boolean }) => Promise<JobOutcome>;

/** Attempts per request: a 502/503 (model not ready yet, pipeline replanning) is retried with backoff. */
export const REQUEST_ATTEMPTS = 5;
const BACKOFF_MS = 2000;
const WARN_INTERVAL_MS = 60_000;

const RECORD_FIELDS = ['id', 'created_at', 'total', 'completed', 'failed', 'endpoint', 'metadata', 'in_progress_at', 'finished_at', 'cancelled_at', 'expires_at'] as const;

/**
 * Before running a request: 'missing' (batch deleted), 'cancelled', 'done' (its result is
 * already stored: a re-run after a crash), else marks the batch in progress and returns 'run'.
 */
const BEGIN_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
if redis.call('HGET', KEYS[1], 'cancelled_at') then return 'cancelled' end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 'done' end
redis.call('HSETNX', KEYS[1], 'in_progress_at', ARGV[2])
return 'run'`;

/**
 * Stores one result line once and counts it (ARGV[3] = 'completed' | 'failed'). When it was the
 * last one, stamps finished_at and sets the expiry of the batch's keys. -1: batch gone; -2:
 * already recorded; else the number of requests ended.
 */
const RECORD_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return -2 end
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
local f = redis.call('HMGET', KEYS[1], 'total', 'completed', 'failed', 'finished_at', 'expires_at')
local ended = tonumber(f[2]) + tonumber(f[3])
local expires = f[5]
if ended >= tonumber(f[1]) and not f[4] then
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[4])
  if not expires then
    expires = tostring(tonumber(ARGV[4]) + tonumber(ARGV[5]))
    redis.call('HSET', KEYS[1], 'expires_at', expires)
  end
end
if expires then
  redis.call('PEXPIREAT', KEYS[1], expires)
  redis.call('PEXPIREAT', KEYS[2], expires)
end
return ended`;

/** 0: no such batch; 1: cancelled now; 2: was cancelled already; 3: had already ended. */
const CANCEL_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local f = redis.call('HMGET', KEYS[1], 'finished_at', 'cancelled_at')
if f[2] then return 2 end
if f[1] then return 3 end
local expires = tonumber(ARGV[1]) + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'cancelled_at', ARGV[1], 'expires_at', tostring(expires))
redis.call('PEXPIREAT', KEYS[1], expires)
redis.call('PEXPIREAT', KEYS[2], expires)
return 1`;

export type CancelOutcome = 'not_found' | 'cancelled' | 'already_cancelled' | 'already_ended';

@Injectable()
export class BatchQueue {
  private readonly logger = new Logger('Batches');
  /** When each source last logged an error: BullMQ repeats connection errors on every retry. */
  private readonly lastWarned = new Map<string, number>();
  private readonly keys: ReturnType<typeof batchKeys>;
  private readonly redis: Redis;
  private queue: Queue<BatchJobData> | null = null;
  private worker: Worker<BatchJobData> | null = null;
  private workerSpec: { handler: RequestHandler; concurrency: number; keepSeconds: number } | null = null;
  private closed = false;

  constructor(
    private readonly connections: RedisConnections,
    @Inject(CONTROL_PLANE_OPTIONS) readonly options: ControlPlaneOptions,
  ) {
    this.keys = batchKeys(options.prefix);
    // fail fast: while Redis is down the batch routes answer 503 at once rather than hang, and
    // closing never waits on queued commands
    this.redis = connections.open('batches', { failFast: true });
  }

  /**
   * The BullMQ queue, created on first use: a gateway whose cluster never ran a batch writes
   * nothing to Redis for it (BullMQ stores a meta key per queue as soon as it starts).
   */
  private bull(): Queue<BatchJobData> {
    if (!this.queue) {
      this.queue = new Queue<BatchJobData>(this.keys.queueName, { connection: this.redis, prefix: this.keys.bullPrefix });
      this.queue.on('error', (error) => this.warn('queue', error));
    }
    return this.queue;
  }

  /** Whether the connection for batch records is up (errors while it is not are an outage, not a bug). */
  get connected(): boolean {
    return this.redis.status === 'ready';
  }

  /** Waits until the records connection is up, at most `timeoutMs` (it fails fast, so a call at start-up would otherwise fail). */
  async ready(timeoutMs: number): Promise<void> {
    if (this.connected) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([waitForRedis(this.redis), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  private warn(source: string, error: Error): void {
    const now = Date.now();
    if (now - (this.lastWarned.get(source) ?? 0) < WARN_INTERVAL_MS) return;
    this.lastWarned.set(source, now);
    this.logger.warn(`batch ${source}: ${error.message}`);
  }

  /** Stores a new batch and queues one job per request. */
  async create(id: string, requests: BatchRequest[], metadata: Record<string, string> | null, now: number, keepSeconds: number): Promise<void> {
    await this.redis
      .multi()
      .hset(this.keys.record(id), { ...newRecordFields(id, requests, metadata, now), custom_ids: JSON.stringify(requests.map((r) => r.custom_id)) })
      .zadd(this.keys.index, now, id)
      .exec();
    try {
      await this.bull().addBulk(
        requests.map((request, index) => ({
          name: 'request',
          data: { batchId: id, index, request },
          opts: {
            jobId: requestJobId(id, index),
            attempts: REQUEST_ATTEMPTS,
            backoff: { type: 'exponential', delay: BACKOFF_MS },
            removeOnComplete: true,
            removeOnFail: { age: keepSeconds },
          },
        })),
      );
    } catch (error) {
      // nothing was queued: leave no batch that would never run
      await this.redis.multi().del(this.keys.record(id), this.keys.results(id)).zrem(this.keys.index, id).exec().catch(() => undefined);
      throw error;
    }
  }

  async get(id: string): Promise<BatchRecord | null> {
    return this.parse(await this.redis.hmget(this.keys.record(id), ...RECORD_FIELDS));
  }

  private parse(values: (string | null)[]): BatchRecord | null {
    const hash: Record<string, string> = {};
    RECORD_FIELDS.forEach((field, i) => {
      if (values[i] !== null && values[i] !== undefined) hash[field] = values[i]!;
    });
    return parseRecord(hash);
  }

  async customIds(id: string): Promise<string[]> {
    const raw = await this.redis.hget(this.keys.record(id), 'custom_ids');
    return raw ? (JSON.parse(raw) as string[]) : [];
  }

  async results(id: string): Promise<Record<string, string>> {
    return this.redis.hgetall(this.keys.results(id));
  }

  /** Newest first; `after` = the last id of the previous page. Ids of deleted (expired) batches are dropped from the index. */
  async list(limit: number, after?: string): Promise<{ records: BatchRecord[]; hasMore: boolean }> {
    let start = 0;
    if (after !== undefined) {
      const rank = await this.redis.zrevrank(this.keys.index, after);
      if (rank === null) return { records: [], hasMore: false };
      start = rank + 1;
    }
    const records: BatchRecord[] = [];
    for (;;) {
      const ids = await this.redis.zrevrange(this.keys.index, start, start + limit);
      if (ids.length === 0) return { records, hasMore: false };
      const pipeline = this.redis.pipeline();
      for (const id of ids) pipeline.hmget(this.keys.record(id), ...RECORD_FIELDS);
      const replies = (await pipeline.exec()) ?? [];
      const gone: string[] = [];
      for (const [i, id] of ids.entries()) {
        const record = this.parse((replies[i]?.[1] as (string | null)[] | undefined) ?? []);
        if (record === null) gone.push(id);
        else records.push(record);
      }
      if (records.length > limit) return { records: records.slice(0, limit), hasMore: true };
      if (gone.length > 0) await this.redis.zrem(this.keys.index, ...gone);
      start += ids.length - gone.length;
    }
  }

  /** Deletes the oldest ended batches beyond `keep` (unfinished ones are never deleted). */
  async trim(keep: number): Promise<number> {
    const count = await this.redis.zcard(this.keys.index);
    if (count <= keep) return 0;
    const oldest = await this.redis.zrange(this.keys.index, "0", String(count - keep - 1));
    let deleted = 0;
    for (const id of oldest) {
      const [finished, cancelled, exists] = await this.redis.hmget(this.keys.record(id), 'finished_at', 'cancelled_at', 'id');
      if (exists !== null && finished === null && cancelled === null) continue;
      await this.redis.multi().del(this.keys.record(id), this.keys.results(id)).zrem(this.keys.index, id).exec();
      deleted++;
    }
    return deleted;
  }

  async begin(batchId: string, index: number, now: number): Promise<'missing' | 'cancelled' | 'done' | 'run'> {
    return (await this.redis.eval(BEGIN_SCRIPT, 2, this.keys.record(batchId), this.keys.results(batchId), String(index), String(now))) as 'missing' | 'cancelled' | 'done' | 'run';
  }

  /** Stores a request's result (once); the number of requests of the batch that have ended, or null if the batch is gone or it was stored before. */
  async record(batchId: string, index: number, line: BatchResultLine, outcome: 'completed' | 'failed', now: number, keepSeconds: number): Promise<number | null> {
    const ended = (await this.redis.eval(
      RECORD_SCRIPT, 2, this.keys.record(batchId), this.keys.results(batchId),
      String(index), JSON.stringify(line), outcome, String(now), String(keepSeconds * 1000),
    )) as number;
    return ended < 0 ? null : ended;
  }

  /** Marks a batch cancelled and removes its requests still waiting in the queue. */
  async cancel(id: string, now: number, keepSeconds: number): Promise<CancelOutcome> {
    const code = (await this.redis.eval(CANCEL_SCRIPT, 2, this.keys.record(id), this.keys.results(id), String(now), String(keepSeconds * 1000))) as number;
    if (code === 0) return 'not_found';
    if (code === 3) return 'already_ended';
    if (code === 2) return 'already_cancelled';
    const total = Number((await this.redis.hget(this.keys.record(id), 'total')) ?? 0);
    // waiting jobs would only be skipped by the worker; removing them frees the queue for
    // other batches now. Running ones are locked (remove fails) and are aborted by the service.
    for (let i = 0; i < total; i += 100) {
      const ids = Array.from({ length: Math.min(100, total - i) }, (_, k) => requestJobId(id, i + k));
      await Promise.all(ids.map((jobId) => this.bull().remove(jobId).catch(() => 0)));
    }
    return 'cancelled';
  }

  /** Whether the batch has been cancelled (polled while its requests run, for cancels from another gateway). */
  async isCancelled(id: string): Promise<boolean> {
    return (await this.redis.hexists(this.keys.record(id), 'cancelled_at')) === 1;
  }

  /**
   * Sets the request handler and starts the worker if this cluster has batches (unfinished ones
   * from before a restart resume then); otherwise the first submitted batch starts it. Does not
   * wait for Redis: the check runs in the background.
   */
  configureWorker(handler: RequestHandler, concurrency: number, keepSeconds: number): void {
    this.workerSpec = { handler, concurrency, keepSeconds };
    void waitForRedis(this.redis)
      .then(() => this.redis.exists(this.keys.index))
      .then((n) => {
        if (n > 0) this.ensureWorker();
      })
      .catch((error: Error) => this.warn('worker', error));
  }

  /** Starts the worker if it is not running. `handler` throws to have BullMQ retry a job. */
  ensureWorker(): void {
    if (this.worker || this.closed || !this.workerSpec) return;
    const { handler, concurrency, keepSeconds } = this.workerSpec;
    this.worker = new Worker<BatchJobData>(
      this.keys.queueName,
      async (job: Job<BatchJobData>, token?: string) => {
        const outcome = await handler(job.data, { number: job.attemptsMade + 1, last: job.attemptsMade + 1 >= (job.opts.attempts ?? 1) });
        if (outcome === 'requeue') {
          // back to the queue without using an attempt: the next gateway start runs it
          await job.moveToWait(token);
          throw new WaitingError();
        }
      },
      {
        // BullMQ opens (and closes) the worker's connections itself: it needs a blocking one of
        // its own, and retrying commands for ever (maxRetriesPerRequest null)
        connection: { ...parseRedisUrl(this.options.redisUrl), connectionName: 'baton:batch-worker', maxRetriesPerRequest: null, retryStrategy: backoffMs },
        prefix: this.keys.bullPrefix,
        concurrency,
        maxStalledCount: 5,
      },
    );
    this.worker.on('error', (error) => this.warn('worker', error));
    this.worker.on('failed', (job, error) => {
      if (!job) return;
      void (async () => {
        // 'failed' is emitted for retried attempts too; only a job out of attempts (or stalled
        // too often) is in the failed state. It ends with an error line so the batch can finish.
        if ((await job.getState().catch(() => 'unknown')) !== 'failed') return;
        this.logger.warn(`batch ${job.data.batchId} request ${job.data.index} failed: ${error.message}`);
        await this.recordFailure(job.data, error.message, keepSeconds);
      })();
    });
  }

  private async recordFailure(data: BatchJobData, message: string, keepSeconds: number): Promise<void> {
    const line = errorLine(data.request.custom_id, 'internal_error', `the request could not be run: ${message}`);
    await this.record(data.batchId, data.index, line, 'failed', Date.now(), keepSeconds).catch(() => undefined);
  }

  /**
   * Stops taking jobs, calls `abortRunning` (the running requests then return 'requeue') and
   * waits for them, then closes the connections. With Redis unreachable no job can be running
   * and BullMQ's graceful close would wait for Redis forever: it closes at once.
   */
  async close(abortRunning: () => void): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = null;
    if (worker) {
      // BullMQ's graceful close waits for Redis: with Redis down no job can finish anyway
      const closing = worker.close(this.redis.status !== 'ready');
      abortRunning();
      await closing;
    }
    await this.queue?.close();
    await this.connections.close(this.redis);
  }
}
