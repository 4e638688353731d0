import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { manifestFromGguf, readModelManifest } from './manifest.js';
import { dequantize } from './quant.js';
import { writeRandomModel, type RandomModelOptions } from './random-model.js';
import { parseGguf, readGguf, readTensorBytes } from './reader.js';
import { buildBpeVocab } from './tokenizer.js';
import { GgmlType } from './types.js';
import { arr, GgufError, metaNumber, metaString, str, u32 } from './values.js';
import { GgufWriter } from './writer.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-random-model-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const small = (out: string, extra: Partial<RandomModelOptions> = {}): RandomModelOptions => ({
  out: join(dir, out), arch: 'llama', dim: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 96, type: 'q8_0', context: 256, seed: 7, ...extra,
});
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('writeRandomModel', () => {
  it('is deterministic per seed', async () => {
    await writeRandomModel(small('a.gguf'));
    await writeRandomModel(small('b.gguf'));
    await writeRandomModel(small('c.gguf', { seed: 8 }));
    expect(sha(join(dir, 'a.gguf'))).toBe(sha(join(dir, 'b.gguf')));
    expect(sha(join(dir, 'a.gguf'))).not.toBe(sha(join(dir, 'c.gguf')));
    expect(statSync(join(dir, 'a.gguf')).size).toBe(statSync(join(dir, 'c.gguf')).size);
  });

  it('writes the tensors and metadata of each architecture', async () => {
    for (const arch of ['llama', 'qwen2', 'qwen3'] as const) {
      const out = `${arch}.gguf`;
      const result = await writeRandomModel(small(out, { arch, type: 'f32', headDim: arch === 'qwen3' ? 32 : undefined }));
      const file = await readGguf(result.path);
      const names = file.tensors.map((t) => t.name);
      expect(names).toContain('token_embd.weight');
      expect(names).toContain('output.weight');
      expect(names).toContain('blk.1.ffn_down.weight');
      expect(names.includes('blk.0.attn_q.bias')).toBe(arch === 'qwen2');
      expect(names.includes('blk.0.attn_k_norm.weight')).toBe(arch === 'qwen3');
      expect(metaString(file.metadata, 'general.architecture')).toBe(arch);
      expect(metaNumber(file.metadata, `${arch}.feed_forward_length`)).toBe(96);
      expect(metaNumber(file.metadata, `${arch}.attention.head_count_kv`)).toBe(2);
      if (arch === 'qwen3') expect(metaNumber(file.metadata, 'qwen3.attention.key_length')).toBe(32);
      const q = file.tensors.find((t) => t.name === 'blk.0.attn_q.weight')!;
      expect(q.dims).toEqual([64, 4 * (arch === 'qwen3' ? 32 : 16)]);
      expect(metaString(file.metadata, 'tokenizer.chat_template')).toContain('<|im_start|>');
    }
  });

  it('keeps norms F32 and uses Q4_K_M-style mixed types for q4_k', async () => {
    const result = await writeRandomModel(small('q4k.gguf', { dim: 256, ffn: 512, heads: 8, kvHeads: 4, layers: 8, type: 'q4_k' }));
    const t = result.tensorTypes;
    expect(t['blk.0.attn_norm.weight']).toBe('F32');
    expect(t['blk.3.attn_q.weight']).toBe('Q4_K');
    expect(t['output.weight']).toBe('Q6_K');
    expect(t['blk.0.attn_v.weight']).toBe('Q6_K');
    expect(t['blk.1.ffn_down.weight']).toBe('Q4_K');
    expect(t['blk.3.ffn_down.weight']).toBe('Q6_K');
  });

  it('writes values with the planned distribution (norms near 1, projections ~1/sqrt(fan-in), Q/K twice that)', async () => {
    const result = await writeRandomModel(small('f32.gguf', { type: 'f32' }));
    const file = await readGguf(result.path);
    const values = async (name: string) => {
      const t = file.tensors.find((x) => x.name === name)!;
      return dequantize(GgmlType.F32, await readTensorBytes(file, name), t.elements);
    };
    const norm = await values('blk.0.attn_norm.weight');
    expect(Math.min(...norm)).toBeGreaterThan(0.8);
    expect(Math.max(...norm)).toBeLessThan(1.2);
    const rms = (x: Float32Array) => Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length);
    // dim 64: unit gain is 1/8; Q and K get gain 2.
    const v = rms(await values('blk.0.attn_v.weight'));
    expect(v).toBeGreaterThan(0.9 / 8);
    expect(v).toBeLessThan(1.1 / 8);
    const q = rms(await values('blk.0.attn_q.weight'));
    expect(q).toBeGreaterThan(1.8 / 8);
    expect(q).toBeLessThan(2.2 / 8);
  });

  it('refuses shapes the type cannot store and bad options, naming them', async () => {
    await expect(writeRandomModel(small('bad.gguf', { type: 'q4_k' }))).rejects.toThrow(/multiple of 256/);
    await expect(writeRandomModel(small('bad.gguf', { heads: 3 }))).rejects.toThrow(/not divisible by heads 3/);
    await expect(writeRandomModel(small('bad.gguf', { kvHeads: 3 }))).rejects.toThrow(/multiple of kvHeads/);
    await expect(writeRandomModel(small('bad.gguf', { layers: 0 }))).rejects.toThrow(GgufError);
    await expect(writeRandomModel(small('bad.gguf', { vocab: 100 }))).rejects.toThrow(/at least 259/);
  });

  it('pads the vocabulary with reserved tokens when asked for more', async () => {
    const result = await writeRandomModel(small('vocab.gguf', { vocab: 2000, tiedEmbeddings: true }));
    expect(result.vocabSize).toBe(2000);
    const m = await readModelManifest(result.path);
    expect(m.vocabSize).toBe(2000);
    expect(m.tiedEmbeddings).toBe(true);
  });
});

