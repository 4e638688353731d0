// The model manifest (libs/contracts ModelManifest) computed from a GGUF header: per-layer weight
// bytes from the blk.N.* tensor infos, embedding and head bytes, KV bytes per token by KV dtype.
import { basename } from 'node:path';
import type { KvDType, ModelManifest } from '@baton/contracts';
import { readGguf, type GgufFile } from './reader.js';
import { LLAMA_FILE_TYPE_NAMES } from './types.js';
import { GgufError, metaArrayLength, metaNumber, metaNumberOrArray, metaString } from './values.js';

/** Architectures whose layer layout Baton's engine runs. Others are still described. */
export const SUPPORTED_ARCHS: readonly string[] = ['llama', 'qwen2', 'qwen3'];

/** More layers than any real model has (the largest have a few hundred): a corrupt header. */
const MAX_LAYERS = 65536;

/** Bytes of one KV row of `elements` values in a KV dtype (q8_0: 34 bytes per 32 values). */
export function kvRowBytes(dtype: KvDType, elements: number): number {
  switch (dtype) {
    case 'f32': return elements * 4;
    case 'f16': return elements * 2;
    case 'q8_0': return Math.ceil(elements / 32) * 34;
  }
}

function maxOf(value: number | number[] | undefined): number | undefined {
  if (Array.isArray(value)) return value.length > 0 ? Math.max(...value) : undefined;
  return value;
}

function perLayer(value: number | number[] | undefined, layer: number, fallback: number): number {
  if (Array.isArray(value)) return value[layer] ?? fallback;
  return value ?? fallback;
}

/** Computes the manifest from an already-read header. */
export function manifestFromGguf(file: GgufFile): ModelManifest {
  const m = file.metadata;
  const arch = metaString(m, 'general.architecture');
  if (!arch) throw new GgufError(`${file.path}: general.architecture is missing, so this is not a model file llama.cpp or Baton can run`);
  // Architectures Baton runs must have every field; others are described with what they have
  // (a missing count reads as 0) so `baton model inspect` still reports them.
  const strict = SUPPORTED_ARCHS.includes(arch);
  const need = (key: string): number => {
    const v = maxOf(metaNumberOrArray(m, `${arch}.${key}`));
    if (v === undefined || v <= 0) {
      if (strict) throw new GgufError(`${file.path}: ${arch}.${key} is ${v === undefined ? 'missing from the metadata' : v}; a ${arch} model needs it`);
      return 0;
    }
    return v;
  };
  const layers = need('block_count');
  if (layers > MAX_LAYERS) throw new GgufError(`${file.path}: ${arch}.block_count is ${layers}; no model has more than ${MAX_LAYERS} layers, so the file is corrupt`);
  const embeddingLength = need('embedding_length');
  const headCountRaw = metaNumberOrArray(m, `${arch}.attention.head_count`);
  const headCount = need('attention.head_count');
  const headCountKvRaw = metaNumberOrArray(m, `${arch}.attention.head_count_kv`) ?? headCountRaw;
  const headCountKv = maxOf(headCountKvRaw) ?? headCount;
  const feedForwardLength = strict ? need('feed_forward_length') : (maxOf(metaNumberOrArray(m, `${arch}.feed_forward_length`)) ?? 0);
  const keyLength = metaNumber(m, `${arch}.attention.key_length`) ?? (headCount > 0 ? Math.floor(embeddingLength / headCount) : 0);
  const valueLength = metaNumber(m, `${arch}.attention.value_length`) ?? keyLength;
  const contextLength = metaNumber(m, `${arch}.context_length`) ?? 0;

  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const tokenEmbd = byName.get('token_embd.weight');
  const vocabSize = metaNumber(m, `${arch}.vocab_size`) ?? metaArrayLength(m, 'tokenizer.ggml.tokens') ?? tokenEmbd?.dims[1] ?? 0;

  const layerBytes = new Array<number>(layers).fill(0);
  let embedBytes = 0;
  let headBytes = 0;
  for (const t of file.tensors) {
    const blk = /^blk\.(\d+)\./.exec(t.name);
    if (blk) {
      const i = Number(blk[1]);
      if (i >= layers) throw new GgufError(`${file.path}: tensor ${t.name} belongs to layer ${i} but the model has ${layers} layers`);
      layerBytes[i]! += t.bytes;
    } else if (t.name.startsWith('token_embd')) {
      embedBytes += t.bytes;
    } else if (t.name.startsWith('output')) {
      headBytes += t.bytes;
    }
  }
  const tiedEmbeddings = !byName.has('output.weight');

  const kvBytesPerToken = { f32: 0, f16: 0, q8_0: 0 } as Record<KvDType, number>;
  for (const dtype of ['f32', 'f16', 'q8_0'] as KvDType[]) {
    let total = 0;
    for (let i = 0; i < layers; i++) {
      const kvHeads = perLayer(headCountKvRaw, i, headCountKv);
      total += kvRowBytes(dtype, (kvHeads ?? 0) * keyLength) + kvRowBytes(dtype, (kvHeads ?? 0) * valueLength);
    }
    kvBytesPerToken[dtype] = total;
  }

  const fileTypeNumber = metaNumber(m, 'general.file_type');
  const fileType = fileTypeNumber === undefined ? dominantType(file) : (LLAMA_FILE_TYPE_NAMES[fileTypeNumber] ?? `FILE_TYPE_${fileTypeNumber}`);
  return {
    name: metaString(m, 'general.name') || basename(file.path),
    arch,
    fileType,
    layers,
    embeddingLength,
    feedForwardLength,
    headCount,
    headCountKv,
    headDim: keyLength,
    contextLength,
    vocabSize,
    fileBytes: file.fileBytes,
    layerBytes,
    embedBytes,
    headBytes,
    tiedEmbeddings,
    kvBytesPerToken,
    activationBytesPerToken: embeddingLength * 4,
  };
}

/** The type holding the most bytes, for files without general.file_type. */
function dominantType(file: GgufFile): string {
  const bytes = new Map<string, number>();
  for (const t of file.tensors) bytes.set(t.typeName, (bytes.get(t.typeName) ?? 0) + t.bytes);
  let best = 'UNKNOWN';
  let most = -1;
  for (const [name, n] of bytes) if (n > most) [best, most] = [name, n];
  return best;
}

/** Reads a GGUF file's header and computes its ModelManifest. */
export async function readModelManifest(path: string): Promise<ModelManifest> {
  return manifestFromGguf(await readGguf(path));
}
