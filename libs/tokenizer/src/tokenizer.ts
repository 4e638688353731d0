// Text <-> token ids, as llama.cpp's llama_tokenize / llama_detokenize do it.
import { preTokenize } from './pretokenize.js';
import { byteDecode, byteEncode, utf8, wellFormed } from './unicode.js';
import { TokenAttr, TokenizerError, loadVocab, mergeKey, type GgufMetadata, type Vocab } from './vocab.js';

export interface EncodeOptions {
  /** Add BOS/EOS as the model's add_bos/add_eos flags say (llama.cpp's add_special). Default true. */
  addSpecial?: boolean;
  /**
   * Match control tokens written in the text (e.g. "<|im_start|>") as single tokens (llama.cpp's
   * parse_special). User-defined tokens are always matched. Default false: user text never turns
   * into control tokens.
   */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Render control/unknown tokens as their text (llama.cpp's unparse_special). Default false. */
  special?: boolean;
  /** Drop a leading BOS / trailing EOS the model adds by itself (llama.cpp's remove_special). Default false. */
  removeSpecial?: boolean;
}

const ESCAPED_SPACE = '\u2581';

/** Pre-tokens whose ids are remembered (words repeat a lot in real text). */
const WORD_CACHE_SIZE = 50_000;

export class Tokenizer {
  readonly vocab: Vocab;
  private readonly wordCache = new Map<string, number[]>();
  private maxLen = -1;

  constructor(vocab: Vocab) {
    this.vocab = vocab;
  }

  /** Builds a tokenizer from GGUF metadata (key -> value). Throws TokenizerError on unusable metadata. */
  static fromGguf(meta: GgufMetadata): Tokenizer {
    return new Tokenizer(loadVocab(meta));
  }

  get vocabSize(): number {
    return this.vocab.texts.length;
  }
  get bos(): number | null {
    return this.vocab.bos;
  }
  get eos(): number | null {
    return this.vocab.eos;
  }
  get addBos(): boolean {
    return this.vocab.addBos;
  }

  /** Whether generating this token ends the sequence (EOS, EOT, <|im_end|>, …). */
  isEog(id: number): boolean {
    return this.vocab.eog.has(id);
  }

  /** The token's text as stored in the vocabulary. */
  tokenText(id: number): string {
    this.checkId(id);
    return this.vocab.texts[id]!;
  }

  /** The vocabulary id of an exact token text, if any. */
  tokenId(text: string): number | undefined {
    return this.vocab.tokenToId.get(text);
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const addSpecial = options.addSpecial ?? true;
    const parseSpecial = options.parseSpecial ?? false;
    const v = this.vocab;
    const fragments = text.length > 0 ? this.partition(wellFormed(text), parseSpecial) : [];
    const out: number[] = [];
    if (addSpecial && v.addBos) {
      if (v.bos === null) throw new TokenizerError('the model asks for a BOS token but defines none (tokenizer.ggml.bos_token_id)');
      out.push(v.bos);
    }
    if (v.type === 'spm') {
      let prevSpecial = true;
      for (const f of fragments) {
        if (typeof f === 'number') {
          out.push(f);
          prevSpecial = true;
          continue;
        }
        const t = (v.addSpacePrefix && prevSpecial ? ' ' : '') + f;
        this.spm(t.replaceAll(' ', ESCAPED_SPACE), out);
        prevSpecial = false;
      }
    } else {
      for (const f of fragments) {
        if (typeof f === 'number') out.push(f);
        else this.bpe(f, out);
      }
    }
    if (addSpecial && v.addEos) {
      if (v.eos === null) throw new TokenizerError('the model asks for an EOS token but defines none (tokenizer.ggml.eos_token_id)');
      out.push(v.eos);
    }
    return out;
  }

  /**
   * Tokenizes a prompt rendered from the chat template: control tokens written by the template
   * (e.g. "<|im_start|>") become single tokens, and BOS is added when the model wants one unless
   * the template already wrote it (so there is never a double BOS). No EOS is appended: the
   * prompt is for generation.
   */
  encodePrompt(text: string): number[] {
    const v = this.vocab;
    const ids = this.encode(text, { addSpecial: false, parseSpecial: true });
    if (v.addBos && v.bos !== null && ids[0] !== v.bos) ids.unshift(v.bos);
    return ids;
  }

