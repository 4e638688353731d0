// The engine's TypeScript API: one layer range of a GGUF model in the native engine.
//
// Discipline (after sharp): this file validates every argument and builds flat option objects;
// the C++ side copies them into plain structs and does long work (load, forward, measure) on a
// worker thread, so the event loop never blocks. Calls on one engine run one at a time, in call
// order (an internal queue); a native error becomes an EngineError whose stack points at the
// caller.
//
// Buffer lifetimes:
// - Inputs (`tokens`, `hidden`, `history` typed arrays) are read in place, without a copy, on a
//   worker thread until the returned Promise settles: don't write to them (or transfer or reuse
//   their memory) until then. Plain number arrays are copied at the call.
// - Outputs (`hiddenOut`, `logitsOut`, or arrays the engine allocates) are written in place and
//   belong to the caller once the Promise resolves; the engine keeps no reference to them.
// - A typed-array view into a larger Buffer (e.g. a received HIDDEN frame's payload) is fine, as
//   long as its byte offset is a multiple of 4.
import type { KvDType, SamplingFields } from '@baton/contracts';
import { addon, type NativeEngine, type NativeEngineInfo, type NativeGgufInfo, type NativeKvStats } from './native.js';

/** An error reported by the native engine or a refused argument. */
export class EngineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineError';
  }
}

export interface EngineOptions {
  /** GGUF model file. */
  model: string;
  /** First layer of the range (default 0). */
  layerStart?: number;
  /** One past the last layer of the range (default: the model's layer count). */
  layerEnd?: number;
  /** Compute threads of this engine (default 1). */
  threads?: number;
  /** KV cache element type (default 'f16'). */
  kvDType?: KvDType;
  /** KV pool capacity in token positions, over all sequences (default: the model's context, at most 4096). */
  kvTokens?: number;
  /** Rows per pass through the layers; longer inputs are processed in chunks (default 512). */
  maxBatchTokens?: number;
  /** Longest sequence in positions (default: min(context length, kvTokens)). */
  maxContext?: number;
}

/** Sampling of the last stage. Omitted fields are neutral; temperature 0 (default) is greedy. */
export interface SamplingOptions {
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** Recent tokens the penalties look at (default 64; -1 = the whole sequence). */
  penaltyLastN?: number;
  /** u64 seed; the draw for the token at position p depends only on (seed, p). */
  seed?: number | bigint;
}

export interface ForwardSequence {
  /** KV sequence (created on first use at position 0). */
  sequenceId: number;
  /** Position of the first input row: rows cover [firstPosition, firstPosition + tokenCount). At most the sequence's length; later positions are dropped. */
  firstPosition: number;
  tokenCount: number;
  sampling?: SamplingOptions | Partial<SamplingFields>;
}

export type ForwardOutput = 'hidden' | 'logits' | 'all-logits' | 'sample';

export interface ForwardRequest {
  /** The sequences of this call, distinct; input rows are concatenated in this order. */
  sequences: ForwardSequence[];
  /** First stage: Σ tokenCount token ids. */
  tokens?: Int32Array | readonly number[];
  /** Any stage (instead of tokens): Σ tokenCount × embeddingLength f32 hidden states. */
  hidden?: Float32Array;
  /** Optional token ids of these positions (for sampling penalties on a stage that gets hidden states). */
  history?: Int32Array | readonly number[];
  /**
   * What to return: 'hidden' (Σ tokenCount × embeddingLength), 'logits' (last row of each
   * sequence, sequences × vocabSize), 'all-logits' (Σ tokenCount × vocabSize), 'sample' (one token
   * id per sequence). Default: 'hidden' before the last stage, 'logits' on it.
   */
  output?: ForwardOutput;
  /** Where to write hidden output (else a new array). */
  hiddenOut?: Float32Array;
  /** Where to write logits (else a new array). */
  logitsOut?: Float32Array;
}

export interface ForwardResult {
  hidden?: Float32Array;
  logits?: Float32Array;
  tokens?: Int32Array;
}

export type EngineInfo = NativeEngineInfo;
export type KvStats = NativeKvStats;

export interface EngineMemory {
  /** Bytes of the tensors this range uses (mapped from the file). */
  weightsMappedBytes: number;
  /** Of those, bytes in memory now (mincore). */
  weightsResidentBytes: number;
  kvPoolBytes: number;
  scratchBytes: number;
  fileBytes: number;
}

export interface ComputeRate {
  /** Weight bytes streamed per second in a single-token decode step (the node announcement's computeBytesPerSec). */
  bytesPerSec: number;
  secondsPerToken: number;
}

const OUTPUT_CODES: Record<ForwardOutput, number> = { hidden: 0, logits: 1, 'all-logits': 2, sample: 3 };
const SEGMENT_STRIDE = 13;
const U32_MAX = 0xffffffff;

