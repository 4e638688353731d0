import { describe, expect, it } from 'vitest';
import { Prng } from './prng.js';
import { dequantize, f16ToF32, f32ToF16, quantize, quantizedBytes } from './quant.js';
import { GgmlType } from './types.js';

/**
 * Uniform values whose magnitude varies over three orders of magnitude from one 256-value super
 * block to the next and by up to ~3× between 32-value groups inside one, so every scale bit is
 * exercised ('wide' varies the groups themselves over three orders, for the one-scale formats).
 */
function sample(n: number, key: string, vary: 'none' | 'k' | 'wide' = 'k'): Float32Array {
  const x = new Float32Array(n);
  new Prng(key).fillUniform(x, 1);
  for (let i = 0; i < n; i++) {
    const group = Math.floor(i / 32);
    const block = Math.floor(i / 256);
    if (vary === 'k') x[i]! *= 10 ** (((block * 3) % 7) / 2 - 1.5) * 10 ** (((group * 3) % 5) / 8);
    if (vary === 'wide') x[i]! *= 10 ** (((group * 7) % 13) / 4 - 1.5);
  }
  return x;
}

function roundTrip(type: GgmlType, x: Float32Array): Float32Array {
  const bytes = new Uint8Array(quantizedBytes(type, x.length));
  expect(quantize(type, x, bytes)).toBe(bytes.length);
  return dequantize(type, bytes, x.length);
}

/** Largest error in each group of `group` values, relative to that group's largest magnitude. */
function worstRelativeError(x: Float32Array, y: Float32Array, group: number): number {
  let worst = 0;
  for (let g = 0; g < x.length; g += group) {
    let amax = 0;
    let err = 0;
    for (let i = g; i < g + group; i++) {
      amax = Math.max(amax, Math.abs(x[i]!));
      err = Math.max(err, Math.abs(x[i]! - y[i]!));
    }
    if (amax > 0) worst = Math.max(worst, err / amax);
  }
  return worst;
}

describe('f16 conversion', () => {
  it('matches IEEE half bits, rounding to nearest even', () => {
    const cases: [number, number][] = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff], [65520, 0x7c00],
      [1e9, 0x7c00], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002], [2 ** -14, 0x0400],
      [0.1, 0x2e66], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [Infinity, 0x7c00], [-Infinity, 0xfc00],
    ];
    for (const [value, bits] of cases) expect(f32ToF16(value), String(value)).toBe(bits);
    expect(Number.isNaN(f16ToF32(f32ToF16(NaN)))).toBe(true);
    for (let h = 0; h < 0x7c00; h += 7) expect(f32ToF16(f16ToF32(h))).toBe(h);
  });
});

describe('quantizers against the dequantize reference', () => {
  const x = sample(4096, 'quant', 'wide');
  const xk = sample(4096, 'quant-k', 'k');
  it('F32 and F16', () => {
    expect(roundTrip(GgmlType.F32, x)).toEqual(x);
    expect(worstRelativeError(x, roundTrip(GgmlType.F16, x), 1)).toBeLessThan(2 ** -11);
  });
  it('Q8_0: error at most half a step (amax / 254) plus f16 scale rounding', () => {
    expect(worstRelativeError(x, roundTrip(GgmlType.Q8_0, x), 32)).toBeLessThan(1 / 254 + 1e-3);
  });
  it('Q4_0: error at most one step (amax / 8)', () => {
    expect(worstRelativeError(x, roundTrip(GgmlType.Q4_0, x), 32)).toBeLessThanOrEqual(1 / 8 + 1e-3);
  });
  it('Q4_K: error within about one 4-bit step of each 32-value sub-block', () => {
    // The step is the sub-block's range / 15 (range ≤ 2 amax) plus the rounding of its 6-bit scale
    // and min against the super-block's largest: allow 0.15 of the sub-block's amax.
    expect(worstRelativeError(xk, roundTrip(GgmlType.Q4_K, xk), 32)).toBeLessThan(0.15);
    const uniform = sample(4096, 'quant-uniform', 'none');
    expect(worstRelativeError(uniform, roundTrip(GgmlType.Q4_K, uniform), 32)).toBeLessThan(0.1);
  });
  it('Q6_K: error within about one 6-bit step of each 16-value sub-block', () => {
    const uniform = sample(4096, 'quant-uniform', 'none');
    expect(worstRelativeError(uniform, roundTrip(GgmlType.Q6_K, uniform), 16)).toBeLessThan(1 / 32 + 0.01);
    expect(worstRelativeError(xk, roundTrip(GgmlType.Q6_K, xk), 16)).toBeLessThan(1 / 32 + 0.02);
  });

  it('decodes hand-built blocks in ggml layout', () => {
    // Q8_0: d = 0.5 (f16 0x3800), qs = -3, 4.
    const q8 = new Uint8Array(34);
    q8[0] = 0x00; q8[1] = 0x38; q8[2] = 0xfd; q8[3] = 4;
    expect(Array.from(dequantize(GgmlType.Q8_0, q8, 32).subarray(0, 3))).toEqual([-1.5, 2, 0]);
    // Q4_0: d = 2, byte 0 = low nibble 9 (element 0), high nibble 3 (element 16).
    const q4 = new Uint8Array(18).fill(0x88);
    q4[0] = 0x00; q4[1] = 0x40; q4[2] = 0x39;
    const d4 = dequantize(GgmlType.Q4_0, q4, 32);
    expect([d4[0], d4[16], d4[1]]).toEqual([2, -10, 0]);
    // Q4_K: d = 1, dmin = 1; sub-block 5 has scale 37 (low 4 bits in scales[9], high 2 in scales[1])
    // and min 50 (low 4 bits in scales[9] high nibble, high 2 bits in scales[5]).
    const qk = new Uint8Array(144);
    qk[1] = 0x3c; qk[3] = 0x3c;
    qk[4 + 9] = (37 & 0xf) | ((50 & 0xf) << 4);
    qk[4 + 1] = (37 >> 4) << 6;
    qk[4 + 5] = (50 >> 4) << 6;
    qk[16 + 64 + 3] = 0x20; // sub-block 5 = high nibbles of bytes 64..95 → element 160 + 3 gets q = 2
    const dk = dequantize(GgmlType.Q4_K, qk, 256);
    expect(dk[163]).toBe(37 * 2 - 50);
    expect(dk[160]).toBe(-50);
    expect(dk[0]).toBe(0);
    // Q6_K: d = 1 at byte 208; scale of sub-block 6 (elements 96..111) = -3; element 97 = q 40 - 32 = 8:
    // low 4 bits in the high nibble of ql[33], top 2 bits in bits 6..7 of qh[1].
    const q6 = new Uint8Array(210);
    q6[209] = 0x3c;
    q6[192 + 6] = 0xfd;
    q6[33] = (40 & 0xf) << 4;
    q6[128 + 1] = (40 >> 4) << 6;
    const d6 = dequantize(GgmlType.Q6_K, q6, 256);
    expect(d6[97]).toBe(-3 * 8);
  });
});
