// @baton/llama-ref: llama.cpp (node-llama-cpp 3.21.1) as the outside reference for tests and
// benchmarks. llama.cpp runs in a child process (worker/llama-worker.mjs): it aborts the whole
// process on some bad files, which must not take the caller down with it.
//
// node-llama-cpp options this needed (see the worker for where each is set):
// - getLlama({ build: 'never', gpu: false, usePrebuiltBinaries: true, skipDownload: true }): the
//   prebuilt CPU binary, never a compile or a download. getLlama itself takes ~1-2 s (it test-runs
//   the binary in a subprocess), so a LlamaRef keeps one child for many models.
// - getLlama({ maxThreads }) and createContext({ threads }): its default is 4 threads, ~100×
//   slower on a 2-core machine. Default here: 1 thread.
// - createContext({ flashAttention: false, experimentalKvCacheKeyType: 'F32',
//   experimentalKvCacheValueType: 'F32' }): F32 KV cache and no flash attention, so an F32 model
//   can be compared to ~1e-6 (llama.cpp's default KV cache is F16).
// - evaluate(tokens, { temperature: 0, yieldEogToken: true }): greedy, and keep going past an
//   end-of-generation token so exactly n tokens come back. Tokens go in exactly as given (no BOS).
// - evaluateWithMetadata(tokens, { probabilities: true }, { temperature: 0 }): with only the greedy
//   sampler in the chain, node-llama-cpp softmaxes the raw logits over the whole vocabulary.
// - loadModel({ vocabOnly: true }) for tokenize: no weights loaded.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const WORKER = fileURLToPath(new URL('../worker/llama-worker.mjs', import.meta.url));

export interface LlamaRefOptions {
  /** Context size in tokens (default: enough for the request, at least 512). */
  contextSize?: number;
  /** Batch size for prompt processing (default 512). */
  batchSize?: number;
  /** KV cache type (default 'f32', for exact comparisons). */
  kvType?: 'f32' | 'f16';
  /** Flash attention (default false, for exact comparisons). */
  flashAttention?: boolean;
}

export interface LlamaRefStartOptions {
  /** Threads for llama.cpp (default 1). */
  threads?: number;
  /** Give up on one request after this long (default 10 minutes). */
  timeoutMs?: number;
}

export interface BenchmarkOptions {
  threads?: number;
  /** Prompt length for the prefill measurement (default 512). */
  promptTokens?: number;
  /** Tokens generated for the decode measurement (default 64). */
  decodeTokens?: number;
  /** KV cache type (default 'f16', llama.cpp's own default). */
  kvType?: 'f32' | 'f16';
  /** Flash attention (default false). */
  flashAttention?: boolean;
}

export interface BenchmarkResult {
  decodeTokensPerSec: number;
  prefillTokensPerSec: number;
  threads: number;
}

export interface LlamaRefModelInfo {
  vocabularySize: number;
  trainContextSize: number;
  bos: number | null;
  eos: number | null;
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

function modelSpec(modelPath: string, options: LlamaRefOptions & { vocabOnly?: boolean }, minContext: number) {
  return {
    modelPath,
    vocabOnly: options.vocabOnly ?? false,
    contextSize: options.contextSize ?? Math.max(512, minContext),
    batchSize: options.batchSize ?? 512,
    kvType: options.kvType ?? 'f32',
    flashAttention: options.flashAttention ?? false,
  };
}

/**
 * llama.cpp in one child process. Any number of models can be used through it, one loaded at a
 * time (switching reloads); requests run one after another, each from an empty KV cache. If a
 * model makes llama.cpp abort, that request and every later one reject with a LlamaRefError:
 * start a new LlamaRef. close() when done (the child also exits with the parent).
 */
export class LlamaRef {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private stderr = '';
  private exited: LlamaRefError | undefined;

  private constructor(private readonly child: ChildProcess, private readonly timeoutMs: number) {}

