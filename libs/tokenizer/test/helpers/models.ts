// Small vocab-only GGUF models for comparing against llama.cpp: the BPE vocabulary Baton's
// generated models use (from @baton/gguf) under several pre-tokenizers, and a SentencePiece
// ("llama") vocabulary built here with byte fallback, scores and special tokens.
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBpeVocab, CHATML_TEMPLATE } from '@baton/gguf';
import { writeGgufMetadata, type GgufValue } from './gguf-meta.js';

export const MODEL_DIR = join(tmpdir(), `baton-tokenizer-models-${process.pid}`);

// llama.cpp reads these hyper-parameters even when it loads only the vocabulary.
function archKeys(n: number): Record<string, GgufValue> {
  return {
    'general.architecture': { type: 'str', value: 'llama' },
    'general.name': { type: 'str', value: 'baton-tokenizer-test' },
    'llama.block_count': { type: 'u32', value: 1 },
    'llama.context_length': { type: 'u32', value: 256 },
    'llama.embedding_length': { type: 'u32', value: 64 },
    'llama.feed_forward_length': { type: 'u32', value: 128 },
    'llama.attention.head_count': { type: 'u32', value: 2 },
    'llama.attention.head_count_kv': { type: 'u32', value: 2 },
    'llama.attention.layer_norm_rms_epsilon': { type: 'f32', value: 1e-5 },
    'llama.rope.dimension_count': { type: 'u32', value: 32 },
    'llama.vocab_size': { type: 'u32', value: n },
  };
}

/** Baton's generated-model BPE vocabulary with the given tokenizer.ggml.pre. */
export function writeBpeModel(pre: string, extra: Record<string, GgufValue> = {}): string {
  mkdirSync(MODEL_DIR, { recursive: true });
  const v = buildBpeVocab();
  const path = join(MODEL_DIR, `bpe-${pre}.gguf`);
  writeGgufMetadata(path, {
    ...archKeys(v.tokens.length),
    'tokenizer.ggml.model': { type: 'str', value: 'gpt2' },
    'tokenizer.ggml.pre': { type: 'str', value: pre },
    'tokenizer.ggml.tokens': { type: 'str[]', value: v.tokens },
    'tokenizer.ggml.token_type': { type: 'i32[]', value: v.tokenTypes },
    'tokenizer.ggml.merges': { type: 'str[]', value: v.merges },
    'tokenizer.ggml.bos_token_id': { type: 'u32', value: v.bosId },
    'tokenizer.ggml.eos_token_id': { type: 'u32', value: v.eosId },
    'tokenizer.chat_template': { type: 'str', value: CHATML_TEMPLATE },
    ...extra,
  });
  return path;
}

const SPM_TEXT = `The quick brown fox jumps over the lazy dog. Hello world! Hello World? It's a relay: the baton
passes from hand to hand, and the team is as fast as its slowest hand-off. I'm here; we'll see; they're done.
Numbers 0 1 2 3 4 5 6 7 8 9 10 42 100 1234. Café naïve Straße. 日本語のテキスト。你好世界。 Привет мир.
function add(a, b) { return a + b; }   indented    text\twith\ttabs`;

/** A SentencePiece-style vocabulary learned from a small text (scores from merge order). */
export function writeSpmModel(name: string, options: { addSpacePrefix?: boolean; addBos?: boolean } = {}): string {
  mkdirSync(MODEL_DIR, { recursive: true });
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3];
  const scores = [0, 0, 0];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6);
    scores.push(0);
  }
  // control and user-defined tokens
  for (const [t, ty] of [['<|im_start|>', 3], ['<|im_end|>', 3], ['<tool>', 4]] as const) {
    tokens.push(t);
    types.push(ty);
    scores.push(0);
  }
  const words = SPM_TEXT.split(/(?= )|\n/).map((w) => Array.from(w.replaceAll(' ', '\u2581')));
  const chars = [...new Set(words.flat())].sort();
  const known = new Set(tokens);
  let score = -1;
  const add = (t: string, s: number) => {
    if (known.has(t)) return;
    known.add(t);
    tokens.push(t);
    types.push(1);
    scores.push(s);
  };
  // learned merges: most frequent adjacent pair first; every 7th merge shares the previous score (ties)
  for (let m = 0; m < 400; m++) {
    const pairs = new Map<string, number>();
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) {
      const k = `${w[i]}\u0000${w[i + 1]}`;
      pairs.set(k, (pairs.get(k) ?? 0) + 1);
    }
    let best: string | undefined;
    let bestN = 0;
    for (const [k, n] of pairs) if (n > bestN || (n === bestN && best !== undefined && k < best)) [best, bestN] = [k, n];
    if (!best) break;
    const [l, r] = best.split('\u0000') as [string, string];
    if (m % 7 !== 0) score -= 1;
    add(l + r, score);
    for (const w of words) for (let i = 0; i + 1 < w.length; i++) if (w[i] === l && w[i + 1] === r) w.splice(i, 2, l + r);
  }
  for (const c of chars) add(c, -1000 - chars.indexOf(c));
  // a few pieces that only exist as whole tokens, so merges must go through them
  add('\u2581\u2581', -5);
  add('\u2581\u2581\u2581\u2581', -6);
  const path = join(MODEL_DIR, `spm-${name}.gguf`);
  const kv: Record<string, GgufValue> = {
    ...archKeys(tokens.length),
    'tokenizer.ggml.model': { type: 'str', value: 'llama' },
    'tokenizer.ggml.pre': { type: 'str', value: 'default' },
    'tokenizer.ggml.tokens': { type: 'str[]', value: tokens },
    'tokenizer.ggml.scores': { type: 'f32[]', value: scores },
    'tokenizer.ggml.token_type': { type: 'i32[]', value: types },
    'tokenizer.ggml.bos_token_id': { type: 'u32', value: 1 },
    'tokenizer.ggml.eos_token_id': { type: 'u32', value: 2 },
    'tokenizer.ggml.unknown_token_id': { type: 'u32', value: 0 },
  };
  if (options.addSpacePrefix !== undefined) kv['tokenizer.ggml.add_space_prefix'] = { type: 'bool', value: options.addSpacePrefix };
  if (options.addBos !== undefined) kv['tokenizer.ggml.add_bos_token'] = { type: 'bool', value: options.addBos };
  writeGgufMetadata(path, kv);
  return path;
}