  /** The bytes one token stands for (llama.cpp's token_to_piece). */
  tokenBytes(id: number, special = false): Uint8Array {
    this.checkId(id);
    const v = this.vocab;
    const attr = v.attrs[id]!;
    if (!special && attr & (TokenAttr.UNKNOWN | TokenAttr.CONTROL)) return EMPTY;
    const text = v.texts[id]!;
    if (attr & (TokenAttr.UNKNOWN | TokenAttr.CONTROL | TokenAttr.USER_DEFINED)) return utf8(text);
    if (attr & TokenAttr.NORMAL) {
      return v.type === 'spm' ? utf8(text.replaceAll(ESCAPED_SPACE, ' ')) : byteDecode(text);
    }
    if (attr & TokenAttr.BYTE) return Uint8Array.of(parseInt(text.slice(3, 5), 16));
    return EMPTY;
  }

  /** Text of a whole sequence, as llama_detokenize (including its clean-up of spaces for BPE models that ask for it). */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    let bytes = IncrementalDecoder.rawBytes(this, ids, options);
    if (this.vocab.cleanSpaces) bytes = cleanSpaces(bytes);
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(Uint8Array.from(bytes));
  }

  /**
   * An incremental detokenizer: push ids one at a time and get back only complete UTF-8 text;
   * the concatenation of everything returned equals decode(all ids).
   */
  decoder(options: DecodeOptions = {}): IncrementalDecoder {
    return new IncrementalDecoder(this, options);
  }

  // ---- internals ----------------------------------------------------------------------------

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocab.texts.length) {
      throw new TokenizerError(`token id ${id} is outside the vocabulary (0..${this.vocab.texts.length - 1})`);
    }
  }

  /** llama.cpp's tokenizer_st_partition: split out special tokens, longest first. */
  private partition(text: string, parseSpecial: boolean): (string | number)[] {
    const v = this.vocab;
    let frags: (string | number)[] = [text];
    for (const id of v.specialTokens) {
      const attr = v.attrs[id]!;
      if (!parseSpecial && attr & (TokenAttr.CONTROL | TokenAttr.UNKNOWN)) continue;
      const tok = v.texts[id]!;
      const next: (string | number)[] = [];
      for (const f of frags) {
        if (typeof f === 'number' || !f.includes(tok)) {
          next.push(f);
          continue;
        }
        let rest = f;
        for (;;) {
          const at = rest.indexOf(tok);
          if (at < 0) {
            if (rest.length > 0) next.push(rest);
            break;
          }
          let left = rest.slice(0, at);
          if (attr & TokenAttr.LSTRIP) left = left.replace(/[ \t\n\v\f\r]+$/, '');
          if (left.length > 0) next.push(left);
          next.push(id);
          rest = rest.slice(at + tok.length);
          if (attr & TokenAttr.RSTRIP) rest = rest.replace(/^[ \t\n\v\f\r]+/, '');
        }
      }
      frags = next;
    }
    return frags;
  }

  /** llama.cpp's llm_tokenizer_bpe_session::tokenize for one raw-text fragment. */
  private bpe(text: string, out: number[]): void {
    const v = this.vocab;
    for (const raw of preTokenize(text, v.preSpec.regexes)) {
      const cached = this.wordCache.get(raw);
      if (cached) {
        for (const id of cached) out.push(id);
        continue;
      }
      const start = out.length;
      this.bpeWord(byteEncode(raw), out);
      if (this.wordCache.size >= WORD_CACHE_SIZE) this.wordCache.clear();
      this.wordCache.set(raw, out.slice(start));
    }
  }

  /** One pre-token, already byte-encoded. */
  private bpeWord(word: string, out: number[]): void {
    const v = this.vocab;
    if (v.ignoreMerges) {
      const id = v.tokenToId.get(word);
      if (id !== undefined) {
        out.push(id);
        return;
      }
    }
    for (const piece of bpeMerge(word, v.bpeRanks)) {
      const id = v.tokenToId.get(piece);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      // unknown piece: llama.cpp looks up each UTF-8 byte of it as a one-byte token text
      for (const b of utf8(piece)) {
        if (b >= 0x80) continue;
        const bid = v.tokenToId.get(String.fromCharCode(b));
        if (bid !== undefined) out.push(bid);
      }
    }
  }

  /** llama.cpp's llm_tokenizer_spm_session::tokenize (score-ordered merges, byte fallback). */
  private spm(text: string, out: number[]): void {
    const v = this.vocab;
    // symbols are [start, start + len) ranges of `text` (UTF-16 units) in a linked list
    const starts: number[] = [];
    for (let i = 0; i < text.length; i++) {
      starts.push(i);
      const c = text.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) i++;
    }
    const n = starts.length;
    if (n === 0) return;
    const start = Int32Array.from(starts);
    const len = new Int32Array(n);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      len[i] = (i + 1 < n ? start[i + 1]! : text.length) - start[i]!;
      prev[i] = i - 1;
      next[i] = i === n - 1 ? -1 : i + 1;
    }
    const maxLen = this.maxTokenLength;
    const revMerge = new Map<string, number>(); // text -> left * n + right
    const heap = new BigramHeap();
    const tryAdd = (left: number, right: number) => {
      if (left === -1 || right === -1) return;
      const size = len[left]! + len[right]!;
      if (size > maxLen) return; // longer than every token: not in the vocabulary
      const t = text.slice(start[left]!, start[left]! + size);
      const id = v.tokenToId.get(t);
      if (id === undefined) return;
      heap.push(v.scores[id]!, left, right, size);
      revMerge.set(t, left * n + right);
    };
    for (let i = 1; i < n; i++) tryAdd(i - 1, i);
    while (heap.size > 0) {
      heap.pop();
      const { left, right, size } = heap.top;
      const l = len[left]!;
      const r = len[right]!;
      if (l === 0 || r === 0 || l + r !== size) continue;
      len[left] = l + r;
      len[right] = 0;
      next[left] = next[right]!;
      if (next[right]! >= 0) prev[next[right]!] = left;
      tryAdd(prev[left]!, left);
      tryAdd(left, next[left]!);
    }
    const resegment = (i: number, depth: number) => {
      const t = text.slice(start[i]!, start[i]! + len[i]!);
      const id = v.tokenToId.get(t);
      if (id !== undefined) {
        out.push(id);
        return;
      }
      const p = revMerge.get(t);
      if (p === undefined || depth > 64) {
        for (const b of utf8(t)) out.push(this.byteToken(b));
        return;
      }
      resegment(Math.floor(p / n), depth + 1);
      resegment(p % n, depth + 1);
    };
    for (let i = 0; i !== -1; i = next[i]!) resegment(i, 0);
  }

  /** Longest token text in UTF-16 units. */
  private get maxTokenLength(): number {
    if (this.maxLen < 0) this.maxLen = this.vocab.texts.reduce((m, t) => Math.max(m, t.length), 0);
    return this.maxLen;
  }

  /** The SPM byte-fallback token for one byte: <0xNN>, else the byte as text, else <unk>. */
  private byteToken(b: number): number {
    const v = this.vocab;
    const hex = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
    const id = v.tokenToId.get(hex) ?? v.tokenToId.get(String.fromCharCode(b));
    if (id !== undefined) return id;
    if (v.unk !== null) return v.unk;
    throw new TokenizerError(`the vocabulary has no byte token for 0x${b.toString(16)} and no <unk> token`);
  }
}

