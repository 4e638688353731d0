// BPE pre-tokenization as llama.cpp does it (unicode_regex_split): a list of regexes applied in
// turn, each splitting every piece left by the previous one into matched and unmatched runs.
// The common GPT-2, Llama-3 and Qwen2 regexes run as hand-written splitters (exactly llama.cpp's
// custom splitters); any other regex runs as a JS regex over llama.cpp's "collapsed" text, where
// each non-ASCII code point is replaced by one byte standing for its category, so that \p{L} etc.
// mean exactly what they mean in llama.cpp.
import { CptFlag, codePoints, cptFlags, fromCodePoints, isLetter, isNumber, isWhitespace } from './unicode.js';

export const REGEX_GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
export const REGEX_LLAMA3 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
export const REGEX_QWEN2 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
export const REGEX_QWEN35 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const REGEX_NEWLINES = '[^\\n]+|[\\n]+';

/** How one `tokenizer.ggml.pre` value tokenizes (llama.cpp's llm_tokenizer_bpe + vocab load flags). */
export interface PreTokenizerSpec {
  regexes: string[];
  /** Look a whole pre-token up in the vocab before merging. */
  ignoreMerges?: boolean;
  /** Default for add_bos when the GGUF does not say. */
  addBos?: boolean;
  /** Apply llama.cpp's clean_up_tokenization_spaces on detokenize (BPE default true). */
  cleanSpaces?: boolean;
  /** chatglm: no BOS token by default. */
  noBos?: boolean;
}

const DEFAULT: PreTokenizerSpec = {
  regexes: ['[\\p{P}\\$\\+<=>\\^~\\|]+', REGEX_GPT2, '\\p{N}+', '[0-9][0-9][0-9]'],
};
const GPT2: PreTokenizerSpec = { regexes: [REGEX_GPT2] };
const LLAMA3: PreTokenizerSpec = { regexes: [REGEX_LLAMA3], ignoreMerges: true, addBos: true };
const STARCODER = ['\\p{N}', REGEX_GPT2];
const QWEN2: PreTokenizerSpec = { regexes: [REGEX_QWEN2], cleanSpaces: false };
const GPT4O_REGEX =
  "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const TEKKEN_REGEX =
  "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const FINNISH = ' ?[^(\\s|.,!?…。，、।۔،)]+';