  static async start(options: LlamaRefStartOptions = {}): Promise<LlamaRef> {
    const threads = options.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) throw new LlamaRefError(`threads must be a positive integer, got ${threads}`);
    const child = fork(WORKER, [JSON.stringify({ threads })], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    const ref = new LlamaRef(child, options.timeoutMs ?? 600_000);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      ref.stderr = (ref.stderr + chunk).slice(-8000);
    });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (message: { ready?: boolean }) => {
        if (!message?.ready) return;
        child.off('exit', onExit);
        child.off('message', onMessage);
        resolve();
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        child.off('message', onMessage);
        reject(new LlamaRefError(`node-llama-cpp did not start (child exited with ${signal ?? `code ${code}`}): ${ref.lastError()}`, ref.stderr));
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
    child.on('message', (message: Reply) => ref.onReply(message));
    child.on('exit', (code, signal) => {
      ref.exited = new LlamaRefError(`llama.cpp exited (${signal ?? `code ${code}`}): ${ref.lastError()}`, ref.stderr);
      for (const [, w] of ref.waiting) {
        clearTimeout(w.timer);
        w.reject(ref.exited);
      }
      ref.waiting.clear();
    });
    return ref;
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
    else waiter.reject(new LlamaRefError(`llama.cpp: ${message.error}`, this.stderr));
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

  /** Loads a model now (later requests for it reuse it) and describes it. */
  load(modelPath: string, options: { vocabOnly?: boolean } = {}): Promise<LlamaRefModelInfo> {
    return this.request('load', { model: modelSpec(modelPath, options, 0) });
  }

  /** Greedy generation of `n` tokens after `promptTokens` (used exactly: no BOS added). */
  async greedyTokens(modelPath: string, promptTokens: readonly number[], n: number, options: LlamaRefOptions = {}): Promise<number[]> {
    const tokens = checkTokens(promptTokens);
    if (!Number.isInteger(n) || n < 0) throw new LlamaRefError(`n must be a non-negative integer, got ${n}`);
    return this.request('greedy', { model: modelSpec(modelPath, options, tokens.length + n + 1), tokens, n });
  }

  /** The next-token distribution after `promptTokens`: index = token id, softmax of the logits. */
  async nextTokenProbabilities(modelPath: string, promptTokens: readonly number[], options: LlamaRefOptions = {}): Promise<Float64Array> {
    const tokens = checkTokens(promptTokens);
    return Float64Array.from(await this.request<number[]>('probabilities', { model: modelSpec(modelPath, options, tokens.length + 1), tokens }));
  }

  /** llama.cpp's tokenization of `text` (no BOS; special tokens parsed only when asked). */
  tokenize(modelPath: string, text: string, options: { specialTokens?: boolean; vocabOnly?: boolean } = {}): Promise<number[]> {
    return this.request('tokenize', { model: modelSpec(modelPath, { vocabOnly: options.vocabOnly ?? true }, 0), text, specialTokens: options.specialTokens ?? false });
  }

  /**
   * Prefill rate (one `promptTokens`-token prompt, ids 0..255, in one batch) and decode rate
   * (`decodeTokens` greedy steps right after it, so at context promptTokens .. promptTokens +
   * decodeTokens), after an 8-token warm-up, with llama.cpp's usual F16 KV cache by default.
   */
  benchmark(modelPath: string, options: Omit<BenchmarkOptions, 'threads'> = {}): Promise<BenchmarkResult> {
    const promptTokens = options.promptTokens ?? 512;
    const decodeTokens = options.decodeTokens ?? 64;
    if (!Number.isInteger(promptTokens) || promptTokens < 8) return Promise.reject(new LlamaRefError(`promptTokens must be an integer of at least 8, got ${promptTokens}`));
    if (!Number.isInteger(decodeTokens) || decodeTokens < 1) return Promise.reject(new LlamaRefError(`decodeTokens must be a positive integer, got ${decodeTokens}`));
    const model = modelSpec(modelPath, {
      contextSize: promptTokens + decodeTokens + 16,
      batchSize: promptTokens,
      kvType: options.kvType ?? 'f16',
      flashAttention: options.flashAttention ?? false,
    }, 0);
    return this.request('benchmark', { model, promptTokens, decodeTokens });
  }

  async close(): Promise<void> {
    if (this.exited || this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  }
}

async function once<T>(threads: number | undefined, fn: (ref: LlamaRef) => Promise<T>): Promise<T> {
  const ref = await LlamaRef.start({ threads });
  try {
    return await fn(ref);
  } finally {
    await ref.close();
  }
}

/** Greedy tokens from llama.cpp (F32 KV cache, no flash attention unless asked otherwise). */
export async function greedyTokens(modelPath: string, promptTokens: readonly number[], n: number, options: LlamaRefOptions & { threads?: number } = {}): Promise<number[]> {
  checkTokens(promptTokens);
  if (!Number.isInteger(n) || n < 0) throw new LlamaRefError(`n must be a non-negative integer, got ${n}`);
  return once(options.threads, (ref) => ref.greedyTokens(modelPath, promptTokens, n, options));
}

/** The full next-token distribution after the prompt (index = token id). */
export async function nextTokenProbabilities(modelPath: string, promptTokens: readonly number[], options: LlamaRefOptions & { threads?: number } = {}): Promise<Float64Array> {
  checkTokens(promptTokens);
  return once(options.threads, (ref) => ref.nextTokenProbabilities(modelPath, promptTokens, options));
}

/** Tokenizes with llama.cpp's tokenizer (vocabulary-only load, no BOS added). */
export function tokenize(modelPath: string, text: string, options: { specialTokens?: boolean; threads?: number } = {}): Promise<number[]> {
  return once(options.threads, (ref) => ref.tokenize(modelPath, text, options));
}

/** llama.cpp's prefill and decode tokens/s on this machine (see LlamaRef.benchmark). */
export function benchmark(modelPath: string, options: BenchmarkOptions = {}): Promise<BenchmarkResult> {
  return once(options.threads ?? 1, (ref) => ref.benchmark(modelPath, options));
}