function fail(message: string): never {
  throw new EngineError(message);
}

function checkInt(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) fail(`${name} must be an integer in [${min}, ${max}], got ${String(value)}`);
  return value;
}

function checkNumber(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) fail(`${name} must be a number in [${min}, ${max}], got ${String(value)}`);
  return value;
}

/** Rethrows a native error with the caller's stack (captured before the call went async). */
function rethrow(capture: Error, error: unknown): never {
  const e = new EngineError(error instanceof Error ? error.message : String(error));
  e.stack = `${e.name}: ${e.message}\n${(capture.stack ?? '').split('\n').slice(1).join('\n')}`;
  throw e;
}

function toInt32(name: string, values: Int32Array | readonly number[], length: number): Int32Array {
  if (values instanceof Int32Array) {
    if (values.length !== length) fail(`${name} holds ${values.length} ids, the sequences need ${length}`);
    return values;
  }
  if (!Array.isArray(values)) fail(`${name} must be an Int32Array or an array of integers`);
  if (values.length !== length) fail(`${name} holds ${values.length} ids, the sequences need ${length}`);
  const out = new Int32Array(length);
  for (let i = 0; i < length; i++) out[i] = checkInt(`${name}[${i}]`, values[i], -1, 0x7fffffff);
  return out;
}

/** Loads a layer range of a GGUF model. See EngineOptions for defaults. */
export class Engine {
  /** What was loaded: model shape, range, KV and kernel choices. */
  readonly info: EngineInfo;
  /** Last measured compute rate (null until measureComputeRate()). */
  computeBytesPerSec: number | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(private readonly native: NativeEngine) {
    this.info = native.info();
  }

  static async load(options: EngineOptions): Promise<Engine> {
    const capture = new Error();
    if (typeof options !== 'object' || options === null) fail('Engine.load needs an options object');
    if (typeof options.model !== 'string' || options.model === '') fail('options.model must be the path of a GGUF file');
    const kvDType = options.kvDType ?? 'f16';
    if (!['f32', 'f16', 'q8_0'].includes(kvDType)) fail(`kvDType must be f32, f16 or q8_0, got ${String(kvDType)}`);
    const flat = {
      path: options.model,
      layerStart: checkInt('layerStart', options.layerStart ?? 0, 0, 4095),
      layerEnd: options.layerEnd === undefined ? -1 : checkInt('layerEnd', options.layerEnd, 1, 4096),
      threads: checkInt('threads', options.threads ?? 1, 1, 1024),
      kvDType,
      kvTokens: checkInt('kvTokens', options.kvTokens ?? 0, 0, 1 << 26),
      maxBatchTokens: checkInt('maxBatchTokens', options.maxBatchTokens ?? 512, 1, 65536),
      maxContext: checkInt('maxContext', options.maxContext ?? 0, 0, 1 << 26),
    };
    try {
      return new Engine(await addon().loadEngine(flat));
    } catch (error) {
      rethrow(capture, error);
    }
  }

  get firstStage(): boolean {
    return this.info.layerStart === 0;
  }

  get lastStage(): boolean {
    return this.info.layerEnd === this.info.layers;
  }

