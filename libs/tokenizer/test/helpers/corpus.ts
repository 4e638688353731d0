// A deterministic corpus of strings that stress tokenizers: ASCII, whitespace runs, digits,
// punctuation, contractions, emoji (with ZWJ and skin tones), CJK, combining marks, RTL scripts,
// special-token look-alikes and lone surrogates.

const PIECES = [
  'Hello', 'world', 'the', 'quick', 'brown', 'fox', "don't", "I'm", "we'll", "they're", "it's", "WE'VE", "'s", "'LL",
  'relay', 'baton', 'tokenizer', 'GGUF', 'llama.cpp', 'x86_64', 'foo_bar', 'camelCase', 'ALLCAPS', 'Ünïcödé', 'naïve',
  'café', 'e\u0301', 'a\u0308\u0301', 'ñ', 'Straße', 'Ελληνικά', 'русский', 'язык', 'עברית', 'العربية', 'हिन्दी', 'ภาษาไทย',
  '日本語', '中文字符', '한국어', 'ｶﾀｶﾅ', 'カタカナ', 'ひらがな', '你好，世界！', '。', '、',
  '🦙', '👍🏽', '👨‍👩‍👧‍👦', '🇺🇸', '❤️', '😀😃', '🤖', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '𠜎', '\u{1F600}',
  '0', '7', '42', '123', '1234', '12345', '3.14159', '1,000,000', '2026-11-25', '0x1F', '١٢٣', '²³', 'Ⅻ', '½',
  '.', ',', '!', '?', '...', '?!', ';', ':', '-', '--', '—', '(', ')', '[', ']', '{', '}', '<', '>', '/', '\\', '|', '@', '#',
  '$', '%', '^', '&', '*', '+', '=', '~', '`', '"', "'", '«', '»', '“', '”', '‘', '’', '•', '→', '∑', '√', '€', '£', '¥', '©',
  ' ', '  ', '   ', '    ', '\t', '\n', '\n\n', '\r\n', ' \n ', '\t\t', '\u00a0', '\u3000', '\u2009', '\u200b', '\ufeff',
  '<s>', '</s>', '<unk>', '<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|begin_of_text|>', '<|eot_id|>', '<|end|>',
  '<|user|>', '<|assistant|>', '[INST]', '<0x41>', '▁', '▁▁', 'Ġ', 'Ċ', 'system', 'user', 'assistant',
  'function add(a, b) { return a + b; }', 'if (x) {\n    return y;\n}', '    indented', '#include <stdio.h>', 'https://example.com/a?b=c',
  'user@example.com', 'C:\\Windows\\System32', '$HOME/.bashrc', '<div class="x">', '&amp;', '%20', '¿Qué?', '¡Hola!',
];

/** Mulberry32: small deterministic PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` strings: the single pieces first, then random mixes of 1-12 pieces with random glue. */
export function corpus(count: number, seed = 1): string[] {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const out: string[] = ['', ' ', 'a', 'Hello world', ' Hello world', 'Hello World!', '\n', '   leading', 'trailing   ', ...PIECES];
  const glue = ['', ' ', ' ', ' ', '\n', '  ', '\t', ''];
  while (out.length < count) {
    const n = 1 + Math.floor(rnd() * 12);
    let s = '';
    for (let i = 0; i < n; i++) s += pick(glue) + pick(PIECES);
    if (rnd() < 0.03) s += '\ud800'; // lone surrogate
    if (rnd() < 0.03) s = '\udc00' + s;
    out.push(s);
  }
  return out.slice(0, count);
}
