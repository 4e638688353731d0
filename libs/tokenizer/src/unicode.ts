// Unicode helpers matching llama.cpp's unicode.cpp: code point flags (category + whitespace),
// UTF-8 code point splitting, and GPT-2's byte <-> unicode map.

/** Code point flags, bit for bit as llama.cpp's `unicode_cpt_flags`. */
export const CptFlag = {
  UNDEFINED: 0x0001,
  NUMBER: 0x0002, // \p{N}
  LETTER: 0x0004, // \p{L}
  SEPARATOR: 0x0008, // \p{Z}
  ACCENT_MARK: 0x0010, // \p{M}
  PUNCTUATION: 0x0020, // \p{P}
  SYMBOL: 0x0040, // \p{S}
  CONTROL: 0x0080, // \p{C}
  MASK_CATEGORIES: 0x00ff,
  WHITESPACE: 0x0100,
} as const;

const MAX_CODEPOINTS = 0x110000;

// llama.cpp's `unicode_set_whitespace` (not JS's \s: no U+FEFF, but U+0085).
const WHITESPACE = new Set<number>([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007,
  0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

const RE_L = /\p{L}/u;
const RE_N = /\p{N}/u;
const RE_Z = /\p{Z}/u;
const RE_M = /\p{M}/u;
const RE_P = /\p{P}/u;
const RE_S = /\p{S}/u;
const RE_CN = /\p{Cn}/u;

// Lazily filled table: 0 = not computed yet; computed values always have a category bit set.
const flagTable = new Uint16Array(MAX_CODEPOINTS);

function computeFlags(cpt: number): number {
  const ch = String.fromCodePoint(cpt);
  let f: number;
  if (RE_L.test(ch)) f = CptFlag.LETTER;
  else if (RE_N.test(ch)) f = CptFlag.NUMBER;
  else if (RE_Z.test(ch)) f = CptFlag.SEPARATOR;
  else if (RE_M.test(ch)) f = CptFlag.ACCENT_MARK;
  else if (RE_P.test(ch)) f = CptFlag.PUNCTUATION;
  else if (RE_S.test(ch)) f = CptFlag.SYMBOL;
  else if (RE_CN.test(ch)) f = CptFlag.UNDEFINED;
  else f = CptFlag.CONTROL;
  if (WHITESPACE.has(cpt)) f |= CptFlag.WHITESPACE;
  return f;
}

/** Flags of a code point; 0 for values outside Unicode (llama.cpp's "out of range"). */
export function cptFlags(cpt: number): number {
  if (cpt < 0 || cpt >= MAX_CODEPOINTS) return 0;
  let f = flagTable[cpt]!;
  if (f === 0) {
    f = computeFlags(cpt);
    flagTable[cpt] = f;
  }
  return f;
}

export const isLetter = (f: number): boolean => (f & CptFlag.LETTER) !== 0;
export const isNumber = (f: number): boolean => (f & CptFlag.NUMBER) !== 0;
export const isWhitespace = (f: number): boolean => (f & CptFlag.WHITESPACE) !== 0;
export const isAccentMark = (f: number): boolean => (f & CptFlag.ACCENT_MARK) !== 0;

/** Code points of a string; lone surrogates become U+FFFD (as invalid UTF-8 does in llama.cpp). */
export function codePoints(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (d >= 0xdc00 && d <= 0xdfff) {
        out.push(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000);
        i++;
        continue;
      }
      out.push(0xfffd);
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      out.push(0xfffd);
    } else {
      out.push(c);
    }
  }
  return out;
}

/** Replaces lone surrogates with U+FFFD so that the string is valid UTF-16 (and UTF-8 encodable). */
export function wellFormed(text: string): string {
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

/** String of code points (no argument-count limit, unlike String.fromCodePoint(...cpts)). */
export function fromCodePoints(cpts: ArrayLike<number>, start = 0, end = cpts.length): string {
  let s = '';
  for (let i = start; i < end; i += 4096) {
    s += String.fromCodePoint(...Array.prototype.slice.call(cpts, i, Math.min(end, i + 4096)) as number[]);
  }
  return s;
}

const encoder = new TextEncoder();

/** UTF-8 bytes of a string. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

// GPT-2 bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 + n.
const BYTE_TO_CHAR: string[] = new Array<string>(256);
const CHAR_TO_BYTE = new Map<string, number>();
{
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    const cp = printable ? b : 256 + n++;
    BYTE_TO_CHAR[b] = String.fromCodePoint(cp);
    CHAR_TO_BYTE.set(BYTE_TO_CHAR[b]!, b);
  }
}

/** GPT-2 byte-level encoding of a string's UTF-8 bytes. */
export function byteEncode(text: string): string {
  let out = '';
  for (const b of utf8(text)) out += BYTE_TO_CHAR[b]!;
  return out;
}

/** The GPT-2 unicode character for one byte. */
export function byteToChar(b: number): string {
  return BYTE_TO_CHAR[b & 0xff]!;
}

/**
 * Inverse of byteEncode for one token's text. Characters outside the byte map are kept as their
 * UTF-8 bytes (llama.cpp would write an "[UNK_BYTE_…]" marker there; such tokens do not occur in
 * real byte-level vocabularies).
 */
export function byteDecode(text: string): Uint8Array {
  const out: number[] = [];
  for (const ch of text) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b !== undefined) out.push(b);
    else for (const x of utf8(ch)) out.push(x);
  }
  return Uint8Array.from(out);
}