const EMPTY = new Uint8Array(0);

/** llama.cpp's BPE merge loop on one byte-encoded word: lowest rank first, leftmost on ties. */
function bpeMerge(word: string, ranks: Map<string, number>): string[] {
  const sym = Array.from(word);
  const n = sym.length;
  if (n <= 1) return sym;
  const prev = new Int32Array(n);
  const next = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    prev[i] = i - 1;
    next[i] = i === n - 1 ? -1 : i + 1;
  }
  const heap = new Heap<{ left: number; right: number; rank: number; text: string }>((a, b) =>
    a.rank !== b.rank ? a.rank < b.rank : a.left < b.left,
  );
  const add = (left: number, right: number) => {
    if (left === -1 || right === -1) return;
    const rank = ranks.get(mergeKey(sym[left]!, sym[right]!));
    if (rank === undefined) return;
    heap.push({ left, right, rank, text: sym[left]! + sym[right]! });
  };
  for (let i = 1; i < n; i++) add(i - 1, i);
  while (heap.size > 0) {
    const bg = heap.pop();
    const l = sym[bg.left]!;
    const r = sym[bg.right]!;
    if (l.length === 0 || r.length === 0 || l + r !== bg.text) continue;
    sym[bg.left] = bg.text;
    sym[bg.right] = '';
    next[bg.left] = next[bg.right]!;
    if (next[bg.right]! >= 0) prev[next[bg.right]!] = bg.left;
    add(prev[bg.left]!, bg.left);
    add(bg.left, next[bg.left]!);
  }
  return sym.filter((s) => s.length > 0);
}

