import { describe, expect, it } from 'vitest';
import { BatonError } from '@baton/contracts';
import { Tokenizer } from './tokenizer.js';
import { TokenizerError } from './vocab.js';
import { byteToChar } from './unicode.js';

const hex = (b: number) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;

/** A tiny SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, a control token, pieces. */
function spm(extra: Record<string, unknown> = {}) {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    tokens.push(hex(b));
    types.push(6);
  }
  tokens.push('<|im_start|>');
  types.push(3);
  const pieces: [string, number][] = [
    ['\u2581', -1], ['h', -2], ['e', -3], ['l', -4], ['o', -5], ['w', -6], ['r', -7], ['d', -8],
    ['\u2581h', -9], ['\u2581he', -9.5], ['ll', -10], ['\u2581hell', -11], ['\u2581hello', -12], ['or', -13], ['\u2581w', -14], ['\u2581wor', -15], ['\u2581worl', -15.5], ['\u2581world', -16],
  ];
  const scores = tokens.map(() => 0);
  for (const [t, s] of pieces) {
    tokens.push(t);
    types.push(1);
    scores.push(s);
  }
  return Tokenizer.fromGguf({
    'tokenizer.ggml.model': 'llama',
    'tokenizer.ggml.tokens': tokens,
    'tokenizer.ggml.scores': scores,
    'tokenizer.ggml.token_type': types,
    ...extra,
  });
}

/** A tiny byte-level BPE vocabulary: 256 byte symbols, a few merges, a control token. */
function bpe(extra: Record<string, unknown> = {}) {
  const tokens: string[] = [];
  for (let b = 0; b < 256; b++) tokens.push(byteToChar(b));
  const merges = ['h e', 'l l', 'he ll', 'hell o', 'Ġ w', 'o r', 'Ġw or', 'Ġwor l', 'Ġworl d'];
  for (const m of merges) tokens.push(m.replace(' ', ''));
  tokens.push('<|endoftext|>');
  return Tokenizer.fromGguf({
    'tokenizer.ggml.model': 'gpt2',
    'tokenizer.ggml.pre': 'gpt-2',
    'tokenizer.ggml.tokens': tokens,
    'tokenizer.ggml.token_type': tokens.map((_, i) => (i === tokens.length - 1 ? 3 : 1)),
    'tokenizer.ggml.merges': merges,
    'tokenizer.ggml.bos_token_id': tokens.length - 1,
    'tokenizer.ggml.eos_token_id': tokens.length - 1,
    ...extra,
  });
}

describe('SentencePiece ("llama") tokenizer', () => {
  const tok = spm();
  const id = (t: string) => tok.tokenId(t)!;

  it('merges by score with the space prefix, and adds BOS', () => {
    expect(tok.encode('hello world')).toEqual([1, id('\u2581hello'), id('\u2581world')]);
    expect(tok.encode('hello world', { addSpecial: false })).toEqual([id('\u2581hello'), id('\u2581world')]);
  });

  it('falls back to byte tokens for unknown characters', () => {
    // é = C3 A9, 🦙 = F0 9F A6 99
    expect(tok.encode('é🦙', { addSpecial: false })).toEqual([id('\u2581'), id(hex(0xc3)), id(hex(0xa9)), id(hex(0xf0)), id(hex(0x9f)), id(hex(0xa6)), id(hex(0x99))]);
  });

  it('matches control tokens only when asked, and prefixes a space after them', () => {
    const on = tok.encode('<|im_start|>hello', { addSpecial: false, parseSpecial: true });
    expect(on).toEqual([id('<|im_start|>'), id('\u2581hello')]);
    const off = tok.encode('<|im_start|>', { addSpecial: false });
    expect(off).not.toContain(id('<|im_start|>'));
  });

  it('decodes with the leading-space rule and drops control tokens unless asked', () => {
    const ids = tok.encode('hello world');
    // as llama_detokenize: the first token (here an unrendered BOS) uses up the space strip,
    // and removing a leading BOS keeps the space too
    expect(tok.decode(ids)).toBe(' hello world');
    expect(tok.decode(ids, { removeSpecial: true })).toBe(' hello world');
    // generated text (no BOS) loses the prefix space of its first piece
    expect(tok.decode(ids.slice(1))).toBe('hello world');
    expect(tok.decode(ids, { special: true })).toBe('<s> hello world');
    expect(tok.decode(ids, { special: true, removeSpecial: true })).toBe(' hello world');
    expect(tok.decode([id('\u2581world')])).toBe('world');
  });

  it('streams multi-byte characters only once they are complete', () => {
    const d = tok.decoder();
    const got = [id('\u2581hello'), id(hex(0xf0)), id(hex(0x9f)), id(hex(0xa6)), id(hex(0x99)), id(hex(0xc3)), id(hex(0xa9))].map((x) => d.push(x));
    expect(got).toEqual(['hello', '', '', '', '🦙', '', 'é']);
    expect(d.flush()).toBe('');
  });

  it('ends an unfinished character as U+FFFD on flush', () => {
    const d = tok.decoder();
    expect(d.push(id(hex(0xe2)))).toBe('');
    expect(d.push(id(hex(0x82)))).toBe('');
    expect(d.flush()).toBe('\ufffd');
  });

  it('honours add_space_prefix = false and add_bos_token = false', () => {
    const t = spm({ 'tokenizer.ggml.add_space_prefix': false, 'tokenizer.ggml.add_bos_token': false });
    const ids = t.encode(' hello');
    expect(ids).toEqual([t.tokenId('\u2581hello')]);
    expect(t.decode(ids)).toBe(' hello');
  });

  it('encodePrompt adds BOS once', () => {
    expect(tok.encodePrompt('hello')).toEqual([1, id('\u2581hello')]);
    expect(tok.encodePrompt('<s>hello')).toEqual([1, id('\u2581hello')]);
  });
});

