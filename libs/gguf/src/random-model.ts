// Random-weight models in real GGUF shape (llama / qwen2 / qwen3) that llama.cpp loads: the
// fixtures for every engine test and the demo model. Deterministic per seed: each tensor's values
// come from a PRNG keyed by (seed, tensor name), so the same options always give identical bytes.
import { rename, unlink } from 'node:fs/promises';
import { Prng } from './prng.js';
import { quantize, quantizedBytes } from './quant.js';
import { buildBpeVocab, CHATML_TEMPLATE, type BpeVocab } from './tokenizer.js';
import { GgmlType, GGML_TYPE_LAYOUT, LLAMA_FILE_TYPE } from './types.js';
import { arr, bool, f32, str, u32, GgufError } from './values.js';
import { GgufWriter } from './writer.js';

export type RandomModelArch = 'llama' | 'qwen2' | 'qwen3';
export type RandomModelType = 'f32' | 'f16' | 'q8_0' | 'q4_0' | 'q4_k';
export const RANDOM_MODEL_ARCHS: readonly RandomModelArch[] = ['llama', 'qwen2', 'qwen3'];
export const RANDOM_MODEL_TYPES: readonly RandomModelType[] = ['f32', 'f16', 'q8_0', 'q4_0', 'q4_k'];

export interface RandomModelOptions {
  out: string;
  arch: RandomModelArch;
  /** Embedding length (n_embd). */
  dim: number;
  layers: number;
  heads: number;
  kvHeads: number;
  /** Per-head dimension; default dim / heads. */
  headDim?: number;
  /** Feed-forward length. */
  ffn: number;
  type: RandomModelType;
  context: number;
  seed: number;
  /** Total vocabulary size; default 256 bytes + ~500 learned merges + 3 specials. */
  vocab?: number;
  /** Omit output.weight so the head reuses token_embd.weight. Default false. */
  tiedEmbeddings?: boolean;
  /** general.name; default "baton-random-<arch>-<type>". */
  name?: string;
}

/** Small defaults (`baton model make` uses these). */
export const RANDOM_MODEL_DEFAULTS = {
  arch: 'llama' as RandomModelArch,
  dim: 256,
  layers: 4,
  heads: 8,
  kvHeads: 4,
  ffn: 768,
  type: 'q8_0' as RandomModelType,
  context: 4096,
  seed: 1,
};

export interface MakeProgress {
  bytesWritten: number;
  totalBytes: number;
  tensor: string;
}

export interface RandomModelResult {
  path: string;
  fileBytes: number;
  tensorCount: number;
  vocabSize: number;
  /** Per-tensor type actually used, e.g. Q6_K for output.weight in a q4_k file. */
  tensorTypes: Record<string, string>;
}

const ARCH_DEFAULTS: Record<RandomModelArch, { rmsEps: number; ropeBase: number }> = {
  llama: { rmsEps: 1e-5, ropeBase: 10000 },
  qwen2: { rmsEps: 1e-6, ropeBase: 1000000 },
  qwen3: { rmsEps: 1e-6, ropeBase: 1000000 },
};

const FILE_TYPES: Record<RandomModelType, { main: GgmlType; fileType: number }> = {
  f32: { main: GgmlType.F32, fileType: LLAMA_FILE_TYPE.ALL_F32 },
  f16: { main: GgmlType.F16, fileType: LLAMA_FILE_TYPE.MOSTLY_F16 },
  q8_0: { main: GgmlType.Q8_0, fileType: LLAMA_FILE_TYPE.MOSTLY_Q8_0 },
  q4_0: { main: GgmlType.Q4_0, fileType: LLAMA_FILE_TYPE.MOSTLY_Q4_0 },
  q4_k: { main: GgmlType.Q4_K, fileType: LLAMA_FILE_TYPE.MOSTLY_Q4_K_M },
};

const QK_GAIN = 2;

/** llama.cpp's Q4_K_M rule for which layers' attn_v / ffn_down get 6 bits. */
function useMoreBits(layer: number, layers: number): boolean {
  const eighth = Math.floor(layers / 8);
  return layer < eighth || layer >= Math.floor((7 * layers) / 8) || (layer - eighth) % 3 === 2;
}

export interface TensorPlan {
  name: string;
  dims: number[];
  type: GgmlType;
  /** Values are uniform with this mean and standard deviation. */
  std: number;
  center: number;
}

