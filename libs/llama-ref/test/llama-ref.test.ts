// llama.cpp (through @baton/llama-ref) loads every architecture × type that `baton model make`
// writes, decodes our quantized blocks as we meant them, and tokenizes with our vocabulary.
import { open as openFile, readFile } from 'node:fs/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBpeVocab, byteToUnicode, GgufWriter, readGguf, writeRandomModel, type RandomModelArch, type RandomModelType } from '@baton/gguf';
import { greedyTokens, LlamaRef, LlamaRefError, nextTokenProbabilities, tokenize } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-llama-ref-'));
let ref: LlamaRef;
afterAll(async () => {
  await ref?.close();
  rmSync(dir, { recursive: true, force: true });
});

const ARCHS: RandomModelArch[] = ['llama', 'qwen2', 'qwen3'];
const TYPES: RandomModelType[] = ['f32', 'f16', 'q8_0', 'q4_0', 'q4_k'];
const PROMPT = [10, 200, 300, 400, 500, 33, 44];
const VOCAB = 759;

const modelPath = (arch: string, type: string, seed = 3) => join(dir, `${arch}-${type}-${seed}.gguf`);

beforeAll(async () => {
  for (const arch of ARCHS) {
    for (const type of TYPES) {
      // dim and ffn 256: the smallest shape every type (Q4_K's 256-value blocks) can store.
      await writeRandomModel({ out: modelPath(arch, type), arch, type, dim: 256, layers: 2, heads: 4, kvHeads: 2, ffn: 256, context: 512, seed: 3 });
    }
  }
  await writeRandomModel({ out: modelPath('llama', 'f32', 4), arch: 'llama', type: 'f32', dim: 256, layers: 2, heads: 4, kvHeads: 2, ffn: 256, context: 512, seed: 4 });
  ref = await LlamaRef.start({ threads: 1 });
});

function totalVariation(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / 2;
}

