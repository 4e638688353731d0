// Not a test: a speed comparison with llama.cpp's tokenizer, measured in the same run, printed.
// Run with: BATON_TOKENIZER_BENCH=1 npx vitest run libs/tokenizer/test/tokenize-speed.test.ts
import { describe, expect, it } from 'vitest';
import { Tokenizer } from '@baton/tokenizer';
import { corpus } from './helpers/corpus.js';
import { readGgufMetadata } from './helpers/gguf-meta.js';
import { llamaCppFile, llamaTokenizeMany } from './helpers/llama-cpp.js';

describe.runIf(process.env.BATON_TOKENIZER_BENCH)('tokenize speed against llama.cpp', () => {
  it('encodes an ~83 KB mixed text with each shipped vocabulary', () => {
    const text = corpus(2000, 11).join('\n');
    const bytes = Buffer.byteLength(text);
    const names = ['llama-spm', 'qwen2', 'llama-bpe', 'gpt-2'];
    const paths = names.map((n) => llamaCppFile(`models/ggml-vocab-${n}.gguf`));
    if (paths.some((p) => p === null)) throw new Error("could not extract llama.cpp's vocab files from node-llama-cpp");
    const REPS = 3;
    const refs = llamaTokenizeMany(paths.map((model) => ({ model: model!, texts: Array(REPS).fill(text) })));
    const rows = names.map((name, i) => {
      let t = performance.now();
      const tok = Tokenizer.fromGguf(readGgufMetadata(paths[i]!));
      const loadMs = performance.now() - t;
      const ids = tok.encode(text, { addSpecial: false }); // warm-up
      t = performance.now();
      for (let k = 0; k < REPS; k++) tok.encode(text, { addSpecial: false });
      const batonMs = (performance.now() - t) / REPS;
      expect(ids).toEqual(refs[i]!.tokens[0]);
      return { vocab: name, bytes, tokens: ids.length, batonMs: +batonMs.toFixed(1), llamaCppMs: +(refs[i]!.tokenizeMs / REPS).toFixed(1), batonVocabLoadMs: +loadMs.toFixed(0) };
    });
    console.table(rows);
  });
});
