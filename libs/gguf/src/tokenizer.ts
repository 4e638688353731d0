// A byte-level BPE vocabulary (GPT-2 style) for the random-weight models: the 256 byte symbols,
// merges learned deterministically from a small built-in English text, and special tokens.
// llama.cpp loads it as tokenizer.ggml.model = "gpt2" with the "gpt-2" pre-tokenizer.

/** GPT-2's byte → printable unicode character map (bytes_to_unicode). */
export function byteToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const map: string[] = new Array(256);
  for (const b of printable) map[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (map[b] === undefined) map[b] = String.fromCodePoint(256 + n++);
  }
  return map;
}

/** GPT-2's pre-tokenizer split (what llama.cpp's "gpt-2" pre type applies). */
export const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

export const TRAINING_TEXT = `
The quick brown fox jumps over the lazy dog. A relay race is run by a team: each runner carries
the baton for one part of the track and hands it to the next, and the team is only as fast as its
slowest hand-off. Large language models are run the same way across several ordinary machines.
Each machine holds a slice of the layers and the cache of keys and values for those layers, and
every token travels through the slices in order. The first machine turns token ids into vectors,
the middle ones transform the hidden states, and the last one turns the final state into a
probability for every word in the vocabulary and picks the next token.

Hello! How are you today? I am fine, thank you. What would you like to talk about? Tell me a
story about a small town by the sea, where the people fish in the morning and sing in the evening.
Once upon a time there was a little girl who lived with her grandmother in a house near the forest.
She liked to read books, to draw pictures of birds and trees, and to ask questions about the world.
Why is the sky blue? Why do the leaves fall in autumn? Where does the wind come from?

Numbers: 0 1 2 3 4 5 6 7 8 9 10 12 16 32 64 100 128 256 512 1000 1024 2048 4096 2025 2026.
Code: function add(a, b) { return a + b; } const x = [1, 2, 3].map((v) => v * 2); if (x) print(x);
The system prompt says: you are a helpful assistant. The user asks a question and the assistant
answers it clearly, with short sentences and simple words. Thank you for your help, and have a
good day. The weather is nice and warm, the children are playing in the park, and the dog is
running after the ball. We will meet again tomorrow at the station at nine in the morning.
`;

export const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;

/** ChatML, as Qwen models use it. */
export const CHATML_TEMPLATE =
  "{%- for message in messages -%}" +
  "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' -}}" +
  "{%- endfor -%}" +
  "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}";

export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface BpeVocab {
  tokens: string[];
  tokenTypes: number[];
  merges: string[];
  bosId: number;
  eosId: number;
  padId: number;
  imStartId: number;
  imEndId: number;
}

/** How many tokens the default vocabulary has (256 bytes + learned merges + specials). */
export const DEFAULT_MERGES = 500;

/**
 * Learns up to `mergeTarget` new tokens from the training text (deterministic: the most frequent
 * pair wins, ties go to the smaller pair string), then appends the special tokens, then, if
 * `vocabSize` asks for more tokens than were learned, reserved control tokens up to that size.
 */
export function buildBpeVocab(options: { vocabSize?: number } = {}): BpeVocab {
  const bytes = byteToUnicode();
  const tokens = [...bytes];
  const tokenTypes: number[] = tokens.map(() => TOKEN_TYPE.NORMAL);
  const minimum = 256 + SPECIAL_TOKENS.length;
  if (options.vocabSize !== undefined && (!Number.isInteger(options.vocabSize) || options.vocabSize < minimum)) {
    throw new RangeError(`vocabulary size must be an integer of at least ${minimum} (256 byte tokens + ${SPECIAL_TOKENS.length} special tokens), got ${options.vocabSize}`);
  }
  const learnTarget = options.vocabSize !== undefined ? options.vocabSize - minimum : DEFAULT_MERGES;

  // Words (as byte-symbol sequences) and their counts.
  const counts = new Map<string, number>();
  const encoder = new TextEncoder();
  for (const match of TRAINING_TEXT.matchAll(GPT2_SPLIT)) {
    const word = Array.from(encoder.encode(match[0]), (b) => bytes[b]!).join('\u0000');
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  const words = [...counts.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([w, n]) => ({ symbols: w.split('\u0000'), count: n }));

  const known = new Set(tokens);
  const merges: string[] = [];
  let learned = 0;
  while (learned < learnTarget) {
    const pairs = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + count);
      }
    }
    let best: string | undefined;
    let bestCount = 0;
    for (const [key, n] of pairs) {
      if (n > bestCount || (n === bestCount && best !== undefined && key < best)) {
        best = key;
        bestCount = n;
      }
    }
    if (best === undefined) break;
    const [left, right] = best.split(' ') as [string, string];
    const merged = left + right;
    merges.push(best);
    for (const word of words) {
      const s = word.symbols;
      const out: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === left && s[i + 1] === right) {
          out.push(merged);
          i++;
        } else {
          out.push(s[i]!);
        }
      }
      word.symbols = out;
    }
    if (!known.has(merged)) {
      known.add(merged);
      tokens.push(merged);
      tokenTypes.push(TOKEN_TYPE.NORMAL);
      learned++;
    }
  }
  const specialBase = tokens.length;
  for (const special of SPECIAL_TOKENS) {
    tokens.push(special);
    tokenTypes.push(TOKEN_TYPE.CONTROL);
  }
  if (options.vocabSize !== undefined) {
    for (let i = 0; tokens.length < options.vocabSize; i++) {
      tokens.push(`<|reserved_special_token_${i}|>`);
      tokenTypes.push(TOKEN_TYPE.CONTROL);
    }
  }
  return {
    tokens,
    tokenTypes,
    merges,
    bosId: specialBase,
    eosId: specialBase + 2,
    padId: specialBase,
    imStartId: specialBase + 1,
    imEndId: specialBase + 2,
  };
}
