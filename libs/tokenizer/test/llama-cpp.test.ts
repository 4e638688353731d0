// Baton's tokenizer against llama.cpp's own (node-llama-cpp, vocab-only, in a child process):
// tokenize with and without special-token parsing, detokenize with and without special tokens,
// and incremental detokenization, on a few hundred strings per model; plus llama.cpp's reference
// tokenizations (models/ggml-vocab-*.gguf.inp/.out) for the vocab-only GGUFs node-llama-cpp ships.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readGguf, writeRandomModel } from '@baton/gguf';
import { ChatTemplate, PRE_TOKENIZERS, Tokenizer, type GgufMetadata } from '@baton/tokenizer';
import { corpus, prng } from './helpers/corpus.js';
import { readGgufMetadata } from './helpers/gguf-meta.js';
import { llamaCppFile, llamaTokenizeMany, parseVocabTests, type LlamaJob, type LlamaResult } from './helpers/llama-cpp.js';
import { MODEL_DIR, writeBpeModel, writeSpmModel } from './helpers/models.js';

const TEXTS = corpus(300, 7);

afterAll(() => rmSync(MODEL_DIR, { recursive: true, force: true }));

interface Case {
  name: string;
  texts: string[];
  path: string;
  tok: Tokenizer;
  ours: number[][];
  oursSpecial: number[][];
  lists: number[][];
  extraTexts: string[];
}

function prepare(name: string, path: string, meta: GgufMetadata = readGgufMetadata(path), extraTexts: string[] = [], texts = TEXTS): Case {
  const tok = Tokenizer.fromGguf(meta);
  const ours = texts.map((t) => tok.encode(t, { addSpecial: false }));
  const oursSpecial = texts.map((t) => tok.encode(t, { addSpecial: false, parseSpecial: true }));
  // id sequences to detokenize: our tokenizations, plus random ids (which split UTF-8 characters)
  const rnd = prng(3);
  const lists = ours.slice(0, 150);
  for (let i = 0; i < 100; i++) {
    const n = 1 + Math.floor(rnd() * 16);
    lists.push(Array.from({ length: n }, () => Math.floor(rnd() * tok.vocabSize)));
  }
  // sequences of spaces, apostrophes and punctuation, one short token each: the cases where
  // llama.cpp cleans up tokenization spaces (" ,", " 's", " ' ") and where streaming must wait
  const bits = [' ', ' ', "'", 's', 'm', 're', 've', 't', 'll', '?', '!', '.', ',', 'a', '  '];
  for (let i = 0; i < 80; i++) {
    const n = 2 + Math.floor(rnd() * 10);
    const ids: number[] = [];
    for (let k = 0; k < n; k++) ids.push(...tok.encode(bits[Math.floor(rnd() * bits.length)]!, { addSpecial: false }));
    lists.push(ids);
  }
  return { name, texts, path, tok, ours, oursSpecial, lists, extraTexts };
}

function runAll(cases: Case[]): Map<string, LlamaResult> {
  const jobs: LlamaJob[] = cases.map((c) => ({ model: c.path, texts: [...c.texts, ...c.extraTexts], detokenize: c.lists }));
  const results = llamaTokenizeMany(jobs);
  return new Map(cases.map((c, i) => [c.name, results[i]!]));
}

function compare(c: Case, ref: LlamaResult) {
  const { tok, lists } = c;
  if (ref.error) throw new Error(`llama.cpp could not load ${c.name}: ${ref.error}`);
  const diff = (a: number[][], b: number[][]) =>
    c.texts.map((text, i) => ({ text, ours: a[i], llama: b[i] })).filter((d) => JSON.stringify(d.ours) !== JSON.stringify(d.llama));
  expect(diff(c.ours, ref.tokens)).toEqual([]);
  expect(diff(c.oursSpecial, ref.tokensSpecial)).toEqual([]);

  const ddiff = (a: string[], b: string[]) => lists.map((ids, i) => ({ ids, ours: a[i], llama: b[i] })).filter((d) => d.ours !== d.llama);
  expect(ddiff(lists.map((ids) => tok.decode(ids)), ref.pieces)).toEqual([]);
  expect(ddiff(lists.map((ids) => tok.decode(ids, { special: true })), ref.piecesSpecial)).toEqual([]);

  // incremental: one id at a time gives the same text
  for (const ids of lists) {
    for (const special of [false, true]) {
      const d = tok.decoder({ special });
      let s = '';
      for (const id of ids) s += d.push(id);
      s += d.flush();
      expect(s).toBe(tok.decode(ids, { special }));
    }
  }
}

// the pre-tokenizers the issue names, then one name for every other distinct entry of the table
const NAMED = ['gpt-2', 'default', 'llama-bpe', 'qwen2', 'smollm'];
const PRES = [...NAMED];
{
  const seen = new Set(NAMED.map((n) => JSON.stringify(PRE_TOKENIZERS[n])));
  for (const [name, spec] of Object.entries(PRE_TOKENIZERS)) {
    const key = JSON.stringify(spec);
    if (!seen.has(key)) {
      seen.add(key);
      PRES.push(name);
    }
  }
}

