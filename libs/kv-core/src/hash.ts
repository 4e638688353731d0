// Chained block hashes for the prefix index.
//
// Block k of a token sequence (token ids [16k, 16k + 16)) is named by
//
//   hash_k = MurmurHash3_x86_128(bytes(hash_{k-1}) ‖ u32le(token_16k) ‖ … ‖ u32le(token_16k+15), seed = KV_HASH_SEED)
//
// with hash_{-1} = 128 zero bits. bytes(hash) is its four 32-bit words h1..h4, each little
// endian, so the input is always 80 bytes (five 16-byte MurmurHash3 blocks, no tail). Because
// each hash covers its parent, equal hashes at block k mean equal token ids in blocks 0..k
// (up to a 2^-128-ish collision), and a change in block k changes the hashes of blocks ≥ k only.
//
// MurmurHash3_x86_128 (Austin Appleby, public domain, SMHasher) is well distributed, runs on 32-bit
// integer operations only (Math.imul, no BigInt), and gives the same bits in every process and
// on every platform. A hash is written as 32 lowercase hex digits: h1, h2, h3, h4, 8 digits each.
import { KV_BLOCK_TOKENS } from '@baton/contracts';

/** 32 lowercase hex digits naming one block and everything before it. */
export type BlockHash = string;

/** Seed of the block hash ("KV16" in ASCII). Changing it changes every hash: a protocol change. */
export const KV_HASH_SEED = 0x4b563136;

/** The parent of block 0. */
export const ROOT_BLOCK_HASH: BlockHash = '0'.repeat(32);

const C1 = 0x239b961b;
const C2 = 0xab0e9789;
const C3 = 0x38b34ae5;
const C4 = 0xa1e38b93;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/** The state of one MurmurHash3_x86_128 run. */
class Murmur128 {
  h1: number;
  h2: number;
  h3: number;
  h4: number;

  constructor(seed: number) {
    this.h1 = this.h2 = this.h3 = this.h4 = seed | 0;
  }

  /** Mixes one 16-byte block given as four little-endian 32-bit words. */
  block(k1: number, k2: number, k3: number, k4: number): void {
    let { h1, h2, h3, h4 } = this;
    k1 = Math.imul(k1, C1); k1 = rotl(k1, 15); k1 = Math.imul(k1, C2); h1 ^= k1;
    h1 = rotl(h1, 19); h1 = (h1 + h2) | 0; h1 = (Math.imul(h1, 5) + 0x561ccd1b) | 0;
    k2 = Math.imul(k2, C2); k2 = rotl(k2, 16); k2 = Math.imul(k2, C3); h2 ^= k2;
    h2 = rotl(h2, 17); h2 = (h2 + h3) | 0; h2 = (Math.imul(h2, 5) + 0x0bcaa747) | 0;
    k3 = Math.imul(k3, C3); k3 = rotl(k3, 17); k3 = Math.imul(k3, C4); h3 ^= k3;
    h3 = rotl(h3, 15); h3 = (h3 + h4) | 0; h3 = (Math.imul(h3, 5) + 0x96cd1c35) | 0;
    k4 = Math.imul(k4, C4); k4 = rotl(k4, 18); k4 = Math.imul(k4, C1); h4 ^= k4;
    h4 = rotl(h4, 13); h4 = (h4 + h1) | 0; h4 = (Math.imul(h4, 5) + 0x32ac3b17) | 0;
    this.h1 = h1; this.h2 = h2; this.h3 = h3; this.h4 = h4;
  }

  /** Mixes the last 1–15 bytes (little-endian words k1..k4, zero-padded). */
  tail(bytes: Uint8Array, offset: number, length: number): void {
    const k = [0, 0, 0, 0];
    for (let i = 0; i < length; i++) k[i >> 2]! |= bytes[offset + i]! << (8 * (i & 3));
    if (length > 12) { let k4 = Math.imul(k[3]!, C4); k4 = rotl(k4, 18); k4 = Math.imul(k4, C1); this.h4 ^= k4; }
    if (length > 8) { let k3 = Math.imul(k[2]!, C3); k3 = rotl(k3, 17); k3 = Math.imul(k3, C4); this.h3 ^= k3; }
    if (length > 4) { let k2 = Math.imul(k[1]!, C2); k2 = rotl(k2, 16); k2 = Math.imul(k2, C3); this.h2 ^= k2; }
    if (length > 0) { let k1 = Math.imul(k[0]!, C1); k1 = rotl(k1, 15); k1 = Math.imul(k1, C2); this.h1 ^= k1; }
  }

  /** Finishes over `length` input bytes; returns [h1, h2, h3, h4] as unsigned 32-bit numbers. */
  finish(length: number): [number, number, number, number] {
    let { h1, h2, h3, h4 } = this;
    h1 ^= length; h2 ^= length; h3 ^= length; h4 ^= length;
    h1 = (h1 + h2) | 0; h1 = (h1 + h3) | 0; h1 = (h1 + h4) | 0;
    h2 = (h2 + h1) | 0; h3 = (h3 + h1) | 0; h4 = (h4 + h1) | 0;
    h1 = fmix32(h1); h2 = fmix32(h2); h3 = fmix32(h3); h4 = fmix32(h4);
    h1 = (h1 + h2) | 0; h1 = (h1 + h3) | 0; h1 = (h1 + h4) | 0;
    h2 = (h2 + h1) | 0; h3 = (h3 + h1) | 0; h4 = (h4 + h1) | 0;
    return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
  }
}