/** Validates options and lays out every tensor (name, shape, type, value distribution). */
export function planRandomModel(options: RandomModelOptions): { tensors: TensorPlan[]; headDim: number; vocab: BpeVocab } {
  const { arch, dim, layers, heads, kvHeads, ffn, type, context, seed } = options;
  const problems: string[] = [];
  if (!RANDOM_MODEL_ARCHS.includes(arch)) problems.push(`arch must be one of ${RANDOM_MODEL_ARCHS.join(', ')}, got ${JSON.stringify(arch)}`);
  if (!RANDOM_MODEL_TYPES.includes(type)) problems.push(`type must be one of ${RANDOM_MODEL_TYPES.join(', ')}, got ${JSON.stringify(type)}`);
  const positive = { dim, layers, heads, kvHeads, ffn, context };
  for (const [key, value] of Object.entries(positive)) {
    if (!Number.isSafeInteger(value) || value <= 0) problems.push(`${key} must be a positive integer, got ${value}`);
  }
  if (!Number.isSafeInteger(seed) || seed < 0) problems.push(`seed must be a non-negative integer, got ${seed}`);
  const headDim = options.headDim ?? (heads > 0 && dim % heads === 0 ? dim / heads : NaN);
  if (options.headDim === undefined && !(heads > 0 && dim % heads === 0)) problems.push(`dim ${dim} is not divisible by heads ${heads}: give headDim explicitly`);
  else if (!Number.isSafeInteger(headDim) || headDim <= 0 || headDim % 2 !== 0) problems.push(`headDim must be a positive even integer (RoPE rotates pairs), got ${headDim}`);
  if (heads > 0 && kvHeads > 0 && heads % kvHeads !== 0) problems.push(`heads (${heads}) must be a multiple of kvHeads (${kvHeads})`);
  if (problems.length === 0) {
    const block = type === 'q4_k' ? 256 : type === 'q8_0' || type === 'q4_0' ? 32 : 1;
    const rows: [string, number][] = [['dim', dim], ['ffn', ffn], ['heads × headDim', heads * headDim]];
    for (const [what, value] of rows) {
      if (value % block !== 0) problems.push(`${type} stores rows in blocks of ${block}: ${what} (${value}) must be a multiple of ${block}`);
    }
  }
  let vocab: BpeVocab | undefined;
  try {
    vocab = buildBpeVocab({ vocabSize: options.vocab });
  } catch (error) {
    problems.push((error as Error).message);
  }
  if (problems.length > 0 || !vocab) throw new GgufError(`cannot make this model: ${problems.join('; ')}`);
  const vocabSize = vocab.tokens.length;

  const main = FILE_TYPES[type].main;
  const isK = type === 'q4_k';
  // Real Q4_K_M and Q4_0 files keep the output head at 6 bits (Q8_0 when rows don't fit Q6_K blocks).
  const wide = type === 'q4_k' || type === 'q4_0' ? (dim % 256 === 0 ? GgmlType.Q6_K : GgmlType.Q8_0) : main;
  const qDim = heads * headDim;
  const kvDim = kvHeads * headDim;
  const tensors: TensorPlan[] = [];
  const matrix = (name: string, cols: number, rows: number, t: GgmlType, gain = 1) => tensors.push({ name, dims: [cols, rows], type: t, std: gain / Math.sqrt(cols), center: 0 });
  const norm = (name: string, n: number) => tensors.push({ name, dims: [n], type: GgmlType.F32, std: 0.1, center: 1 });
  const bias = (name: string, n: number) => tensors.push({ name, dims: [n], type: GgmlType.F32, std: 0.1, center: 0 });
  tensors.push({ name: 'token_embd.weight', dims: [dim, vocabSize], type: main, std: 3 / Math.sqrt(dim), center: 0 });
  for (let i = 0; i < layers; i++) {
    const more = isK && useMoreBits(i, layers);
    norm(`blk.${i}.attn_norm.weight`, dim);
    // Q and K at twice the unit gain: attention scores of std ~4 rather than ~1, so attention picks
    // out positions instead of averaging the context (at 16 layers a flat attention made greedy
    // output settle into repeating one token; with this gain 48 greedy steps give ~40 distinct).
    matrix(`blk.${i}.attn_q.weight`, dim, qDim, main, QK_GAIN);
    matrix(`blk.${i}.attn_k.weight`, dim, kvDim, main, QK_GAIN);
    matrix(`blk.${i}.attn_v.weight`, dim, kvDim, more ? GgmlType.Q6_K : main);
    if (arch === 'qwen2') {
      bias(`blk.${i}.attn_q.bias`, qDim);
      bias(`blk.${i}.attn_k.bias`, kvDim);
      bias(`blk.${i}.attn_v.bias`, kvDim);
    }
    if (arch === 'qwen3') {
      norm(`blk.${i}.attn_q_norm.weight`, headDim);
      norm(`blk.${i}.attn_k_norm.weight`, headDim);
    }
    matrix(`blk.${i}.attn_output.weight`, qDim, dim, main);
    norm(`blk.${i}.ffn_norm.weight`, dim);
    matrix(`blk.${i}.ffn_gate.weight`, dim, ffn, main);
    matrix(`blk.${i}.ffn_up.weight`, dim, ffn, main);
    matrix(`blk.${i}.ffn_down.weight`, ffn, dim, more ? GgmlType.Q6_K : main);
  }
  norm('output_norm.weight', dim);
  if (!options.tiedEmbeddings) tensors.push({ name: 'output.weight', dims: [dim, vocabSize], type: wide, std: 3 / Math.sqrt(dim), center: 0 });
  return { tensors, headDim, vocab };
}