/** `tokenizer.ggml.pre` values this library tokenizes exactly as llama.cpp does. */
export const PRE_TOKENIZERS: Record<string, PreTokenizerSpec> = {
  default: DEFAULT,
  // llama3 family
  llama3: LLAMA3,
  'llama-v3': LLAMA3,
  'llama-bpe': LLAMA3,
  falcon3: LLAMA3,
  'falcon-h1': LLAMA3,
  pixtral: LLAMA3,
  'midm-2.0': LLAMA3,
  lfm2: LLAMA3,
  dbrx: { regexes: [REGEX_LLAMA3] },
  'smaug-bpe': { regexes: [REGEX_LLAMA3] },
  'glm4': { regexes: [REGEX_LLAMA3], noBos: true },
  'chatglm-bpe': { regexes: [REGEX_LLAMA3], noBos: true },
  // gpt2 family
  'gpt-2': GPT2,
  'phi-2': GPT2,
  gigachat: GPT2,
  'a.x-4.0': GPT2,
  mellum: GPT2,
  mpt: GPT2,
  olmo: GPT2,
  jais: GPT2,
  exaone4: GPT2,
  trillion: { regexes: [REGEX_GPT2], cleanSpaces: false },
  'granite-docling': { regexes: [REGEX_GPT2], cleanSpaces: false },
  // starcoder family
  starcoder: { regexes: STARCODER },
  refact: { regexes: STARCODER },
  'command-r': { regexes: STARCODER, cleanSpaces: false },
  smollm: { regexes: STARCODER, cleanSpaces: false },
  codeshell: { regexes: STARCODER },
  exaone: { regexes: STARCODER },
  'minerva-7b': { regexes: STARCODER },
  mellum2: { regexes: STARCODER },
  falcon: {
    regexes: ['[\\p{P}\\$\\+<=>\\^~\\|`]+', "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)", '[0-9][0-9][0-9]'],
  },
  // qwen2 family
  qwen2: QWEN2,
  'deepseek-r1-qwen': QWEN2,
  kormo: QWEN2,
  f2llmv2: QWEN2,
  megrez: { regexes: [REGEX_QWEN2] },
  stablelm2: { regexes: [REGEX_QWEN2] },
  hunyuan: QWEN2,
  'solar-open': QWEN2,
  'grok-2': QWEN2,
  qwen35: { regexes: [REGEX_QWEN35], cleanSpaces: false },
  'deepseek-llm': {
    regexes: [
      "[\r\n]",
      "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
      "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
      "\\s+$",
      "[一-龥ࠀ-一가-퟿]+",
      "\\p{N}+",
    ],
    cleanSpaces: false,
  },
  'deepseek-coder': {
    regexes: ['[\r\n]', '\\s?\\p{L}+', '\\s?\\p{P}+', '[一-龥ࠀ-一가-퟿]+', '\\p{N}'],
    cleanSpaces: false,
  },
  'deepseek-v3': {
    regexes: [
      '\\p{N}{1,3}',
      '[一-龥぀-ゟ゠-ヿ]+',
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    ],
    cleanSpaces: false,
  },
  'poro-chat': { regexes: [FINNISH], cleanSpaces: false },
  bloom: { regexes: [FINNISH] },
  'gpt3-finnish': { regexes: [FINNISH] },
  viking: { regexes: [FINNISH, '\\p{N}'], cleanSpaces: false },
  tekken: { regexes: [TEKKEN_REGEX], cleanSpaces: false, ignoreMerges: true, addBos: true },
  'gpt-4o': { regexes: [GPT4O_REGEX], cleanSpaces: false },
  llama4: { regexes: [GPT4O_REGEX], cleanSpaces: false },
  'minimax-m2': { regexes: [GPT4O_REGEX], cleanSpaces: false },
  'seed-coder': {
    regexes: [
      "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    ],
    cleanSpaces: false,
  },
  bailingmoe: {
    regexes: ["'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"],
    cleanSpaces: false,
  },
  laguna: { regexes: [REGEX_NEWLINES, REGEX_QWEN2], cleanSpaces: false },
};

/** Splits `text` into pre-tokens (code point strings, not yet byte-encoded). */
export function preTokenize(text: string, regexes: readonly string[]): string[] {
  const cpts = codePoints(text);
  let offsets = cpts.length > 0 ? [cpts.length] : [];
  let collapsed: string | undefined;
  let wide: string | undefined;
  for (const re of regexes) {
    const custom = splitCustom(cpts, re, offsets);
    if (custom) {
      offsets = custom;
      continue;
    }
    if (/\\p\{/.test(re)) {
      collapsed ??= collapse(cpts);
      offsets = splitRegex(collapsed, compileCollapsed(re), offsets, false);
    } else {
      wide ??= fromCodePoints(cpts.map((c) => (c > 0x7f && isWhitespace(cptFlags(c)) ? 0x0b : c)));
      offsets = splitRegex(wide, compileWide(re), offsets, true);
    }
  }
  const words: string[] = [];
  let start = 0;
  for (const n of offsets) {
    if (n > 0) words.push(fromCodePoints(cpts, start, start + n));
    start += n;
  }
  return words;
}

type Splitter = (cpts: number[], offsets: number[]) => number[];

function splitCustom(cpts: number[], re: string, offsets: number[]): number[] | undefined {
  let fn: Splitter | undefined;
  if (re === REGEX_GPT2) fn = splitGpt2;
  else if (re === REGEX_LLAMA3 || re === "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
    fn = (c, o) => splitLlama3Like(c, o, 3, false);
  else if (re === REGEX_QWEN2) fn = (c, o) => splitLlama3Like(c, o, 1, false);
  else if (re === REGEX_QWEN35) fn = (c, o) => splitLlama3Like(c, o, 1, true);
  else if (re === REGEX_NEWLINES) fn = splitNewlines;
  return fn ? fn(cpts, offsets) : undefined;
}

// Shared scaffolding of llama.cpp's custom splitters: each works within one offset range,
// and looks past its end as "out of range" (flags 0, code point OUT_OF_RANGE).
const OUT = 0xffffffff;

function forEachRange(cpts: number[], offsets: number[], body: (ini: number, end: number, add: (end: number) => number) => void): number[] {
  const out: number[] = [];
  let start = 0;
  for (const offset of offsets) {
    const ini = start;
    const end = start + offset;
    start = end;
    let prevEnd = ini;
    const add = (e: number): number => {
      const len = e - prevEnd;
      if (len > 0) out.push(len);
      prevEnd = e;
      return len;
    };
    body(ini, end, add);
  }
  return out;
}

function splitGpt2(cpts: number[], offsets: number[]): number[] {
  return forEachRange(cpts, offsets, (ini, end, add) => {
    const cpt = (p: number) => (p >= ini && p < end ? cpts[p]! : OUT);
    const flags = (p: number) => (p >= ini && p < end ? cptFlags(cpts[p]!) : 0);
    for (let pos = ini; pos < end; ) {
      const c = cpt(pos);
      const f = flags(pos);
      if (c === 0x27 && pos + 1 < end) {
        const n = cpt(pos + 1);
        if (n === 0x73 || n === 0x74 || n === 0x6d || n === 0x64) {
          pos += add(pos + 2);
          continue;
        }
        if (pos + 2 < end) {
          const nn = cpt(pos + 2);
          if ((n === 0x72 && nn === 0x65) || (n === 0x76 && nn === 0x65) || (n === 0x6c && nn === 0x6c)) {
            pos += add(pos + 3);
            continue;
          }
        }
      }
      let f2 = c === 0x20 ? flags(pos + 1) : f;
      if (isLetter(f2)) {
        pos += c === 0x20 ? 1 : 0;
        while (isLetter(f2)) f2 = flags(++pos);
        add(pos);
        continue;
      }
      if (isNumber(f2)) {
        pos += c === 0x20 ? 1 : 0;
        while (isNumber(f2)) f2 = flags(++pos);
        add(pos);
        continue;
      }
      if (!(f2 & (CptFlag.WHITESPACE | CptFlag.LETTER | CptFlag.NUMBER)) && f2 !== 0) {
        pos += c === 0x20 ? 1 : 0;
        while (!(f2 & (CptFlag.WHITESPACE | CptFlag.LETTER | CptFlag.NUMBER)) && f2 !== 0) f2 = flags(++pos);
        add(pos);
        continue;
      }
      let nws = 0;
      while (isWhitespace(flags(pos + nws))) nws++;
      if (nws > 1 && cpt(pos + nws) !== OUT) {
        pos += nws - 1;
        add(pos);
        continue;
      }
      if (nws > 0) {
        pos += nws;
        add(pos);
        continue;
      }
      add(++pos);
    }
  });
}

const isApostropheSuffix1 = (c: number) => c === 0x73 || c === 0x74 || c === 0x6d || c === 0x64 || c === 0x53 || c === 0x54 || c === 0x4d || c === 0x44;
const lower = (c: number) => (c >= 0x41 && c <= 0x5a ? c + 0x20 : c);

/** llama.cpp's llama3 (maxDigits 3), qwen2 (maxDigits 1) and qwen35 (marks) splitters. */
function splitLlama3Like(cpts: number[], offsets: number[], maxDigits: number, marks: boolean): number[] {
  const LETTERISH = marks ? CptFlag.LETTER | CptFlag.ACCENT_MARK : CptFlag.LETTER;
  return forEachRange(cpts, offsets, (ini, end, add) => {
    const cpt = (p: number) => (p >= ini && p < end ? cpts[p]! : OUT);
    const flags = (p: number) => (p >= ini && p < end ? cptFlags(cpts[p]!) : 0);
    for (let pos = ini; pos < end; ) {
      const c = cpt(pos);
      const f = flags(pos);
      if (c === 0x27 && pos + 1 < end) {
        const n = cpt(pos + 1);
        if (isApostropheSuffix1(n)) {
          pos += add(pos + 2);
          continue;
        }
        if (pos + 2 < end) {
          const a = lower(n);
          const b = lower(cpt(pos + 2));
          if ((a === 0x72 && b === 0x65) || (a === 0x76 && b === 0x65) || (a === 0x6c && b === 0x6c)) {
            pos += add(pos + 3);
            continue;
          }
        }
      }
      // [^\r\n\p{L}\p{N}]?\p{L}+   (qwen35: [\p{L}\p{M}]+)
      if (!(c === 0x0d || c === 0x0a || isNumber(f))) {
        if (f & LETTERISH || flags(pos + 1) & LETTERISH) {
          pos++;
          while (flags(pos) & LETTERISH) pos++;
          add(pos);
          continue;
        }
      }
      if (isNumber(f)) {
        if (maxDigits === 1) {
          pos++;
          add(pos);
          continue;
        }
        let start = pos;
        while (isNumber(flags(pos))) {
          if (++pos - start >= maxDigits) {
            add(pos);
            start = pos;
          }
        }
        add(pos);
        continue;
      }
      // <space>?[^\s\p{L}\p{N}]+[\r\n]*
      const EXCL = CptFlag.WHITESPACE | CptFlag.NUMBER | LETTERISH;
      let f2 = c === 0x20 ? flags(pos + 1) : f;
      if (!(f2 & EXCL) && f !== 0) {
        pos += c === 0x20 ? 1 : 0;
        while (!(f2 & EXCL) && f2 !== 0) f2 = flags(++pos);
        let c2 = cpt(pos);
        while (c2 === 0x0d || c2 === 0x0a) c2 = cpt(++pos);
        add(pos);
        continue;
      }
      let nws = 0;
      let lastRN = 0;
      while (isWhitespace(flags(pos + nws))) {
        const c2 = cpt(pos + nws);
        if (c2 === 0x0d || c2 === 0x0a) lastRN = pos + nws + 1;
        nws++;
      }
      if (lastRN > 0) {
        pos = lastRN;
        add(pos);
        continue;
      }
      if (nws > 1 && cpt(pos + nws) !== OUT) {
        pos += nws - 1;
        add(pos);
        continue;
      }
      if (nws > 0) {
        pos += nws;
        add(pos);
        continue;
      }
      add(++pos);
    }
  });
}

function splitNewlines(cpts: number[], offsets: number[]): number[] {
  const out: number[] = [];
  let start = 0;
  for (const offset of offsets) {
    let pos = start;
    const end = start + offset;
    while (pos < end) {
      const nl = cpts[pos] === 0x0a;
      const runStart = pos;
      while (pos < end && (cpts[pos] === 0x0a) === nl) pos++;
      out.push(pos - runStart);
    }
    start = end;
  }
  return out;
}

// ---- generic regexes --------------------------------------------------------------------

const UCAT_ALIAS: Record<string, string> = { N: 'N', L: 'L', P: 'P', M: 'M', S: 'S', Lu: 'L', Ll: 'L', Lt: 'L', Lm: 'L', Lo: 'L' };
const UCAT_CHAR: Record<string, string> = { N: '\xd1', L: '\xd2', P: '\xd3', M: '\xd4', S: '\xd5' };
const CAT_CHAR = new Map<number, string>([
  [CptFlag.NUMBER, '\xd1'],
  [CptFlag.LETTER, '\xd2'],
  [CptFlag.PUNCTUATION, '\xd3'],
  [CptFlag.ACCENT_MARK, '\xd4'],
  [CptFlag.SYMBOL, '\xd5'],
]);
// ASCII members of each category, as llama.cpp's k_ucat_map.
const UCAT_ASCII: Record<string, string> = {
  N: '0-9',
  L: 'A-Za-z',
  P: '!-#%-*,-/:-;?-@\\[-\\]_\\{\\}',
  M: '',
  S: '\\$\\+<->\\^`\\|~',
};

/** llama.cpp's collapsed text: ASCII as is, other code points as one byte for their category. */
function collapse(cpts: number[]): string {
  let s = '';
  for (const c of cpts) {
    if (c < 128) {
      s += String.fromCharCode(c);
      continue;
    }
    const f = cptFlags(c);
    s += isWhitespace(f) ? '\x0b' : (CAT_CHAR.get(f & CptFlag.MASK_CATEGORIES) ?? '\xd0');
  }
  return s;
}

const compiled = new Map<string, RegExp>();

/** Rewrites \p{X} into the collapsed byte plus its ASCII members, as llama.cpp does. */
function compileCollapsed(re: string): RegExp {
  const key = `c:${re}`;
  let out = compiled.get(key);
  if (out) return out;
  if ([...re].some((ch) => ch.codePointAt(0)! >= 128)) {
    throw new Error(`pre-tokenizer regex mixes unicode categories and non-ASCII characters: ${re}`);
  }
  let src = '';
  let inside = false;
  for (let i = 0; i < re.length; i++) {
    const ch = re[i]!;
    if (ch === '[' && (i === 0 || re[i - 1] !== '\\')) {
      src += '[';
      inside = true;
      continue;
    }
    if (inside && ch === ']' && re[i - 1] !== '\\') {
      src += ']';
      inside = false;
      continue;
    }
    if (ch === '\\' && re[i + 1] === 'p' && re[i + 2] === '{') {
      const close = re.indexOf('}', i + 3);
      const name = close > 0 ? UCAT_ALIAS[re.slice(i + 3, close)] : undefined;
      if (name) {
        const body = UCAT_CHAR[name]! + UCAT_ASCII[name]!;
        src += inside ? body : `[${body}]`;
        i = close;
        continue;
      }
    }
    src += ch;
  }
  out = new RegExp(src, 'g');
  compiled.set(key, out);
  return out;
}

/** Regexes without categories run on code points; \s means ASCII whitespace (std::wregex). */
function compileWide(re: string): RegExp {
  const key = `w:${re}`;
  let out = compiled.get(key);
  if (out) return out;
  let src = '';
  let inside = false;
  for (let i = 0; i < re.length; i++) {
    const ch = re[i]!;
    if (ch === '\\' && i + 1 < re.length) {
      const n = re[i + 1]!;
      if (n === 's') src += inside ? '\\t\\n\\v\\f\\r ' : '[\\t\\n\\v\\f\\r ]';
      else if (n === 'S' && !inside) src += '[^\\t\\n\\v\\f\\r ]';
      else src += ch + n;
      i++;
      continue;
    }
    if (ch === '[') inside = true;
    else if (ch === ']') inside = false;
    src += ch;
  }
  out = new RegExp(src, 'gu');
  compiled.set(key, out);
  return out;
}

/** std::regex_iterator over each offset range: matched and unmatched runs both become pieces. */
function splitRegex(text: string, re: RegExp, offsets: number[], wide: boolean): number[] {
  const out: number[] = [];
  // index (UTF-16) of each code point start, for wide strings
  let unitStart = 0;
  for (const offset of offsets) {
    let chunk: string;
    if (wide) {
      let units = 0;
      let k = unitStart;
      for (let i = 0; i < offset; i++) {
        const w = text.codePointAt(k)! > 0xffff ? 2 : 1;
        k += w;
        units += w;
      }
      chunk = text.slice(unitStart, unitStart + units);
      unitStart += units;
    } else {
      chunk = text.slice(unitStart, unitStart + offset);
      unitStart += offset;
    }
    const cpLen = (a: number, b: number) => (wide ? [...chunk.slice(a, b)].length : b - a);
    let last = 0;
    re.lastIndex = 0;
    for (const m of chunk.matchAll(re)) {
      const idx = m.index;
      if (idx > last) out.push(cpLen(last, idx));
      if (m[0].length > 0) out.push(cpLen(idx, idx + m[0].length));
      last = idx + m[0].length;
    }
    if (last < chunk.length) out.push(cpLen(last, chunk.length));
  }
  return out;
}
