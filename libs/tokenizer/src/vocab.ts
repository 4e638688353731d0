// The vocabulary as llama.cpp loads it (llama_vocab::impl::load) from GGUF metadata.
import { BatonError, ErrorCode } from '@baton/contracts';
import { PRE_TOKENIZERS, type PreTokenizerSpec } from './pretokenize.js';

/**
 * GGUF metadata: a plain object key -> value (arrays as JS arrays), or a Map of key -> value or
 * key -> {type, value} (the typed entries @baton/gguf's reader returns).
 */
export type GgufMetadata = Readonly<Record<string, unknown>> | ReadonlyMap<string, unknown>;

/** Normalizes metadata to a plain object of plain values. */
export function plainMetadata(meta: GgufMetadata): Readonly<Record<string, unknown>> {
  if (!(meta instanceof Map)) return meta as Readonly<Record<string, unknown>>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of meta as ReadonlyMap<string, unknown>) {
    const raw = typeof v === 'object' && v !== null && 'type' in v && 'value' in v ? (v as { value: unknown }).value : v;
    out[k] = typeof raw === 'bigint' ? Number(raw) : raw;
  }
  return out;
}

/** Token attributes, bit for bit as llama.cpp's llama_token_attr. */
export const TokenAttr = {
  UNDEFINED: 0,
  UNKNOWN: 1 << 0,
  UNUSED: 1 << 1,
  NORMAL: 1 << 2,
  CONTROL: 1 << 3,
  USER_DEFINED: 1 << 4,
  BYTE: 1 << 5,
  NORMALIZED: 1 << 6,
  LSTRIP: 1 << 7,
  RSTRIP: 1 << 8,
  SINGLE_WORD: 1 << 9,
} as const;

/** GGUF `tokenizer.ggml.token_type` values. */
export const TokenType = { UNDEFINED: 0, NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export type VocabType = 'spm' | 'bpe';

/** Thrown for metadata that does not describe a tokenizer this library can run. */
export class TokenizerError extends BatonError {
  constructor(message: string, code: ErrorCode = ErrorCode.VALIDATION) {
    super(code, message);
    this.name = 'TokenizerError';
  }
}

export interface Vocab {
  type: VocabType;
  /** tokenizer.ggml.model */
  model: string;
  /** tokenizer.ggml.pre ('' when absent) */
  pre: string;
  preSpec: PreTokenizerSpec;
  texts: string[];
  scores: Float64Array;
  attrs: Uint16Array;
  tokenToId: Map<string, number>;
  /** BPE merge ranks keyed by mergeKey(left, right). */
  bpeRanks: Map<string, number>;
  bos: number | null;
  eos: number | null;
  eot: number | null;
  eom: number | null;
  unk: number | null;
  pad: number | null;
  eog: Set<number>;
  addBos: boolean;
  addEos: boolean;
  addSpacePrefix: boolean;
  ignoreMerges: boolean;
  cleanSpaces: boolean;
  /** Tokens matched before tokenization (control, user-defined, unknown), longest text first. */
  specialTokens: number[];
  chatTemplate: string | null;
}

export function mergeKey(left: string, right: string): string {
  return `${left.length}:${left}${right}`;
}

const EOT_TEXTS = [
  '<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|end_of_text|>', '<EOT>', '_<EOT>', '[EOT]',
  '<｜end▁of▁sentence｜>', '<end_of_utterance>',
];
const FIM_PRE_TEXTS = ['<|fim_prefix|>', '<fim-prefix>', '<fim_prefix>', '<｜fim▁begin｜>', '<PRE>', '▁<PRE>', '<|code_prefix|>', '<|prefix|>'];
const FIM_SUF_TEXTS = ['<|fim_suffix|>', '<fim-suffix>', '<fim_suffix>', '<｜fim▁hole｜>', '<SUF>', '▁<SUF>', '<|code_suffix|>', '<|suffix|>'];
const FIM_MID_TEXTS = ['<|fim_middle|>', '<fim-middle>', '<fim_middle>', '<｜fim▁end｜>', '<MID>', '▁<MID>', '<|code_middle|>', '<|middle|>'];
const FIM_PAD_TEXTS = ['<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<PAD>', '[PAD]'];
const FIM_REP_TEXTS = ['<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>'];
const FIM_SEP_TEXTS = ['<|file_sep|>'];
const EOG_TEXTS = [
  '<|eot_id|>', '<|im_end|>', '<|end|>', '<|return|>', '<|call|>', '<|flush|>', '<|calls|>', '<end_of_turn>', '<|endoftext|>',
  '</s>', '<|eom_id|>', '<EOT>', '_<EOT>', '[EOT]', '[EOS]', '<|end_of_text|>', '<end_of_utterance>', '<eos>', '<turn|>',
  '<|tool_response>', '<｜end▁of▁sentence｜>', '[e~[',
];

function optString(meta: Readonly<Record<string, unknown>>, key: string): string | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new TokenizerError(`GGUF key ${key} should be a string, got ${typeof v}`);
  return v;
}