/**
 * Writes a random-weight GGUF model. Tensor data is generated and quantized in chunks of whole
 * rows and streamed to disk; the file appears under its name only once complete.
 */
export async function writeRandomModel(options: RandomModelOptions, onProgress?: (progress: MakeProgress) => void): Promise<RandomModelResult> {
  const { tensors, headDim, vocab } = planRandomModel(options);
  const vocabSize = vocab.tokens.length;

  const { arch, type } = options;
  const defaults = ARCH_DEFAULTS[arch];
  const writer = new GgufWriter();
  writer
    .set('general.architecture', str(arch))
    .set('general.name', str(options.name ?? `baton-random-${arch}-${type}`))
    .set('general.file_type', u32(FILE_TYPES[type].fileType));
  if (type !== 'f32' && type !== 'f16') writer.set('general.quantization_version', u32(2));
  writer
    .set(`${arch}.vocab_size`, u32(vocabSize))
    .set(`${arch}.context_length`, u32(options.context))
    .set(`${arch}.embedding_length`, u32(options.dim))
    .set(`${arch}.block_count`, u32(options.layers))
    .set(`${arch}.feed_forward_length`, u32(options.ffn))
    .set(`${arch}.attention.head_count`, u32(options.heads))
    .set(`${arch}.attention.head_count_kv`, u32(options.kvHeads))
    .set(`${arch}.attention.layer_norm_rms_epsilon`, f32(defaults.rmsEps))
    .set(`${arch}.rope.freq_base`, f32(defaults.ropeBase))
    .set(`${arch}.rope.dimension_count`, u32(headDim));
  if (arch === 'qwen3' || headDim * options.heads !== options.dim) {
    writer.set(`${arch}.attention.key_length`, u32(headDim)).set(`${arch}.attention.value_length`, u32(headDim));
  }
  writer
    .set('tokenizer.ggml.model', str('gpt2'))
    .set('tokenizer.ggml.pre', str('gpt-2'))
    .set('tokenizer.ggml.tokens', arr('string', vocab.tokens))
    .set('tokenizer.ggml.token_type', arr('int32', vocab.tokenTypes))
    .set('tokenizer.ggml.merges', arr('string', vocab.merges))
    .set('tokenizer.ggml.bos_token_id', u32(vocab.bosId))
    .set('tokenizer.ggml.eos_token_id', u32(vocab.eosId))
    .set('tokenizer.ggml.padding_token_id', u32(vocab.padId))
    .set('tokenizer.ggml.add_bos_token', bool(false))
    .set('tokenizer.ggml.add_eos_token', bool(false))
    .set('tokenizer.chat_template', str(CHATML_TEMPLATE));
  for (const t of tensors) writer.addTensor(t.name, t.dims, t.type);

  const totalBytes = writer.fileBytes();
  const temp = `${options.out}.partial-${process.pid}`;
  await writer.open(temp);
  try {
    const chunkElements = 1 << 20;
    let values = new Float32Array(0);
    let encoded = new Uint8Array(0);
    for (const t of tensors) {
      const prng = new Prng(`baton-random-model:${options.seed}:${t.name}`);
      const rowLength = t.dims[0]!;
      const rows = t.dims.slice(1).reduce((a, b) => a * b, 1);
      const rowsPerChunk = Math.max(1, Math.floor(chunkElements / rowLength));
      for (let row = 0; row < rows; row += rowsPerChunk) {
        const n = Math.min(rowsPerChunk, rows - row) * rowLength;
        if (values.length < n) values = new Float32Array(n);
        const chunk = values.subarray(0, n);
        prng.fillUniform(chunk, t.std, t.center);
        const bytes = quantizedBytes(t.type, n);
        if (encoded.length < bytes) encoded = new Uint8Array(bytes);
        quantize(t.type, chunk, encoded);
        await writer.writeTensorData(encoded.subarray(0, bytes));
        onProgress?.({ bytesWritten: writer.bytesWritten, totalBytes, tensor: t.name });
      }
    }
    await writer.close();
    await rename(temp, options.out);
  } catch (error) {
    await writer.abort();
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  const tensorTypes: Record<string, string> = {};
  for (const t of tensors) tensorTypes[t.name] = GGML_TYPE_LAYOUT[t.type]!.name;
  return { path: options.out, fileBytes: totalBytes, tensorCount: tensors.length, vocabSize, tensorTypes };
}