describe('BPE vocabulary', () => {
  it('has the byte symbols, ~500 learned merges whose parts are tokens, and specials', () => {
    const v = buildBpeVocab();
    expect(v.tokens.length).toBe(256 + 500 + 3);
    expect(new Set(v.tokens).size).toBe(v.tokens.length);
    expect(v.tokens[32]).toBe('Ġ');
    expect(v.tokens[10]).toBe('Ċ');
    const known = new Set(v.tokens);
    for (const merge of v.merges) {
      const [a, b] = merge.split(' ');
      expect(known.has(a!) && known.has(b!) && known.has(a! + b!), merge).toBe(true);
    }
    expect(v.tokens).toContain('Ġthe');
    expect(v.tokens[v.eosId]).toBe('<|im_end|>');
    expect(v.tokens[v.bosId]).toBe('<|endoftext|>');
    expect(buildBpeVocab()).toEqual(v);
  });
});

describe('readModelManifest', () => {
  const headerOnly = async (name: string, build: (w: GgufWriter) => void) => {
    const w = new GgufWriter();
    build(w);
    const path = join(dir, name);
    await w.open(path);
    await w.close();
    return path;
  };

  it('describes architectures Baton does not run, and refuses supported ones missing a field', async () => {
    const other = await headerOnly('mamba.gguf', (w) => w.set('general.architecture', str('mamba')).set('mamba.block_count', u32(3)).set('mamba.embedding_length', u32(128)));
    const m = await readModelManifest(other);
    expect(m).toMatchObject({ arch: 'mamba', layers: 3, embeddingLength: 128, headCount: 0, layerBytes: [0, 0, 0], name: 'mamba.gguf' });
    const broken = await headerOnly('llama-no-ffn.gguf', (w) =>
      w.set('general.architecture', str('llama')).set('llama.block_count', u32(1)).set('llama.embedding_length', u32(64)).set('llama.attention.head_count', u32(4)));
    await expect(readModelManifest(broken)).rejects.toThrow(/llama.feed_forward_length is missing/);
    const huge = await headerOnly('llama-huge.gguf', (w) =>
      w.set('general.architecture', str('llama')).set('llama.block_count', u32(0x7fffffff)).set('llama.embedding_length', u32(64)).set('llama.attention.head_count', u32(4)).set('llama.feed_forward_length', u32(4)));
    await expect(readModelManifest(huge)).rejects.toThrow(/block_count is 2147483647; no model has more than 65536 layers/);
    const none = await headerOnly('no-arch.gguf', () => undefined);
    await expect(readModelManifest(none)).rejects.toThrow(/general.architecture is missing/);
  });

  it('gives a manifest or a GgufError, nothing else, for randomly corrupted headers', async () => {
    const result = await writeRandomModel(small('fuzz.gguf', { arch: 'qwen3', type: 'q8_0', layers: 2 }));
    const bytes = readFileSync(result.path);
    const headerEnd = parseGguf(bytes).dataOffset;
    let seed = 99;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
    let described = 0;
    for (let i = 0; i < 1500; i++) {
      const copy = Buffer.from(bytes);
      // Corrupt the metadata values and tensor infos (not the long token list in between).
      const at = rand() < 0.5 ? Math.floor(rand() * 1200) : headerEnd - 1 - Math.floor(rand() * 2000);
      copy[at] = Math.floor(rand() * 256);
      try {
        manifestFromGguf(parseGguf(copy, 'fuzz.gguf'));
        described++;
      } catch (error) {
        if (!(error instanceof GgufError)) throw new Error(`byte ${at} → ${copy[at]}: ${(error as Error).stack}`);
      }
    }
    expect(described).toBeGreaterThan(100);
  });

  it('reads per-layer KV head counts (arrays) and an Ollama-style file name without extension', async () => {
    const path = await headerOnly('sha256-0123abcd', (w) =>
      w
        .set('general.architecture', str('llama'))
        .set('llama.block_count', u32(3))
        .set('llama.embedding_length', u32(64))
        .set('llama.feed_forward_length', u32(128))
        .set('llama.attention.head_count', u32(4))
        .set('llama.attention.head_count_kv', arr('int32', [4, 2, 1])));
    const m = await readModelManifest(path);
    expect(m.headCountKv).toBe(4);
    // (4 + 2 + 1) KV heads × 16 dims × (K + V) = 224 elements per token.
    expect(m.kvBytesPerToken.f32).toBe(224 * 4);
    expect(m.name).toBe('sha256-0123abcd');
  });

  it('computes every field, checked by hand on a small qwen2 F16 model', async () => {
    const result = await writeRandomModel(small('manifest.gguf', { arch: 'qwen2', type: 'f16' }));
    const m = await readModelManifest(result.path);
    // Per layer (dim 64, 4 heads × 16, 2 KV heads → kv dim 32, ffn 96):
    //   norms 2 × 64 × 4 = 512; q, o 2 × 64 × 64 × 2 = 16384; k, v 2 × 64 × 32 × 2 = 8192;
    //   biases (64 + 32 + 32) × 4 = 512; gate, up, down 3 × 64 × 96 × 2 = 36864 → 62464.
    const perLayer = 512 + 16384 + 8192 + 512 + 36864;
    expect(m).toEqual({
      name: 'baton-random-qwen2-f16',
      arch: 'qwen2',
      fileType: 'MOSTLY_F16',
      layers: 2,
      embeddingLength: 64,
      feedForwardLength: 96,
      headCount: 4,
      headCountKv: 2,
      headDim: 16,
      contextLength: 256,
      vocabSize: 759,
      fileBytes: statSync(result.path).size,
      layerBytes: [perLayer, perLayer],
      embedBytes: 64 * 759 * 2,
      headBytes: 64 * 4 + 64 * 759 * 2,
      tiedEmbeddings: false,
      // layers × (K + V) × kvHeads × headDim elements: 2 × 2 × 32 = 128 elements per token.
      kvBytesPerToken: { f32: 128 * 4, f16: 128 * 2, q8_0: 2 * 2 * 34 },
      activationBytesPerToken: 256,
    });
  });
});