/** Pearson correlation of the log-probabilities (the logits up to a constant). */
function logCorrelation(a: Float64Array, b: Float64Array): number {
  const la = Array.from(a, Math.log);
  const lb = Array.from(b, Math.log);
  const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length;
  const ma = mean(la);
  const mb = mean(lb);
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < la.length; i++) {
    sab += (la[i]! - ma) * (lb[i]! - mb);
    saa += (la[i]! - ma) ** 2;
    sbb += (lb[i]! - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

describe.each(ARCHS)('llama.cpp on generated %s models', (arch) => {
  const probabilities = new Map<string, Float64Array>();

  it.each(TYPES)('loads the %s model and generates tokens', async (type) => {
    const path = modelPath(arch, type);
    const tokens = await ref.greedyTokens(path, PROMPT, 8);
    expect(tokens).toHaveLength(8);
    for (const t of tokens) expect(t >= 0 && t < VOCAB).toBe(true);
    expect(new Set(tokens).size).toBeGreaterThan(1);
    const probs = await ref.nextTokenProbabilities(path, PROMPT);
    expect(probs).toHaveLength(VOCAB);
    expect(probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    expect(probs.indexOf(Math.max(...probs))).toBe(tokens[0]);
    // Requests start from an empty cache: asking again gives the same answer.
    expect(await ref.greedyTokens(path, PROMPT, 8)).toEqual(tokens);
    probabilities.set(type, probs);
  });

  it('decodes our quantized blocks as we meant them (each type stays close to the F32 model)', () => {
    // Measured (same seed and shape, 7-token prompt): log-probability correlation with the F32
    // model is 1.000 for F16, ≥ 0.999 for Q8_0, 0.93-0.97 for Q4_0 and Q4_K; a model with other
    // weights (what a misread block layout amounts to) gives ~0.02. Total variation: ~0.001 (F16),
    // 0.015-0.035 (Q8_0), up to ~0.47 (Q4_0: random weights have no outliers to spare 4 bits).
    const f32 = probabilities.get('f32')!;
    const minCorrelation: Record<string, number> = { f16: 0.9999, q8_0: 0.995, q4_0: 0.85, q4_k: 0.85 };
    for (const [type, bound] of Object.entries(minCorrelation)) {
      expect(logCorrelation(f32, probabilities.get(type)!), type).toBeGreaterThan(bound);
    }
    expect(totalVariation(f32, probabilities.get('f16')!)).toBeLessThan(0.01);
    expect(totalVariation(f32, probabilities.get('q8_0')!)).toBeLessThan(0.1);
  });
});

describe('llama-ref functions', () => {
  it('one-shot greedy and probabilities agree with a LlamaRef, and another seed gives another model', async () => {
    const path = modelPath('llama', 'f32');
    const tokens = await greedyTokens(path, PROMPT, 4);
    expect(tokens).toEqual(await ref.greedyTokens(path, PROMPT, 4));
    const probs = await nextTokenProbabilities(path, PROMPT);
    expect(probs.indexOf(Math.max(...probs))).toBe(tokens[0]);
    const other = await ref.nextTokenProbabilities(modelPath('llama', 'f32', 4), PROMPT);
    expect(totalVariation(probs, other)).toBeGreaterThan(0.8);
    expect(logCorrelation(probs, other)).toBeLessThan(0.3);
  });

  it('tokenizes with the BPE vocabulary we wrote (merges applied, specials parsed on request)', async () => {
    const path = modelPath('qwen2', 'q8_0');
    const vocab = buildBpeVocab();
    const bytes = byteToUnicode();
    const text = 'Hello world, the quick brown fox jumps over the lazy dog.';
    const ids = await tokenize(path, text);
    expect(ids.map((id) => vocab.tokens[id]).join('')).toBe(Array.from(new TextEncoder().encode(text), (b) => bytes[b]).join(''));
    expect(ids.length).toBeLessThan(text.length / 2);
    expect(await ref.tokenize(path, '<|im_start|>user', { specialTokens: true })).toEqual([vocab.imStartId, ...(await ref.tokenize(path, 'user'))]);
    expect(await ref.tokenize(path, '<|im_start|>')).not.toEqual([vocab.imStartId]);
  });

  it('refuses bad files with an error, without taking the caller down', async () => {
    const source = modelPath('llama', 'q8_0');
    const truncated = join(dir, 'truncated.gguf');
    const whole = await readFile(source);
    await (await openFile(truncated, 'w')).writeFile(whole.subarray(0, Math.floor(whole.length / 2))).then(() => undefined);
    await expect(ref.greedyTokens(truncated, PROMPT, 2)).rejects.toThrow(LlamaRefError);
    // llama.cpp refused it cleanly, so the shared child is still usable.
    expect(await ref.greedyTokens(modelPath('llama', 'f32'), PROMPT, 2)).toHaveLength(2);

    // A header without llama.feed_forward_length: llama.cpp aborts the process loading it.
    const file = await readGguf(source);
    const writer = new GgufWriter();
    for (const [key, value] of file.metadata) if (key !== 'llama.feed_forward_length') writer.set(key, value);
    for (const t of file.tensors) writer.addTensor(t.name, t.dims, t.type);
    const broken = join(dir, 'no-ffn.gguf');
    await writer.open(broken);
    for (const t of file.tensors) await writer.writeTensorData(whole.subarray(t.fileOffset, t.fileOffset + t.bytes));
    await writer.close();
    const doomed = await LlamaRef.start();
    await expect(doomed.greedyTokens(broken, PROMPT, 2)).rejects.toThrow(/llama.cpp exited .*SIGABRT|feed_forward_length/);
    await expect(doomed.greedyTokens(modelPath('llama', 'f32'), PROMPT, 2)).rejects.toThrow(/exited/);
    await doomed.close();
  });

  it('loads qwen3 with a head dim other than dim / heads, and tied embeddings', async () => {
    const qwen3 = join(dir, 'qwen3-wide-heads.gguf');
    await writeRandomModel({ out: qwen3, arch: 'qwen3', type: 'q8_0', dim: 256, layers: 2, heads: 4, kvHeads: 2, headDim: 96, ffn: 256, context: 512, seed: 5 });
    expect(await ref.greedyTokens(qwen3, PROMPT, 4)).toHaveLength(4);
    const tied = join(dir, 'tied.gguf');
    await writeRandomModel({ out: tied, arch: 'llama', type: 'f16', dim: 256, layers: 2, heads: 4, kvHeads: 2, ffn: 256, context: 512, seed: 5, tiedEmbeddings: true });
    expect((await readGguf(tied)).tensors.some((t) => t.name === 'output.weight')).toBe(false);
    expect(await ref.greedyTokens(tied, PROMPT, 4)).toHaveLength(4);
  });

  it('benchmarks prefill and decode (rates only, no timing assertion)', async () => {
    const result = await ref.benchmark(modelPath('llama', 'q8_0'), { promptTokens: 64, decodeTokens: 8 });
    expect(result.threads).toBe(1);
    for (const rate of [result.prefillTokensPerSec, result.decodeTokensPerSec]) expect(Number.isFinite(rate) && rate > 0).toBe(true);
    await expect(ref.benchmark(modelPath('llama', 'q8_0'), { decodeTokens: 0 })).rejects.toThrow(/decodeTokens/);
  });

  it('rejects bad requests before sending them', async () => {
    await expect(greedyTokens(modelPath('llama', 'f32'), [], 2)).rejects.toThrow(/at least one token/);
    await expect(greedyTokens(modelPath('llama', 'f32'), [1.5], 2)).rejects.toThrow(/non-negative integers/);
  });
});
