// The vocab-only GGUFs shipped inside node-llama-cpp (llama.cpp's models/ggml-vocab-*.gguf) with
// llama.cpp's own reference tokenizations (.inp/.out, produced by the HF tokenizers).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Tokenizer } from '@baton/tokenizer';
import { readGgufMetadata } from './helpers/gguf-meta.js';
import { llamaCppFile, parseVocabTests } from './helpers/llama-cpp.js';

const VOCABS = ['gpt-2', 'llama-spm', 'llama-bpe', 'qwen2', 'phi-3', 'starcoder', 'mpt', 'falcon', 'refact', 'command-r', 'deepseek-coder', 'deepseek-llm', 'qwen35', 'baichuan'];

const available = llamaCppFile('models/ggml-vocab-gpt-2.gguf') !== null;

describe.skipIf(!available)('llama.cpp reference tokenizations (models/ggml-vocab-*.gguf.inp/.out)', () => {
  for (const name of VOCABS) {
    it(name, () => {
      const model = llamaCppFile(`models/ggml-vocab-${name}.gguf`);
      const inp = llamaCppFile(`models/ggml-vocab-${name}.gguf.inp`);
      const out = llamaCppFile(`models/ggml-vocab-${name}.gguf.out`);
      if (!model || !inp || !out) return;
      const tok = Tokenizer.fromGguf(readGgufMetadata(model));
      const cases = parseVocabTests(readFileSync(inp, 'utf8'), readFileSync(out, 'utf8'));
      expect(cases.length).toBeGreaterThan(10);
      const bad = cases
        .map((c) => ({ text: c.text, want: c.ids, got: tok.encode(c.text, { addSpecial: false }) }))
        .filter((c) => JSON.stringify(c.got) !== JSON.stringify(c.want));
      expect(bad).toEqual([]);
    });
  }
});