/** MurmurHash3_x86_128 of a byte string: [h1, h2, h3, h4] as unsigned 32-bit numbers. */
export function murmurHash3x86_128(bytes: Uint8Array, seed = 0): [number, number, number, number] {
  const state = new Murmur128(seed);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const whole = bytes.length - (bytes.length % 16);
  for (let i = 0; i < whole; i += 16) {
    state.block(view.getUint32(i, true), view.getUint32(i + 4, true), view.getUint32(i + 8, true), view.getUint32(i + 12, true));
  }
  state.tail(bytes, whole, bytes.length - whole);
  return state.finish(bytes.length);
}

const HEX_BYTE = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

function wordToHex(word: number): string {
  return HEX_BYTE[word >>> 24]! + HEX_BYTE[(word >>> 16) & 0xff]! + HEX_BYTE[(word >>> 8) & 0xff]! + HEX_BYTE[word & 0xff]!;
}

/** Writes four hash words as 32 hex digits. */
export function hashWordsToHex(words: readonly number[]): BlockHash {
  return wordToHex(words[0]!) + wordToHex(words[1]!) + wordToHex(words[2]!) + wordToHex(words[3]!);
}

function hexToWords(hash: BlockHash): [number, number, number, number] {
  if (!/^[0-9a-f]{32}$/.test(hash)) throw new TypeError(`invalid block hash ${JSON.stringify(hash)}: 32 lowercase hex digits expected`);
  return [0, 8, 16, 24].map((at) => Number.parseInt(hash.slice(at, at + 8), 16)) as [number, number, number, number];
}

function checkToken(token: number | undefined, index: number): number {
  if (token === undefined || !Number.isInteger(token) || token < 0 || token > 0xffffffff) {
    throw new RangeError(`token id at position ${index} is ${token}: token ids are integers in [0, 2^32)`);
  }
  return token;
}

/** Hash of one block (16 token ids from `offset`) given its parent's words. */
function blockHashWords(parent: readonly number[], tokens: ArrayLike<number>, offset: number): [number, number, number, number] {
  const state = new Murmur128(KV_HASH_SEED);
  state.block(parent[0]!, parent[1]!, parent[2]!, parent[3]!);
  for (let i = 0; i < KV_BLOCK_TOKENS; i += 4) {
    state.block(
      checkToken(tokens[offset + i], offset + i),
      checkToken(tokens[offset + i + 1], offset + i + 1),
      checkToken(tokens[offset + i + 2], offset + i + 2),
      checkToken(tokens[offset + i + 3], offset + i + 3),
    );
  }
  return state.finish(16 + KV_BLOCK_TOKENS * 4);
}

/** Hash of the block of 16 token ids at `offset` whose parent block hash is `parent`. */
export function blockHash(parent: BlockHash, tokens: ArrayLike<number>, offset = 0): BlockHash {
  return hashWordsToHex(blockHashWords(hexToWords(parent), tokens, offset));
}

/**
 * Chained hashes of every full block of `tokens` (a trailing partial block is not hashed),
 * starting after `parent` (ROOT_BLOCK_HASH for a sequence's first block).
 */
export function chainBlockHashes(tokens: ArrayLike<number>, parent: BlockHash = ROOT_BLOCK_HASH): BlockHash[] {
  const out: BlockHash[] = [];
  let words: readonly number[] = hexToWords(parent);
  for (let offset = 0; offset + KV_BLOCK_TOKENS <= tokens.length; offset += KV_BLOCK_TOKENS) {
    words = blockHashWords(words, tokens, offset);
    out.push(hashWordsToHex(words));
  }
  return out;
}

/** Number of leading full blocks on which two token sequences agree. */
export function commonFullBlocks(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const limit = Math.min(a.length, b.length);
  let same = 0;
  while (same < limit && a[same] === b[same]) same++;
  return Math.floor(same / KV_BLOCK_TOKENS);
}

/**
 * Hashes of `tokens`' full blocks, reusing `previousHashes` (the hashes of `previousTokens`)
 * for the leading blocks both share: only the blocks after the shared ones are hashed.
 */
export function extendBlockHashes(previousTokens: ArrayLike<number>, previousHashes: readonly BlockHash[], tokens: ArrayLike<number>): BlockHash[] {
  const keep = Math.min(commonFullBlocks(previousTokens, tokens), previousHashes.length);
  const rest = Array.prototype.slice.call(tokens, keep * KV_BLOCK_TOKENS) as number[];
  const parent = keep === 0 ? ROOT_BLOCK_HASH : previousHashes[keep - 1]!;
  return [...previousHashes.slice(0, keep), ...chainBlockHashes(rest, parent)];
}
