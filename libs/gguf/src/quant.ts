// Quantizers and dequantizers for the ggml block formats Baton writes: F32, F16, Q8_0, Q4_0,
// Q4_K and Q6_K, byte for byte in ggml's block layouts (ggml-common.h). The quantizers are our own
// simple round-to-nearest versions (not ggml's iterative searches); any reader of the format
// decodes them exactly like ggml's. Tight loops over typed arrays: no per-element allocation.
import { GgmlType, GGML_TYPE_LAYOUT, ggmlTypeName } from './types.js';

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** float → IEEE half bits, round to nearest even (what F16C / ggml do). */
export function f32ToF16(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const bits = x & 0x7fffffff;
  // Fast path, every value that stays a normal half (2^-14 ≤ |v| < 65520): round the mantissa to
  // nearest even by integer addition (a carry correctly bumps the exponent), then rebias.
  if (bits >= 0x38800000 && bits < 0x477ff000) return sign | (((bits + 0xfff + ((bits >>> 13) & 1)) >>> 13) - 0x1c000);
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) !== 0)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++;
  return sign | h;
}

let halfTable: Float32Array | undefined;
/** IEEE half bits → float. */
export function f16ToF32(h: number): number {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) {
      const sign = i & 0x8000 ? -1 : 1;
      const exp = (i >>> 10) & 0x1f;
      const mant = i & 0x3ff;
      halfTable[i] = exp === 0 ? sign * mant * 2 ** -24 : exp === 0x1f ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
    }
  }
  return halfTable[h & 0xffff]!;
}

/** Round half away from zero, like C's roundf. */
function roundAway(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

function putF16(dst: Uint8Array, at: number, value: number): number {
  const h = f32ToF16(value);
  dst[at] = h & 0xff;
  dst[at + 1] = h >>> 8;
  return f16ToF32(h);
}

function getF16(src: Uint8Array, at: number): number {
  return f16ToF32(src[at]! | (src[at + 1]! << 8));
}

export const QUANTIZABLE_TYPES: readonly GgmlType[] = [GgmlType.F32, GgmlType.F16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q6_K];

/** Bytes that `count` elements of `type` take (count must be a whole number of blocks). */
export function quantizedBytes(type: GgmlType, count: number): number {
  const layout = GGML_TYPE_LAYOUT[type];
  if (!layout || count % layout.blockSize !== 0) throw new RangeError(`${count} elements is not a whole number of ${ggmlTypeName(type)} blocks`);
  return (count / layout.blockSize) * layout.blockBytes;
}

/**
 * Encodes `src` (a whole number of blocks) as `type` into `dst` (at least quantizedBytes bytes).
 * Returns the number of bytes written.
 */
export function quantize(type: GgmlType, src: Float32Array, dst: Uint8Array): number {
  const bytes = quantizedBytes(type, src.length);
  if (dst.length < bytes) throw new RangeError(`destination holds ${dst.length} bytes, needs ${bytes}`);
  switch (type) {
    case GgmlType.F32:
      dst.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
      break;
    case GgmlType.F16:
      for (let i = 0; i < src.length; i++) {
        const h = f32ToF16(src[i]!);
        dst[2 * i] = h & 0xff;
        dst[2 * i + 1] = h >>> 8;
      }
      break;
    case GgmlType.Q8_0: quantizeQ8_0(src, dst); break;
    case GgmlType.Q4_0: quantizeQ4_0(src, dst); break;
    case GgmlType.Q4_K: quantizeQ4_K(src, dst); break;
    case GgmlType.Q6_K: quantizeQ6_K(src, dst); break;
    default: throw new RangeError(`quantizing to ${ggmlTypeName(type)} is not supported`);
  }
  return bytes;
}

function quantizeQ8_0(src: Float32Array, dst: Uint8Array): void {
  const qs = new Int8Array(dst.buffer, dst.byteOffset, dst.byteLength);
  const nb = src.length / 32;
  for (let b = 0; b < nb; b++) {
    const x = b * 32;
    const o = b * 34;
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(src[x + j]!));
    const d = amax / 127;
    const id = d ? 1 / d : 0;
    putF16(dst, o, d);
    // Round to nearest without a data-dependent branch (random weights would mispredict every
    // other one): |v| <= 127, so v + 128.5 > 0 and truncation is floor. Ties round up.
    for (let j = 0; j < 32; j++) qs[o + 2 + j] = ((src[x + j]! * id + 128.5) | 0) - 128;
  }
}