  /** Runs `fn` after every earlier call on this engine has settled. */
  private enqueue<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.queue.then(() => {
      if (this.closed) fail('this engine is closed');
      return fn();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * One pass of the rows of one or several sequences through this engine's layers; one pass over
   * the weights serves every row. Calls on one engine run one at a time, in call order.
   *
   * Buffer lifetimes: typed-array inputs (`tokens`, `hidden`, `history`) are read in place on a
   * worker thread until the returned Promise settles — do not write to, transfer or reuse their
   * memory before then (plain arrays are copied at the call). Outputs (`hiddenOut`, `logitsOut`,
   * or arrays allocated here) are written in place and belong to the caller once the Promise
   * resolves; the engine keeps no reference to any of them afterwards. A Float32Array view into a
   * received Buffer works as `hidden` if its byte offset is a multiple of 4.
   */
  forward(request: ForwardRequest): Promise<ForwardResult> {
    const capture = new Error();
    const info = this.info;
    if (typeof request !== 'object' || request === null || !Array.isArray(request.sequences) || request.sequences.length === 0) {
      return Promise.reject(new EngineError('forward needs { sequences: [...] } with at least one sequence'));
    }
    let prepared: () => Promise<ForwardResult>;
    try {
      const n = request.sequences.length;
      const segments = new Float64Array(n * SEGMENT_STRIDE);
      const ids = new Set<number>();
      let total = 0;
      request.sequences.forEach((s, i) => {
        const id = checkInt(`sequences[${i}].sequenceId`, s.sequenceId, 0, U32_MAX);
        if (ids.has(id)) fail(`sequence ${id} appears twice in one forward call`);
        ids.add(id);
        const first = checkInt(`sequences[${i}].firstPosition`, s.firstPosition, 0, info.maxContext);
        const count = checkInt(`sequences[${i}].tokenCount`, s.tokenCount, 1, info.maxContext);
        if (first + count > info.maxContext) fail(`sequence ${id} would reach position ${first + count}, past this engine's context of ${info.maxContext}`);
        const p = s.sampling ?? {};
        const seed = p.seed ?? 0;
        const seedBig = typeof seed === 'bigint' ? seed : BigInt(checkInt(`sequences[${i}].sampling.seed`, seed, 0, Number.MAX_SAFE_INTEGER));
        if (seedBig < 0n || seedBig > 0xffffffffffffffffn) fail(`sequences[${i}].sampling.seed must be a u64`);
        const o = i * SEGMENT_STRIDE;
        segments[o] = id;
        segments[o + 1] = first;
        segments[o + 2] = count;
        segments[o + 3] = checkNumber('temperature', p.temperature ?? 0, 0, 100);
        segments[o + 4] = checkInt('topK', p.topK ?? 0, 0, 0x7fffffff);
        segments[o + 5] = checkNumber('topP', p.topP ?? 1, 0, 1);
        segments[o + 6] = checkNumber('minP', p.minP ?? 0, 0, 1);
        segments[o + 7] = checkNumber('repetitionPenalty', p.repetitionPenalty ?? 1, 0.01, 100);
        segments[o + 8] = checkNumber('presencePenalty', p.presencePenalty ?? 0, -100, 100);
        segments[o + 9] = checkNumber('frequencyPenalty', p.frequencyPenalty ?? 0, -100, 100);
        segments[o + 10] = checkInt('penaltyLastN', (p as SamplingOptions).penaltyLastN ?? 64, -1, 0x7fffffff);
        segments[o + 11] = Number(seedBig & 0xffffffffn);
        segments[o + 12] = Number(seedBig >> 32n);
        total += count;
      });
      const output = request.output ?? (this.lastStage ? 'logits' : 'hidden');
      if (!(output in OUTPUT_CODES)) fail(`output must be hidden, logits, all-logits or sample; got ${String(output)}`);
      if (output !== 'hidden' && !this.lastStage) fail(`${output} needs the last stage; this engine runs layers [${info.layerStart}, ${info.layerEnd}) of ${info.layers}`);
      if ((request.tokens === undefined) === (request.hidden === undefined)) fail('forward needs either tokens or hidden as input');
      let tokens: Int32Array | null = null;
      let hidden: Float32Array | null = null;
      if (request.tokens !== undefined) {
        if (!this.firstStage) fail(`token ids go to the first stage; this engine runs layers [${info.layerStart}, ${info.layerEnd}) and takes hidden states`);
        tokens = toInt32('tokens', request.tokens, total);
        for (let i = 0; i < tokens.length; i++) {
          if (tokens[i]! < 0 || tokens[i]! >= info.vocabSize) fail(`token id ${tokens[i]} is outside the vocabulary [0, ${info.vocabSize})`);
        }
      } else {
        if (!(request.hidden instanceof Float32Array)) fail('hidden must be a Float32Array');
        if (request.hidden.length !== total * info.embeddingLength) {
          fail(`hidden holds ${request.hidden.length} floats; ${total} rows × ${info.embeddingLength} = ${total * info.embeddingLength} expected`);
        }
        hidden = request.hidden;
      }
      const history = request.history === undefined ? null : toInt32('history', request.history, total);
      let hiddenOut: Float32Array | null = null;
      let logitsOut: Float32Array | null = null;
      let tokensOut: Int32Array | null = null;
      if (output === 'hidden') {
        const need = total * info.embeddingLength;
        hiddenOut = request.hiddenOut ?? new Float32Array(need);
        if (!(hiddenOut instanceof Float32Array) || hiddenOut.length !== need) fail(`hiddenOut must be a Float32Array of ${need} floats`);
      } else if (output === 'sample') {
        tokensOut = new Int32Array(n);
      } else {
        const need = (output === 'all-logits' ? total : n) * info.vocabSize;
        logitsOut = request.logitsOut ?? new Float32Array(need);
        if (!(logitsOut instanceof Float32Array) || logitsOut.length !== need) fail(`logitsOut must be a Float32Array of ${need} floats`);
      }
      prepared = async () => {
        await this.native.forward(segments, OUTPUT_CODES[output], tokens, hidden, history, hiddenOut, logitsOut, tokensOut);
        if (hiddenOut) return { hidden: hiddenOut };
        if (tokensOut) return { tokens: tokensOut };
        return { logits: logitsOut! };
      };
    } catch (error) {
      return Promise.reject(error instanceof EngineError ? error : new EngineError(String(error)));
    }
    return this.enqueue(prepared).catch((error: unknown) => rethrow(capture, error));
  }

  /** Measures single-token decode steps (weights streamed per second); also sets computeBytesPerSec. */
  measureComputeRate(steps = 8): Promise<ComputeRate> {
    const capture = new Error();
    checkInt('steps', steps, 1, 1000);
    return this.enqueue(async () => {
      const rate = await this.native.measureDecode(steps);
      this.computeBytesPerSec = rate.bytesPerSec;
      return rate;
    }).catch((error: unknown) => rethrow(capture, error));
  }

  memory(): Promise<EngineMemory> {
    return this.enqueue(() => this.native.memory());
  }

  /** KV pool operations (see cpp/kv_pool.h); each waits for earlier calls on this engine. */
  readonly kv = {
    /** Creates an empty sequence with room for `tokens` positions; error if it exists or the pool is full. */
    allocate: (sequenceId: number, tokens = 0): Promise<void> => this.kvCall(() => this.native.kvAllocate(checkInt('sequenceId', sequenceId, 0, U32_MAX), checkInt('tokens', tokens, 0, 1 << 30))),
    /** Makes room for `tokens` more positions after the sequence's length (creating it if absent). */
    extend: (sequenceId: number, tokens: number): Promise<void> => this.kvCall(() => this.native.kvExtend(checkInt('sequenceId', sequenceId, 0, U32_MAX), checkInt('tokens', tokens, 0, 1 << 30))),
    free: (sequenceId: number): Promise<void> => this.kvCall(() => this.native.kvFree(checkInt('sequenceId', sequenceId, 0, U32_MAX))),
    /** Keeps positions [0, tokens) and releases the blocks past them. */
    truncate: (sequenceId: number, tokens: number): Promise<void> => this.kvCall(() => this.native.kvTruncate(checkInt('sequenceId', sequenceId, 0, U32_MAX), checkInt('tokens', tokens, 0, 1 << 30))),
    /** Makes `destination` (created or replaced) a copy of positions [0, tokens) of `source`. */
    copyPrefix: (destination: number, source: number, tokens: number): Promise<void> =>
      this.kvCall(() => this.native.kvCopyPrefix(checkInt('destination', destination, 0, U32_MAX), checkInt('source', source, 0, U32_MAX), checkInt('tokens', tokens, 0, 1 << 30))),
    stats: (): Promise<KvStats> => this.enqueue(() => this.native.kvStats()),
  };

  private kvCall(fn: () => void): Promise<void> {
    const capture = new Error();
    return this.enqueue(fn).catch((error: unknown) => rethrow(capture, error));
  }

  /** Releases the engine (after pending calls settle). Further calls fail. */
  close(): Promise<void> {
    return this.enqueue(() => {
      this.closed = true;
      this.native.close();
    });
  }
}

/** All metadata and tensor infos of a GGUF file, read by the engine's C++ reader. */
export async function readGgufInfo(path: string): Promise<NativeGgufInfo> {
  const capture = new Error();
  if (typeof path !== 'string' || path === '') fail('readGgufInfo needs a file path');
  try {
    return await addon().readGguf(path);
  } catch (error) {
    rethrow(capture, error);
  }
}

/** Parses a GGUF image in memory: null if the C++ reader accepts it, else its error message. */
export function checkGgufBytes(bytes: Uint8Array): string | null {
  if (!(bytes instanceof Uint8Array)) fail('checkGgufBytes needs a Uint8Array');
  return addon().checkGgufBuffer(bytes);
}

/** The kernel set chosen for this CPU ("avx512", "avx2", "neon" or "scalar"). */
export function kernelsName(): string {
  return addon().kernelsName();
}

/**
 * STREAM-style read bandwidth of this machine: the best of `passes` reads of a `bytes` buffer
 * (default 256 MiB, well past the caches) by `threads` threads, in bytes per second.
 */
export async function measureReadBandwidth(options: { bytes?: number; passes?: number; threads?: number } = {}): Promise<number> {
  const capture = new Error();
  const bytes = checkInt('bytes', options.bytes ?? 256 * 1024 * 1024, 1 << 20, 2 ** 34);
  const passes = checkInt('passes', options.passes ?? 5, 1, 1000);
  const threads = checkInt('threads', options.threads ?? 1, 1, 1024);
  try {
    return await addon().measureReadBandwidth(bytes, passes, threads);
  } catch (error) {
    rethrow(capture, error);
  }
}