describe('against llama.cpp on generated models', () => {
  const cases: Case[] = [];
  let refs = new Map<string, LlamaResult>();
  let prompt = '';

  beforeAll(async () => {
    // the named pre-tokenizers on the full corpus, the rest of the table on its first 120 strings
    for (const pre of PRES) cases.push(prepare(`bpe-${pre}`, writeBpeModel(pre), undefined, [], NAMED.includes(pre) ? TEXTS : TEXTS.slice(0, 120)));
    cases.push(prepare('spm', writeSpmModel('default')));
    cases.push(prepare('spm-noprefix', writeSpmModel('noprefix', { addSpacePrefix: false })));
    // the demo model's kind of file: random weights written by @baton/gguf, read with its reader
    mkdirSync(MODEL_DIR, { recursive: true });
    const out = join(MODEL_DIR, 'random-llama.gguf');
    await writeRandomModel({ out, arch: 'llama', dim: 32, layers: 1, heads: 2, kvHeads: 1, ffn: 64, type: 'f32', context: 128, seed: 1 });
    const meta = (await readGguf(out)).metadata;
    prompt = ChatTemplate.fromGguf(meta).render([
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'Tell me a story about the sea 🌊.' },
    ]);
    cases.push(prepare('random-model', out, meta, [prompt]));
    refs = runAll(cases);
  }, 300_000);

  for (const name of [...PRES.map((p) => `bpe-${p}`), 'spm', 'spm-noprefix', 'random-model']) {
    it(name, () => {
      const c = cases.find((x) => x.name === name)!;
      compare(c, refs.get(name)!);
    });
  }

  it("renders the random model's chat template and tokenizes the prompt as llama.cpp does (parse_special)", () => {
    const c = cases.find((x) => x.name === 'random-model')!;
    expect(prompt).toContain('<|im_start|>assistant\n');
    const ids = c.tok.encodePrompt(prompt);
    expect(ids).toEqual(refs.get('random-model')!.tokensSpecial[TEXTS.length]);
    expect(ids).toContain(c.tok.tokenId('<|im_start|>'));
  });
});

const shipped = llamaCppFile('models/ggml-vocab-gpt-2.gguf') !== null;

describe.skipIf(!shipped)('the vocab-only GGUFs node-llama-cpp ships (llama.cpp models/ggml-vocab-*.gguf)', () => {
  const LIVE = ['gpt-2', 'llama-spm', 'llama-bpe', 'qwen2', 'phi-3'];
  const REFERENCE = [...LIVE, 'starcoder', 'mpt', 'falcon', 'refact', 'command-r', 'deepseek-coder', 'deepseek-llm', 'qwen35'];
  const cases: Case[] = [];
  let refs = new Map<string, LlamaResult>();

  let qwenPrompt = '';

  beforeAll(() => {
    for (const name of LIVE) {
      const path = llamaCppFile(`models/ggml-vocab-${name}.gguf`);
      if (!path) throw new Error(`models/ggml-vocab-${name}.gguf could not be extracted`);
      const meta = readGgufMetadata(path);
      if (name === 'qwen2') {
        // Qwen2's real chat template, as shipped in the file
        qwenPrompt = ChatTemplate.fromGguf(meta, Tokenizer.fromGguf(meta)).render([
          { role: 'user', content: 'Write a haiku about relay races. 🏃' },
          { role: 'assistant', content: 'Baton in hand—' },
          { role: 'user', content: 'Another, in 中文.' },
        ]);
      }
      cases.push(prepare(name, path, meta, name === 'qwen2' ? [qwenPrompt] : []));
    }
    refs = runAll(cases);
  }, 300_000);

  it("renders qwen2's own chat template and tokenizes the prompt as llama.cpp does", () => {
    const c = cases.find((x) => x.name === 'qwen2')!;
    expect(qwenPrompt).toMatch(/^<\|im_start\|>system\n[^]*<\|im_start\|>user\nAnother, in 中文\.<\|im_end\|>\n<\|im_start\|>assistant\n$/);
    const ids = c.tok.encodePrompt(qwenPrompt);
    expect(ids).toEqual(refs.get('qwen2')!.tokensSpecial[c.texts.length]);
    expect(ids.filter((id) => id === c.tok.tokenId('<|im_start|>'))).toHaveLength(5); // system, user, assistant, user, generation
  });

  for (const name of LIVE) it(`matches llama.cpp live: ${name}`, () => compare(cases.find((c) => c.name === name)!, refs.get(name)!));

  for (const name of REFERENCE) {
    it(`matches llama.cpp's reference tokenizations: ${name}`, () => {
      const model = llamaCppFile(`models/ggml-vocab-${name}.gguf`);
      const inp = llamaCppFile(`models/ggml-vocab-${name}.gguf.inp`);
      const out = llamaCppFile(`models/ggml-vocab-${name}.gguf.out`);
      if (!model || !inp || !out) throw new Error(`models/ggml-vocab-${name}.gguf test files could not be extracted`);
      const tok = cases.find((c) => c.name === name)?.tok ?? Tokenizer.fromGguf(readGgufMetadata(model));
      const tests = parseVocabTests(readFileSync(inp, 'utf8'), readFileSync(out, 'utf8'));
      expect(tests.length).toBeGreaterThan(10);
      const bad = tests
        .map((t) => ({ text: t.text, want: t.ids, got: tok.encode(t.text, { addSpecial: false }) }))
        .filter((t) => JSON.stringify(t.got) !== JSON.stringify(t.want));
      expect(bad).toEqual([]);
    });
  }
});