function quantizeQ4_0(src: Float32Array, dst: Uint8Array): void {
  const nb = src.length / 32;
  for (let b = 0; b < nb; b++) {
    const x = b * 32;
    const o = b * 18;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = src[x + j]!;
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = max / -8;
    const id = d ? 1 / d : 0;
    putF16(dst, o, d);
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, Math.trunc(src[x + j]! * id + 8.5));
      const q1 = Math.min(15, Math.trunc(src[x + 16 + j]! * id + 8.5));
      dst[o + 2 + j] = q0 | (q1 << 4);
    }
  }
}

const subScale = new Float32Array(16);
const subMin = new Float32Array(16);
const levels = new Uint8Array(256);

function quantizeQ4_K(src: Float32Array, dst: Uint8Array): void {
  const nb = src.length / 256;
  for (let b = 0; b < nb; b++) {
    const x = b * 256;
    const o = b * 144;
    let maxScale = 0;
    let maxMin = 0;
    for (let s = 0; s < 8; s++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let j = 0; j < 32; j++) {
        const v = src[x + 32 * s + j]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      if (lo > 0) lo = 0;
      subScale[s] = (hi - lo) / 15;
      subMin[s] = -lo;
      if (subScale[s]! > maxScale) maxScale = subScale[s]!;
      if (subMin[s]! > maxMin) maxMin = subMin[s]!;
    }
    const d = putF16(dst, o, maxScale / 63);
    const dmin = putF16(dst, o + 2, maxMin / 63);
    const sc = o + 4;
    dst.fill(0, sc, sc + 12);
    for (let s = 0; s < 8; s++) {
      // Never round a non-zero scale down to 0: that would flatten the whole sub-block.
      const ls = d > 0 ? Math.min(63, Math.max(subScale[s]! > 0 ? 1 : 0, Math.round(subScale[s]! / d))) : 0;
      const lm = dmin > 0 ? Math.min(63, Math.round(subMin[s]! / dmin)) : 0;
      if (s < 4) {
        dst[sc + s] = ls;
        dst[sc + s + 4] = lm;
      } else {
        dst[sc + s + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
        dst[sc + s - 4]! |= (ls >>> 4) << 6;
        dst[sc + s]! |= (lm >>> 4) << 6;
      }
      const scale = d * ls;
      const min = dmin * lm;
      const inv = scale > 0 ? 1 / scale : 0;
      // (v + min) * inv >= -0.5 up to rounding, so +0.5 and truncation rounds to nearest.
      for (let j = 0; j < 32; j++) levels[32 * s + j] = Math.min(15, Math.max(0, ((src[x + 32 * s + j]! + min) * inv + 0.5) | 0));
    }
    for (let j = 0; j < 256; j += 64) {
      for (let l = 0; l < 32; l++) dst[o + 16 + j / 2 + l] = levels[j + l]! | (levels[j + l + 32]! << 4);
    }
  }
}

function quantizeQ6_K(src: Float32Array, dst: Uint8Array): void {
  const nb = src.length / 256;
  for (let b = 0; b < nb; b++) {
    const x = b * 256;
    const o = b * 210;
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let s = 0; s < 16; s++) {
      let amax = 0;
      let max = 0;
      for (let j = 0; j < 16; j++) {
        const v = src[x + 16 * s + j]!;
        if (Math.abs(v) > amax) {
          amax = Math.abs(v);
          max = v;
        }
      }
      subScale[s] = max / -32;
      if (Math.abs(subScale[s]!) > maxAbsScale) {
        maxAbsScale = Math.abs(subScale[s]!);
        maxScale = subScale[s]!;
      }
    }
    const iscale = maxScale ? -128 / maxScale : 0;
    const d = putF16(dst, o + 208, iscale ? 1 / iscale : 0);
    for (let s = 0; s < 16; s++) {
      const q = Math.min(127, roundAway(iscale * subScale[s]!));
      dst[o + 192 + s] = q & 0xff;
      const eff = d * q;
      const inv = eff ? 1 / eff : 0;
      // Level = round(v / eff) + 32 in 0..63; v / eff + 32.5 > 0 up to clamping, so truncation floors.
      for (let j = 0; j < 16; j++) levels[16 * s + j] = Math.min(63, Math.max(0, (src[x + 16 * s + j]! * inv + 32.5) | 0));
    }
    for (let j = 0; j < 256; j += 128) {
      const ql = o + j / 2;
      const qh = o + 128 + j / 4;
      for (let l = 0; l < 32; l++) {
        const q1 = levels[j + l]!;
        const q2 = levels[j + l + 32]!;
        const q3 = levels[j + l + 64]!;
        const q4 = levels[j + l + 96]!;
        dst[ql + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
        dst[ql + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4);
        dst[qh + l] = (q1 >>> 4) | ((q2 >>> 4) << 2) | ((q3 >>> 4) << 4) | ((q4 >>> 4) << 6);
      }
    }
  }
}

/** Decodes `count` elements of `type` from `src` (ggml's dequantize_row_* semantics). */
export function dequantize(type: GgmlType, src: Uint8Array, count: number): Float32Array {
  const bytes = quantizedBytes(type, count);
  if (src.length < bytes) throw new RangeError(`source holds ${src.length} bytes, ${count} ${ggmlTypeName(type)} elements need ${bytes}`);
  const out = new Float32Array(count);
  switch (type) {
    case GgmlType.F32:
      new Uint8Array(out.buffer).set(src.subarray(0, bytes));
      break;
    case GgmlType.F16:
      for (let i = 0; i < count; i++) out[i] = getF16(src, 2 * i);
      break;
    case GgmlType.Q8_0:
      for (let b = 0; b < count / 32; b++) {
        const d = getF16(src, b * 34);
        for (let j = 0; j < 32; j++) out[b * 32 + j] = d * ((src[b * 34 + 2 + j]! << 24) >> 24);
      }
      break;
    case GgmlType.Q4_0:
      for (let b = 0; b < count / 32; b++) {
        const d = getF16(src, b * 18);
        for (let j = 0; j < 16; j++) {
          const q = src[b * 18 + 2 + j]!;
          out[b * 32 + j] = d * ((q & 0xf) - 8);
          out[b * 32 + 16 + j] = d * ((q >>> 4) - 8);
        }
      }
      break;
    case GgmlType.Q4_K:
      for (let b = 0; b < count / 256; b++) {
        const o = b * 144;
        const d = getF16(src, o);
        const dmin = getF16(src, o + 2);
        const sc = src.subarray(o + 4, o + 16);
        const scaleMin = (j: number): [number, number] =>
          j < 4 ? [sc[j]! & 63, sc[j + 4]! & 63] : [(sc[j + 4]! & 0xf) | ((sc[j - 4]! >>> 6) << 4), (sc[j + 4]! >>> 4) | ((sc[j]! >>> 6) << 4)];
        let y = b * 256;
        let q = o + 16;
        for (let j = 0, is = 0; j < 256; j += 64, is += 2) {
          const [s1, m1] = scaleMin(is);
          const [s2, m2] = scaleMin(is + 1);
          for (let l = 0; l < 32; l++) out[y + l] = d * s1 * (src[q + l]! & 0xf) - dmin * m1;
          for (let l = 0; l < 32; l++) out[y + 32 + l] = d * s2 * (src[q + l]! >>> 4) - dmin * m2;
          q += 32;
          y += 64;
        }
      }
      break;
    case GgmlType.Q6_K:
      for (let b = 0; b < count / 256; b++) {
        const o = b * 210;
        const d = getF16(src, o + 208);
        let y = b * 256;
        let ql = o;
        let qh = o + 128;
        let sc = o + 192;
        for (let n = 0; n < 256; n += 128) {
          for (let l = 0; l < 32; l++) {
            const is = l >>> 4;
            const h = src[qh + l]!;
            const q1 = ((src[ql + l]! & 0xf) | ((h & 3) << 4)) - 32;
            const q2 = ((src[ql + l + 32]! & 0xf) | (((h >>> 2) & 3) << 4)) - 32;
            const q3 = ((src[ql + l]! >>> 4) | (((h >>> 4) & 3) << 4)) - 32;
            const q4 = ((src[ql + l + 32]! >>> 4) | (((h >>> 6) & 3) << 4)) - 32;
            const s = (i: number) => (src[sc + is + i]! << 24) >> 24;
            out[y + l] = d * s(0) * q1;
            out[y + l + 32] = d * s(2) * q2;
            out[y + l + 64] = d * s(4) * q3;
            out[y + l + 96] = d * s(6) * q4;
          }
          y += 128;
          ql += 64;
          qh += 32;
          sc += 8;
        }
      }
      break;
    default:
      throw new RangeError(`dequantizing ${ggmlTypeName(type)} is not supported`);
  }
  return out;
}
