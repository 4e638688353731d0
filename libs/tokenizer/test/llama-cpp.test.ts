// Baton's tokenizer against llama.cpp's own (node-llama-cpp, vocab-only, in a child process):
// tokenize with and without special-token parsing, detokenize with and without special tokens,
// and incremental detokenization, on a few hundred strings per model.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readGguf, writeRandomModel } from '@baton/gguf';
import { afterAll, describe, expect, it } from 'vitest';
import { ChatTemplate, Tokenizer, type GgufMetadata } from '@baton/tokenizer';
import { corpus, prng } from './helpers/corpus.js';
import { readGgufMetadata } from './helpers/gguf-meta.js';
import { llamaCppFile, llamaTokenize } from './helpers/llama-cpp.js';
import { MODEL_DIR, writeBpeModel, writeSpmModel } from './helpers/models.js';

const TEXTS = corpus(300, 7);

afterAll(() => rmSync(MODEL_DIR, { recursive: true, force: true }));

/** Id sequences to detokenize: our tokenizations, plus random ids (which split UTF-8 characters). */
function idLists(tok: Tokenizer, encoded: number[][]): number[][] {
  const rnd = prng(3);
  const out = encoded.slice(0, 150);
  for (let i = 0; i < 100; i++) {
    const n = 1 + Math.floor(rnd() * 16);
    out.push(Array.from({ length: n }, () => Math.floor(rnd() * tok.vocabSize)));
  }
  return out;
}

function compare(path: string, meta: GgufMetadata = readGgufMetadata(path)) {
  const tok = Tokenizer.fromGguf(meta);
  const ours = TEXTS.map((t) => tok.encode(t, { addSpecial: false }));
  const oursSpecial = TEXTS.map((t) => tok.encode(t, { addSpecial: false, parseSpecial: true }));
  const lists = idLists(tok, ours);
  const ref = llamaTokenize(path, TEXTS, lists);

  const diff = (a: number[][], b: number[][]) =>
    TEXTS.map((text, i) => ({ text, ours: a[i], llama: b[i] })).filter((d) => JSON.stringify(d.ours) !== JSON.stringify(d.llama));
  expect(diff(ours, ref.tokens)).toEqual([]);
  expect(diff(oursSpecial, ref.tokensSpecial)).toEqual([]);

  const dec = lists.map((ids) => tok.decode(ids));
  const decSpecial = lists.map((ids) => tok.decode(ids, { special: true }));
  const ddiff = (a: string[], b: string[]) => lists.map((ids, i) => ({ ids, ours: a[i], llama: b[i] })).filter((d) => d.ours !== d.llama);
  expect(ddiff(dec, ref.pieces)).toEqual([]);
  expect(ddiff(decSpecial, ref.piecesSpecial)).toEqual([]);

  // incremental: one id at a time gives the same text
  for (const ids of lists) {
    const d = tok.decoder({ special: true });
    let s = '';
    for (const id of ids) s += d.push(id);
    s += d.flush();
    expect(s).toBe(tok.decode(ids, { special: true }));
  }
}

const shipped = llamaCppFile('models/ggml-vocab-gpt-2.gguf') !== null;

describe('against llama.cpp on generated models', () => {
  for (const pre of ['gpt-2', 'default', 'llama-bpe', 'qwen2', 'smollm', 'starcoder']) {
    it(`BPE (Baton's generated vocabulary), pre=${pre}`, () => compare(writeBpeModel(pre)));
  }
  it("a random-weight model written by @baton/gguf (as the demo model), read with @baton/gguf's reader", async () => {
    mkdirSync(MODEL_DIR, { recursive: true });
    const out = join(MODEL_DIR, 'random-llama.gguf');
    await writeRandomModel({ out, arch: 'llama', dim: 32, layers: 1, heads: 2, kvHeads: 1, ffn: 64, type: 'f32', context: 128, seed: 1 });
    const file = await readGguf(out);
    compare(out, file.metadata);
    // its chat template renders, and the prompt tokenizes as llama.cpp does with parse_special
    const tok = Tokenizer.fromGguf(file.metadata);
    const prompt = ChatTemplate.fromGguf(file.metadata).render([
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'Tell me a story about the sea 🌊.' },
    ]);
    expect(prompt).toContain('<|im_start|>assistant\n');
    const ref = llamaTokenize(out, [prompt]);
    expect(tok.encodePrompt(prompt)).toEqual(ref.tokensSpecial[0]);
    expect(tok.encodePrompt(prompt)).toContain(tok.tokenId('<|im_start|>'));
  });
  it('SPM with byte fallback, scores and special tokens', () => compare(writeSpmModel('default')));
  it('SPM without the space prefix', () => compare(writeSpmModel('noprefix', { addSpacePrefix: false })));
});

describe.skipIf(!shipped)('against llama.cpp on the vocab-only GGUFs node-llama-cpp ships', () => {
  for (const name of ['gpt-2', 'llama-spm', 'llama-bpe', 'qwen2', 'phi-3', 'starcoder', 'deepseek-coder', 'baichuan']) {
    it(name, () => {
      const path = llamaCppFile(`models/ggml-vocab-${name}.gguf`);
      if (!path) throw new Error(`models/ggml-vocab-${name}.gguf could not be extracted`);
      compare(path);
    });
  }
});