/** Binary heap; `before(a, b)` is true when a comes out first. */
class Heap<T> {
  private items: T[] = [];
  constructor(private readonly before: (a: T, b: T) => boolean) {}
  get size(): number {
    return this.items.length;
  }
  push(x: T): void {
    const a = this.items;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): T {
    const a = this.items;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.before(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** Bytes before the end whose space clean-up may still depend on bytes not yet seen. */
const CLEAN_HOLD = 5;
/** Raw bytes already returned that clean-up of later bytes looks back at. */
const CLEAN_CONTEXT = 8;

/**
 * SPM's bigram queue: highest score first, leftmost on ties (llm_bigram_spm::comparator), as
 * struct-of-arrays so that long texts do not allocate an object per candidate.
 */
class BigramHeap {
  private score = new Float64Array(64);
  private left = new Int32Array(64);
  private right = new Int32Array(64);
  private sz = new Int32Array(64);
  size = 0;
  /** The entry the last pop() removed. */
  readonly top = { left: 0, right: 0, size: 0 };

  private before(a: number, b: number): boolean {
    const sa = this.score[a]!;
    const sb = this.score[b]!;
    return sa !== sb ? sa > sb : this.left[a]! < this.left[b]!;
  }

  private swap(a: number, b: number): void {
    const s = this.score[a]!; this.score[a] = this.score[b]!; this.score[b] = s;
    const l = this.left[a]!; this.left[a] = this.left[b]!; this.left[b] = l;
    const r = this.right[a]!; this.right[a] = this.right[b]!; this.right[b] = r;
    const z = this.sz[a]!; this.sz[a] = this.sz[b]!; this.sz[b] = z;
  }

  push(score: number, left: number, right: number, size: number): void {
    if (this.size === this.score.length) {
      const grow = <T extends Float64Array | Int32Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.score = grow(this.score);
      this.left = grow(this.left);
      this.right = grow(this.right);
      this.sz = grow(this.sz);
    }
    let i = this.size++;
    this.score[i] = score;
    this.left[i] = left;
    this.right[i] = right;
    this.sz[i] = size;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): void {
    this.top.left = this.left[0]!;
    this.top.right = this.right[0]!;
    this.top.size = this.sz[0]!;
    const last = --this.size;
    if (last > 0) {
      this.swap(0, last);
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < last && this.before(l, m)) m = l;
        if (r < last && this.before(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
  }
}

/**
 * Streams text out of a sequence of token ids. Holds back bytes of an unfinished UTF-8 character
 * and, for vocabularies with space clean-up, spaces near the end whose clean-up depends on what
 * comes next; `flush()` returns whatever is left at the end of the sequence.
 */
export class IncrementalDecoder {
  private readonly special: boolean;
  private readonly removeSpecial: boolean;
  private readonly clean: boolean;
  private first = true;
  private stripSpace: boolean;
  private heldEos = false;
  /** Raw (not yet cleaned) bytes not yet turned into returned text. */
  private pending: number[] = [];
  /** The last raw bytes already returned (context for the clean-up). */
  private context: number[] = [];
  private readonly td = new TextDecoder('utf-8', { ignoreBOM: true });

  constructor(private readonly tok: Tokenizer, options: DecodeOptions) {
    this.special = options.special ?? false;
    this.removeSpecial = options.removeSpecial ?? false;
    this.clean = tok.vocab.cleanSpaces;
    this.stripSpace = tok.vocab.addSpacePrefix;
  }

  /** Adds one token; returns the text that is now complete (possibly ''). */
  push(id: number): string {
    this.pushRaw(id);
    return this.drain(false);
  }

  /** Ends the sequence and returns any text still held back. */
  flush(): string {
    this.heldEos = false;
    return this.drain(true);
  }

  /** All bytes of a whole sequence, before clean-up (for Tokenizer.decode). */
  static rawBytes(tok: Tokenizer, ids: readonly number[], options: DecodeOptions): number[] {
    const d = new IncrementalDecoder(tok, options);
    for (const id of ids) d.pushRaw(id);
    d.heldEos = false;
    return d.pending;
  }

  private pushRaw(id: number): void {
    const v = this.tok.vocab;
    if (this.heldEos) {
      // an EOS that turned out not to be the last token is decoded after all
      this.heldEos = false;
      this.append(this.tok.tokenBytes(v.eos!, this.special));
    }
    if (this.first) {
      this.first = false;
      if (this.removeSpecial && v.addBos && id === v.bos) {
        this.stripSpace = false;
        this.tok.tokenBytes(id); // validates the id
        return;
      }
    }
    if (this.removeSpecial && v.addEos && id === v.eos) {
      this.tok.tokenBytes(id);
      this.heldEos = true;
      return;
    }
    this.append(this.tok.tokenBytes(id, this.special));
  }

  private append(bytes: Uint8Array): void {
    let b: ArrayLike<number> = bytes;
    if (this.stripSpace) {
      this.stripSpace = false;
      if (bytes.length > 0 && bytes[0] === 0x20) b = bytes.subarray(1);
    }
    for (let i = 0; i < b.length; i++) this.pending.push(b[i]!);
  }

  private drain(final: boolean): string {
    const p = this.pending;
    let upto = p.length;
    if (!final) {
      if (this.clean) {
        for (let i = Math.max(0, upto - CLEAN_HOLD); i < upto; i++) {
          if (p[i] === 0x20) {
            upto = i;
            break;
          }
        }
      }
      upto = completeUtf8(p, upto);
    }
    if (upto === 0) return '';
    let out: number[];
    if (this.clean) {
      // clean with the returned context behind and every known byte ahead, keep [0, upto)
      const ctx = this.context;
      out = cleanSpaces([...ctx, ...p], ctx.length, ctx.length + upto);
      this.context = [...ctx, ...p.slice(0, upto)].slice(-CLEAN_CONTEXT);
    } else {
      out = p.slice(0, upto);
    }
    this.pending = p.slice(upto);
    return this.td.decode(Uint8Array.from(out));
  }
}

/** Largest n ≤ upto such that bytes[0..n) ends on a UTF-8 character boundary. */
function completeUtf8(bytes: number[], upto: number): number {
  // walk back over at most 3 continuation bytes to the lead byte of the last character
  let i = upto - 1;
  let cont = 0;
  while (i >= 0 && cont < 3 && (bytes[i]! & 0xc0) === 0x80) {
    i--;
    cont++;
  }
  if (i < 0) return upto;
  const lead = bytes[i]!;
  const need = lead >= 0xf8 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  if (lead < 0x80 || need === 1) return upto;
  return cont + 1 >= need ? upto : i;
}

/**
 * llama_detokenize's clean_up_tokenization_spaces passes over `bytes` (a literal port of the
 * in-place C++, which reads bytes it may already have overwritten); returns the surviving bytes
 * whose original index is in [from, to).
 */
export function cleanSpaces(bytes: readonly number[], from = 0, to = bytes.length): number[] {
  const SP = 0x20;
  const AP = 0x27;
  const text = bytes.slice();
  const orig = bytes.map((_, i) => i);
  const put = (at: number, i: number) => {
    text[at] = text[i]!;
    orig[at] = orig[i]!;
  };
  let total = text.length;
  // first pass: " ?", " !", " .", " ,"
  const total1 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < total1; ++i) {
    const x = text[i]!;
    if (text[i - 1] === SP && (x === 0x3f || x === 0x21 || x === 0x2e || x === 0x2c)) total--;
    put(total++, i);
  }
  // second pass: strip a single apostrophe's surrounding spaces, " ' "
  const total2 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < total2; ++i) {
    const x = text[i]!;
    const o = orig[i]!;
    if (x === AP && i + 1 < total2 && text[i - 1] === SP && text[i + 1] === SP) {
      total--;
      text[++i] = 0;
    }
    text[total] = x;
    orig[total++] = o;
  }
  // third pass: contractions " 's", " 'm", " 're", " 've"
  const total3 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < total3; ++i) {
    const x = text[i]!;
    if (text[i - 1] === SP && x === AP && i + 1 < total3) {
      const x1 = text[i + 1]!;
      if (x1 === 0x73 || x1 === 0x6d) total--;
      else if (x1 !== 0x74 && x1 !== 0x64 && i + 2 < total3) {
        const x2 = text[i + 2]!;
        if ((x1 === 0x72 && x2 === 0x65) || (x1 === 0x76 && x2 === 0x65)) total--;
      }
    }
    put(total++, i);
  }
  const out: number[] = [];
  for (let k = 0; k < total; k++) if (orig[k]! >= from && orig[k]! < to) out.push(text[k]!);
  return out;
}
