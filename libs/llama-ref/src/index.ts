// @baton/llama-ref: llama.cpp (node-llama-cpp 3.21.1) as the outside reference for tests and
// benchmarks. Every model is loaded in a child process (worker/llama-worker.mjs): llama.cpp
// aborts the whole process on some bad files, which must not take the caller down with it.
//
// node-llama-cpp options this needed (see the worker for where each is set):
// - getLlama({ build: 'never', gpu: false, usePrebuiltBinaries: true, skipDownload: true }): use
//   the prebuilt CPU binary, never compile or download.
// - getLlama({ maxThreads }) and createContext({ threads }): its default is 4 threads, ~100×
//   slower on a 2-core machine. Default here: 1 thread.
// - createContext({ flashAttention: false, experimentalKvCacheKeyType: 'F32',
//   experimentalKvCacheValueType: 'F32' }): an F32 KV cache and no flash attention, so an F32
//   model can be compared to ~1e-6 (llama.cpp's default KV cache is F16).
// - evaluate(tokens, { temperature: 0, yieldEogToken: true }): greedy, and keep going past an
//   end-of-generation token so exactly n tokens come back. Tokens go in exactly as given (no BOS).
// - evaluateWithMetadata(tokens, { probabilities: true }, { temperature: 0 }): with only the greedy
//   sampler in the chain, node-llama-cpp softmaxes the raw logits of the whole vocabulary.
// - loadModel({ vocabOnly: true }) for tokenize: loads no weights.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const WORKER = fileURLToPath(new URL('../worker/llama-worker.mjs', import.meta.url));

export interface LlamaRefOptions {
  /** Threads for llama.cpp (default 1). */
  threads?: number;
  /** Context size in tokens (default: enough for the request, at least 512). */
  contextSize?: number;
  /** Batch size for prompt processing (default 512). */
  batchSize?: number;
  /** KV cache type (default 'f32', for exact comparisons). */
  kvType?: 'f32' | 'f16';
  /** Flash attention (default false, for exact comparisons). */
  flashAttention?: boolean;
  /** Give up on a request after this long (default 10 minutes). */
  timeoutMs?: number;
}

export interface BenchmarkOptions {
  threads?: number;
  /** Prompt length for the prefill measurement (default 512). */
  promptTokens?: number;
  /** Tokens generated for the decode measurement (default 64). */
  decodeTokens?: number;
}

export interface BenchmarkResult {
  decodeTokensPerSec: number;
  prefillTokensPerSec: number;
  threads: number;
}

/** A failure reported by llama.cpp or its child process; `stderr` holds the child's last output. */
export class LlamaRefError extends Error {
  constructor(message: string, readonly stderr = '') {
    super(message);
    this.name = 'LlamaRefError';
  }
}

type Reply = { id: number; ok: boolean; result?: unknown; error?: string };

function checkTokens(tokens: readonly number[]): number[] {
  if (!Array.isArray(tokens) || tokens.length === 0) throw new LlamaRefError('the prompt needs at least one token');
  for (const t of tokens) {
    if (!Number.isInteger(t) || t < 0 || t > 0x7fffffff) throw new LlamaRefError(`token ids must be non-negative integers, got ${t}`);
  }
  return [...tokens];
}

/**
 * One model loaded by llama.cpp in a child process. Requests are answered one at a time; each
 * starts from an empty KV cache. close() when done (the child also exits when the parent does).
 */
export class LlamaRefSession {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private stderr = '';
  private exited: Error | undefined;

  private constructor(private readonly child: ChildProcess, readonly modelPath: string, private readonly timeoutMs: number) {}

