import { describe, expect, it } from 'vitest';
import { KV_BLOCK_TOKENS } from '@baton/contracts';
import {
  blockHash, chainBlockHashes, extendBlockHashes, hashWordsToHex, KV_HASH_SEED, murmurHash3x86_128, ROOT_BLOCK_HASH,
} from './hash.js';

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const hex = (text: string, seed = 0): string => hashWordsToHex(murmurHash3x86_128(utf8(text), seed));

describe('MurmurHash3_x86_128', () => {
  // Published vectors (h1 h2 h3 h4), covering lengths with and without a tail and with 1 and 2 blocks.
  it.each([
    ['', 0, '00000000000000000000000000000000'],
    ['H', 0, 'f69feb5df45637a0f45637a0f45637a0'],
    ['Hello', 0, '2360ae465e6336c6ad45b3f4ad45b3f4'],
    ['Hello World!', 0, '6bee9883eb1be4f59dfb7172ae3fbea9'],
    ['Hello World! Hello', 0, '453fc5363af752fbaa52e054540a402c'],
    ['Hello World! Hello World!', 0, '86163d2b245b8ee23c4d056024166d77'],
    ['Hello World! Hello World! Hello Worl', 0, '436b1e30e43564f7ad455aa64d1f128a'],
    ['', 0x7fffffff, 'c129af263e0227f33e0227f33e0227f3'],
    ['H', 0x7fffffff, '7318960e1fae47491fae47491fae4749'],
  ])('hashes %j with seed %i', (text, seed, expected) => {
    expect(hex(text, seed)).toBe(expected);
  });
});

function tokens(count: number, start = 1000): number[] {
  return Array.from({ length: count }, (_, i) => (start + i * 7919) % 50_000);
}

describe('chained block hashes', () => {
  it('block 0 is MurmurHash3_x86_128 of 16 zero bytes then the 16 token ids as u32 little-endian', () => {
    const ids = tokens(16);
    const bytes = new Uint8Array(80);
    const view = new DataView(bytes.buffer);
    ids.forEach((id, i) => view.setUint32(16 + 4 * i, id, true));
    expect(blockHash(ROOT_BLOCK_HASH, ids)).toBe(hashWordsToHex(murmurHash3x86_128(bytes, KV_HASH_SEED)));
  });

  it('hashes only full blocks', () => {
    expect(chainBlockHashes(tokens(15))).toEqual([]);
    expect(chainBlockHashes(tokens(16))).toHaveLength(1);
    expect(chainBlockHashes(tokens(47))).toHaveLength(2);
    expect(chainBlockHashes(tokens(48))).toHaveLength(3);
  });

  it('gives the same chain for the same prefix, whatever follows', () => {
    const prefix = tokens(64);
    const a = chainBlockHashes([...prefix, ...tokens(40, 1)]);
    const b = chainBlockHashes([...prefix, ...tokens(40, 2)]);
    expect(a.slice(0, 4)).toEqual(b.slice(0, 4));
    expect(a[4]).not.toBe(b[4]);
  });

  it.each([0, 1, 3, 7])('a change in block %i changes the hashes of that block and later ones only', (k) => {
    const base = tokens(8 * KV_BLOCK_TOKENS);
    const changed = [...base];
    changed[k * KV_BLOCK_TOKENS + 5] = changed[k * KV_BLOCK_TOKENS + 5]! + 1;
    const a = chainBlockHashes(base);
    const b = chainBlockHashes(changed);
    for (let i = 0; i < 8; i++) {
      if (i < k) expect(b[i]).toBe(a[i]);
      else expect(b[i]).not.toBe(a[i]);
    }
  });

  it('chains: the hash of block k depends on the hash of block k-1', () => {
    const ids = tokens(32);
    const [first, second] = chainBlockHashes(ids);
    expect(blockHash(first!, ids, 16)).toBe(second);
    expect(blockHash(ROOT_BLOCK_HASH, ids, 16)).not.toBe(second);
  });

  it('the same 16 ids at different depths hash differently', () => {
    const block = tokens(16);
    const hashes = chainBlockHashes([...block, ...block, ...block]);
    expect(new Set(hashes).size).toBe(3);
  });

  it('is deterministic and spreads: 5,000 one-token changes give 5,000 distinct hashes with balanced bits', () => {
    const base = tokens(16);
    const seen = new Set<string>();
    const ones = new Array<number>(128).fill(0);
    for (let i = 0; i < 5000; i++) {
      const ids = [...base];
      ids[i % 16] = 60_000 + i;
      const hash = blockHash(ROOT_BLOCK_HASH, ids);
      expect(blockHash(ROOT_BLOCK_HASH, ids)).toBe(hash);
      seen.add(hash);
      for (let bit = 0; bit < 128; bit++) {
        if ((Number.parseInt(hash[bit >> 2]!, 16) >> (3 - (bit & 3))) & 1) ones[bit]!++;
      }
    }
    expect(seen.size).toBe(5000);
    // Each bit is set about half the time (binomial σ ≈ 35 for n = 5000).
    for (const count of ones) expect(Math.abs(count - 2500)).toBeLessThan(300);
  });

  it('refuses token ids that are not u32 integers', () => {
    expect(() => chainBlockHashes([...tokens(15), -1])).toThrow(/position 15/);
    expect(() => chainBlockHashes([...tokens(15), 1.5])).toThrow(/token ids are integers/);
    expect(() => chainBlockHashes([...tokens(15), 2 ** 32])).toThrow(/token ids are integers/);
  });

  it('extends a chain without rehashing the shared blocks, to the same result', () => {
    const prompt = tokens(100);
    const promptHashes = chainBlockHashes(prompt);
    const full = [...prompt, ...tokens(60, 9)];
    expect(extendBlockHashes(prompt, promptHashes, full)).toEqual(chainBlockHashes(full));
    const diverged = [...prompt.slice(0, 40), ...tokens(90, 3)];
    expect(extendBlockHashes(prompt, promptHashes, diverged)).toEqual(chainBlockHashes(diverged));
  });
});