function optBool(meta: Readonly<Record<string, unknown>>, key: string): boolean | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new TokenizerError(`GGUF key ${key} should be a bool, got ${typeof v}`);
  return v;
}

function optId(meta: Readonly<Record<string, unknown>>, key: string): number | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new TokenizerError(`GGUF key ${key} should be a token id, got ${String(v)}`);
  return n;
}

function optArray(meta: Readonly<Record<string, unknown>>, key: string): unknown[] | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) && !ArrayBuffer.isView(v)) throw new TokenizerError(`GGUF key ${key} should be an array`);
  return Array.from(v as ArrayLike<unknown>);
}

/** Builds the vocabulary from GGUF metadata, with llama.cpp's defaults and overrides. */
export function loadVocab(metadata: GgufMetadata): Vocab {
  const meta = plainMetadata(metadata);
  const model = optString(meta, 'tokenizer.ggml.model');
  if (model === undefined) {
    throw new TokenizerError('the GGUF has no tokenizer (tokenizer.ggml.model is missing); use a model file that embeds its vocabulary');
  }
  let type: VocabType;
  if (model === 'llama') type = 'spm';
  else if (model === 'gpt2') type = 'bpe';
  else throw new TokenizerError(`unsupported tokenizer.ggml.model '${model}': Baton tokenizes 'gpt2' (BPE) and 'llama' (SentencePiece) vocabularies`);

  const pre = optString(meta, 'tokenizer.ggml.pre') ?? '';
  let preSpec: PreTokenizerSpec;
  let addBos: boolean;
  let addSpacePrefix: boolean;
  let cleanSpaces: boolean;
  let ignoreMerges = false;
  let bos: number | null;
  let eos: number | null;
  let unk: number | null;
  if (type === 'spm') {
    preSpec = { regexes: [] };
    addBos = true;
    addSpacePrefix = true;
    cleanSpaces = false;
    bos = 1;
    eos = 2;
    unk = 0;
  } else {
    const spec = PRE_TOKENIZERS[pre === '' ? 'default' : pre];
    if (!spec) {
      throw new TokenizerError(
        `unsupported tokenizer.ggml.pre '${pre}'; supported: ${Object.keys(PRE_TOKENIZERS).sort().join(', ')}`,
      );
    }
    preSpec = spec;
    addBos = spec.addBos ?? false;
    addSpacePrefix = false;
    cleanSpaces = spec.cleanSpaces ?? true;
    ignoreMerges = spec.ignoreMerges ?? false;
    bos = spec.noBos ? null : 11;
    eos = 11;
    unk = null;
  }
  addSpacePrefix = optBool(meta, 'tokenizer.ggml.add_space_prefix') ?? addSpacePrefix;

  const rawTokens = optArray(meta, 'tokenizer.ggml.tokens');
  if (!rawTokens || rawTokens.length === 0) throw new TokenizerError('the GGUF has no token list (tokenizer.ggml.tokens)');
  const n = rawTokens.length;
  const texts = rawTokens.map((t, i) => {
    if (typeof t !== 'string') throw new TokenizerError(`tokenizer.ggml.tokens[${i}] is not a string`);
    return t === '' ? `[EMPTY_${i}]` : t;
  });
  const rawScores = optArray(meta, 'tokenizer.ggml.scores');
  if (rawScores && rawScores.length < n) throw new TokenizerError(`tokenizer.ggml.scores has ${rawScores.length} entries for ${n} tokens`);
  const rawTypes = optArray(meta, 'tokenizer.ggml.token_type');
  if (rawTypes && rawTypes.length < n) throw new TokenizerError(`tokenizer.ggml.token_type has ${rawTypes.length} entries for ${n} tokens`);

  const scores = new Float64Array(n);
  const attrs = new Uint16Array(n);
  const tokenToId = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    tokenToId.set(texts[i]!, i);
    scores[i] = rawScores ? Number(rawScores[i]) : 0;
    if (!rawTypes) {
      attrs[i] = TokenAttr.NORMAL;
      continue;
    }
    switch (Number(rawTypes[i])) {
      case TokenType.UNKNOWN: attrs[i] = TokenAttr.UNKNOWN; break;
      case TokenType.UNUSED: attrs[i] = TokenAttr.UNUSED; break;
      case TokenType.NORMAL: attrs[i] = TokenAttr.NORMAL; break;
      case TokenType.CONTROL: attrs[i] = TokenAttr.CONTROL; break;
      case TokenType.USER_DEFINED: attrs[i] = TokenAttr.USER_DEFINED; break;
      case TokenType.BYTE: attrs[i] = TokenAttr.BYTE; break;
      default: attrs[i] = TokenAttr.UNDEFINED;
    }
  }

  const bpeRanks = new Map<string, number>();
  if (type === 'bpe') {
    const merges = optArray(meta, 'tokenizer.ggml.merges');
    if (!merges) throw new TokenizerError('a gpt2 (BPE) vocabulary needs tokenizer.ggml.merges, which this GGUF lacks');
    merges.forEach((m, i) => {
      if (typeof m !== 'string') throw new TokenizerError(`tokenizer.ggml.merges[${i}] is not a string`);
      const pos = m.indexOf(' ', 1);
      const key = pos < 0 ? mergeKey('', '') : mergeKey(m.slice(0, pos), m.slice(pos + 1));
      if (!bpeRanks.has(key)) bpeRanks.set(key, i);
    });
  }

  // special token ids: defaults out of range are disabled, explicit ones must be in range
  const special = (key: string, def: number | null): number | null => {
    let id = def !== null && def >= n ? null : def;
    const v = optId(meta, key);
    if (v !== undefined && v < n) id = v;
    return id;
  };
  bos = special('tokenizer.ggml.bos_token_id', bos);
  eos = special('tokenizer.ggml.eos_token_id', eos);
  let eot = special('tokenizer.ggml.eot_token_id', null);
  let eom = special('tokenizer.ggml.eom_token_id', null);
  unk = special('tokenizer.ggml.unknown_token_id', unk);
  const pad = special('tokenizer.ggml.padding_token_id', null);
  let fimPad = special('tokenizer.ggml.fim_pad_token_id', null);
  let fimRep = special('tokenizer.ggml.fim_rep_token_id', null);
  let fimSep = special('tokenizer.ggml.fim_sep_token_id', null);

  addBos = optBool(meta, 'tokenizer.ggml.add_bos_token') ?? addBos;
  const addEos = optBool(meta, 'tokenizer.ggml.add_eos_token') ?? false;

  // llama.cpp's auto-detection of control-looking tokens by their text
  const markControl = (id: number) => {
    attrs[id] = attrs[id]! | TokenAttr.CONTROL;
  };
  const findFirst = (list: string[]): number | null => {
    for (const t of list) {
      const id = tokenToId.get(t);
      if (id !== undefined) return id;
    }
    return null;
  };
  if (eot === null) {
    eot = findFirst(EOT_TEXTS);
    if (eot !== null) markControl(eot);
  }
  if (eom === null) {
    eom = findFirst(['<|eom_id|>']);
    if (eom !== null) markControl(eom);
  }
  for (const [key, list] of [
    ['tokenizer.ggml.fim_pre_token_id', FIM_PRE_TEXTS],
    ['tokenizer.ggml.fim_suf_token_id', FIM_SUF_TEXTS],
    ['tokenizer.ggml.fim_mid_token_id', FIM_MID_TEXTS],
  ] as const) {
    if (special(key, null) === null) {
      const id = findFirst([...list]);
      if (id !== null) markControl(id);
    }
  }
  if (fimPad === null) {
    fimPad = findFirst(FIM_PAD_TEXTS);
    if (fimPad !== null) markControl(fimPad);
  }
  if (fimRep === null) {
    fimRep = findFirst(FIM_REP_TEXTS);
    if (fimRep !== null) markControl(fimRep);
  }
  if (fimSep === null) {
    fimSep = findFirst(FIM_SEP_TEXTS);
    if (fimSep !== null) markControl(fimSep);
  }
  for (let i = 0; i < n; i++) {
    if (attrs[i]! & TokenAttr.CONTROL && texts[i]!.includes('unused')) attrs[i] = attrs[i]! | TokenAttr.UNUSED;
  }
  const eog = new Set<number>();
  for (const id of [fimPad, fimRep, fimSep]) if (id !== null) eog.add(id);
  for (const t of EOG_TEXTS) {
    const id = tokenToId.get(t);
    if (id !== undefined) {
      eog.add(id);
      markControl(id);
    }
  }
  for (const t of ['<|channel|>', '<|message|>', '<|start|>', '<|constrain|>']) {
    const id = tokenToId.get(t);
    if (id !== undefined) attrs[id] = TokenAttr.USER_DEFINED;
  }
  for (const id of [eos, eot, eom]) if (id !== null) eog.add(id);
  {
    const has = (t: string) => [...eog].some((id) => texts[id] === t);
    const endId = [...eog].find((id) => texts[id] === '<|end|>');
    if (endId !== undefined && ((has('<|return|>') && (has('<|call|>') || has('<|calls|>'))) || ((has('<|call|>') || has('<|calls|>')) && has('<|flush|>')))) {
      eog.delete(endId);
      attrs[endId] = TokenAttr.USER_DEFINED;
    }
    const sId = [...eog].find((id) => texts[id] === '</s>');
    if (sId !== undefined && has('<|tool_response>')) {
      eog.delete(sId);
      attrs[sId] = TokenAttr.NORMAL;
    }
  }

  const specialTokens: number[] = [];
  for (let i = 0; i < n; i++) {
    if (attrs[i]! & (TokenAttr.CONTROL | TokenAttr.USER_DEFINED | TokenAttr.UNKNOWN)) specialTokens.push(i);
  }
  specialTokens.sort((a, b) => texts[b]!.length - texts[a]!.length || a - b);

  // per-model attributes llama.cpp sets by name
  const name = (optString(meta, 'general.name') ?? '').toLowerCase();
  if (name.includes('phi-3') || name.includes('phi3')) {
    for (const id of specialTokens) attrs[id] = attrs[id]! | TokenAttr.RSTRIP;
    const set = (t: string, on: boolean) => {
      const id = tokenToId.get(t);
      if (id === undefined) return;
      attrs[id] = on ? attrs[id]! | TokenAttr.RSTRIP : attrs[id]! & ~TokenAttr.RSTRIP;
    };
    set('</s>', true);
    for (const t of ['<unk>', '<s>', '<|endoftext|>']) set(t, false);
  }

  const chatTemplate = optString(meta, 'tokenizer.chat_template') ?? null;

  return {
    type, model, pre, preSpec, texts, scores, attrs, tokenToId, bpeRanks, bos, eos, eot, eom, unk, pad, eog, addBos, addEos,
    addSpacePrefix, ignoreMerges, cleanSpaces, specialTokens, chatTemplate,
  };
}