  static async open(modelPath: string, options: LlamaRefOptions & { vocabOnly?: boolean } = {}): Promise<LlamaRefSession> {
    const threads = options.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) throw new LlamaRefError(`threads must be a positive integer, got ${threads}`);
    const config = {
      modelPath,
      threads,
      contextSize: options.contextSize ?? 512,
      batchSize: options.batchSize ?? 512,
      kvType: options.kvType ?? 'f32',
      flashAttention: options.flashAttention ?? false,
      vocabOnly: options.vocabOnly ?? false,
    };
    const child = fork(WORKER, [JSON.stringify(config)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'advanced' });
    const session = new LlamaRefSession(child, modelPath, options.timeoutMs ?? 600_000);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      session.stderr = (session.stderr + chunk).slice(-8000);
    });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (message: { ready?: boolean }) => {
        if (message?.ready) {
          child.off('exit', onExit);
          resolve();
        }
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        child.off('message', onMessage);
        reject(new LlamaRefError(`llama.cpp could not load ${modelPath} (child exited with ${signal ?? `code ${code}`}): ${session.lastError()}`, session.stderr));
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
    child.on('message', (message: Reply) => session.onReply(message));
    child.on('exit', (code, signal) => {
      session.exited = new LlamaRefError(`llama.cpp child exited (${signal ?? `code ${code}`}): ${session.lastError()}`, session.stderr);
      for (const [, w] of session.waiting) {
        clearTimeout(w.timer);
        w.reject(session.exited);
      }
      session.waiting.clear();
    });
    return session;
  }

  private lastError(): string {
    const lines = this.stderr.split('\n').filter((l) => l.trim() !== '');
    const errors = lines.filter((l) => /error|assert|abort|failed/i.test(l));
    return (errors.length > 0 ? errors.slice(-3) : lines.slice(-3)).join(' | ') || 'no output';
  }

  private onReply(message: Reply): void {
    const waiter = this.waiting.get(message.id);
    if (!waiter) return;
    this.waiting.delete(message.id);
    clearTimeout(waiter.timer);
    if (message.ok) waiter.resolve(message.result);
    else waiter.reject(new LlamaRefError(`llama.cpp request failed: ${message.error}`, this.stderr));
  }

  private request<T>(op: string, args: Record<string, unknown>): Promise<T> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new LlamaRefError(`llama.cpp did not answer ${op} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.child.send({ id, op, ...args });
    });
  }

  /** Greedy generation of `n` tokens after `promptTokens` (used exactly: no BOS added). */
  greedyTokens(promptTokens: readonly number[], n: number): Promise<number[]> {
    if (!Number.isInteger(n) || n < 0) return Promise.reject(new LlamaRefError(`n must be a non-negative integer, got ${n}`));
    return this.request('greedy', { tokens: checkTokens(promptTokens), n });
  }

  /** The next-token distribution after `promptTokens`: index = token id, softmax of the logits. */
  async nextTokenProbabilities(promptTokens: readonly number[]): Promise<Float64Array> {
    return Float64Array.from(await this.request<number[]>('probabilities', { tokens: checkTokens(promptTokens) }));
  }

  /** llama.cpp's tokenization of `text` (no BOS; special tokens parsed only when asked). */
  tokenize(text: string, options: { specialTokens?: boolean } = {}): Promise<number[]> {
    return this.request('tokenize', { text, specialTokens: options.specialTokens ?? false });
  }

  benchmark(options: { promptTokens: number; decodeTokens: number }): Promise<BenchmarkResult> {
    return this.request('benchmark', options);
  }

  async close(): Promise<void> {
    if (this.exited || this.child.exitCode !== null) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  }
}

async function withSession<T>(modelPath: string, options: LlamaRefOptions & { vocabOnly?: boolean }, fn: (s: LlamaRefSession) => Promise<T>): Promise<T> {
  const session = await LlamaRefSession.open(modelPath, options);
  try {
    return await fn(session);
  } finally {
    await session.close();
  }
}

/** Greedy tokens from llama.cpp (F32 KV cache, no flash attention unless asked otherwise). */
export function greedyTokens(modelPath: string, promptTokens: readonly number[], n: number, options: LlamaRefOptions = {}): Promise<number[]> {
  const contextSize = options.contextSize ?? Math.max(512, promptTokens.length + n + 1);
  return withSession(modelPath, { ...options, contextSize }, (s) => s.greedyTokens(promptTokens, n));
}

/** The full next-token distribution after the prompt (index = token id). */
export function nextTokenProbabilities(modelPath: string, promptTokens: readonly number[], options: LlamaRefOptions = {}): Promise<Float64Array> {
  const contextSize = options.contextSize ?? Math.max(512, promptTokens.length + 1);
  return withSession(modelPath, { ...options, contextSize }, (s) => s.nextTokenProbabilities(promptTokens));
}

/** Tokenizes with llama.cpp's tokenizer (vocabulary-only load, no BOS added). */
export function tokenize(modelPath: string, text: string, options: LlamaRefOptions & { specialTokens?: boolean } = {}): Promise<number[]> {
  return withSession(modelPath, { ...options, vocabOnly: true }, (s) => s.tokenize(text, { specialTokens: options.specialTokens }));
}

/**
 * llama.cpp's prefill (a `promptTokens`-token prompt in one batch) and decode (`decodeTokens`
 * greedy steps) rates on this machine, after a short warm-up. Uses llama.cpp's default F16 KV
 * cache, as a user would run it.
 */
export function benchmark(modelPath: string, options: BenchmarkOptions = {}): Promise<BenchmarkResult> {
  const promptTokens = options.promptTokens ?? 512;
  const decodeTokens = options.decodeTokens ?? 64;
  return withSession(
    modelPath,
    { threads: options.threads ?? 1, contextSize: promptTokens + decodeTokens + 16, batchSize: promptTokens, kvType: 'f16' },
    (s) => s.benchmark({ promptTokens, decodeTokens }),
  );
}