describe('byte-level BPE ("gpt2") tokenizer', () => {
  const tok = bpe();
  const id = (t: string) => tok.tokenId(t)!;

  it('applies merges by rank within pre-tokens', () => {
    expect(tok.encode('hello world')).toEqual([id('hello'), id('Ġworld')]);
  });

  it('parses <|endoftext|> only when parsing specials is allowed', () => {
    const eot = id('<|endoftext|>');
    expect(tok.encode('hello<|endoftext|>', { parseSpecial: true })).toEqual([id('hello'), eot]);
    expect(tok.encode('hello<|endoftext|>')).not.toContain(eot);
    expect(tok.isEog(eot)).toBe(true);
  });

  it('round-trips any text, including emoji and lone surrogates', () => {
    for (const s of ['héllo wörld 🦙 日本', ' \t\n  x', '\ud800x']) {
      expect(tok.decode(tok.encode(s))).toBe(s.replace('\ud800', '\ufffd'));
    }
  });

  it('cleans tokenization spaces for gpt-2 and streams the same text', () => {
    const ids = tok.encode("hello , world ! it 's");
    expect(tok.decode(ids)).toBe("hello, world! it's");
    const d = tok.decoder();
    const parts = ids.map((x) => d.push(x));
    expect(parts.join('') + d.flush()).toBe("hello, world! it's");
    // the space before "," was held back until the "," arrived
    expect(parts.slice(0, 2)).toEqual(['hello', '']);
  });

  it('streams exactly what decode returns, whatever spaces and apostrophes come', () => {
    // single-byte tokens over the characters the clean-up looks at, in many random orders
    const alphabet = "   '' smrevtd?,a".split('').map((c) => id(byteToChar(c.charCodeAt(0))));
    let seed = 12345;
    const rnd = () => {
      // mulberry32
      seed = (seed + 0x6d2b79f5) >>> 0;
      let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
    };
    const single = (t: string) => [...t].map((c) => id(byteToChar(c.charCodeAt(0))));
    expect(tok.decode(single("a  ' s"))).toBe("a's");
    for (let n = 0; n < 6000; n++) {
      const ids = Array.from({ length: 1 + Math.floor(rnd() * 12) }, () => alphabet[Math.floor(rnd() * alphabet.length)]!);
      const d = tok.decoder();
      const streamed = ids.map((x) => d.push(x)).join('') + d.flush();
      expect(streamed, JSON.stringify(tok.decode(ids, { special: true }))).toBe(tok.decode(ids));
    }
  });

  it('splits a multi-byte character across byte tokens and streams it whole', () => {
    const d = tok.decoder();
    const bytes = [...new TextEncoder().encode('€')].map((b) => id(byteToChar(b)));
    expect(bytes.map((b) => d.push(b))).toEqual(['', '', '€']);
  });
});

describe('bad metadata and ids', () => {
  it('refuses a file without a tokenizer', () => {
    expect(() => Tokenizer.fromGguf({})).toThrow(/tokenizer\.ggml\.model is missing/);
  });
  it('refuses tokenizer models it does not implement', () => {
    expect(() => Tokenizer.fromGguf({ 'tokenizer.ggml.model': 'bert', 'tokenizer.ggml.tokens': ['a'] })).toThrow(/unsupported tokenizer\.ggml\.model 'bert'/);
  });
  it('refuses unknown pre-tokenizers and lists the supported ones', () => {
    expect(() => bpe({ 'tokenizer.ggml.pre': 'nope' })).toThrow(/unsupported tokenizer\.ggml\.pre 'nope'; supported: .*llama-bpe.*qwen2/);
  });
  it('refuses a BPE vocabulary without merges', () => {
    expect(() => bpe({ 'tokenizer.ggml.merges': undefined })).toThrow(/needs tokenizer\.ggml\.merges/);
  });
  it('refuses wrongly typed keys', () => {
    expect(() => bpe({ 'tokenizer.ggml.tokens': 'abc' })).toThrow(/tokenizer\.ggml\.tokens should be an array/);
    expect(() => spm({ 'tokenizer.ggml.scores': [1, 2] })).toThrow(/scores has 2 entries/);
  });
  it('refuses out-of-range ids with a BatonError', () => {
    const tok = bpe();
    let err: unknown;
    try {
      tok.decode([0, 1_000_000]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TokenizerError);
    expect(err).toBeInstanceOf(BatonError);
    expect((err as Error).message).toMatch(/token id 1000000 is outside the vocabulary/);
  });
  it('accepts typed Map metadata as @baton/gguf returns it', () => {
    const plain = bpe();
    const m = new Map<string, unknown>([
      ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
      ['tokenizer.ggml.pre', { type: 'string', value: 'gpt-2' }],
      ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: plain.vocab.texts }],
      ['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: ['h e', 'l l', 'he ll', 'hell o'] }],
      ['tokenizer.ggml.bos_token_id', { type: 'uint64', value: 0n }],
    ]);
    const tok = Tokenizer.fromGguf(m);
    expect(tok.encode('hello')).toEqual([plain.tokenId('hello')]);
    expect(tok.bos).toBe(0);
  });
});
