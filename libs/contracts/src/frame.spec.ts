import { describe, expect, it } from 'vitest';
import { FRAME_HEADER_BYTES, FRAME_MAGIC, FrameError, FrameFlags, FrameKind, PayloadDType, decodeFrameHeader, emptyFrameHeader, encodeFrameHeader } from './frame.js';

function sample() {
  return {
    ...emptyFrameHeader(FrameKind.HIDDEN),
    flags: FrameFlags.LAST_CHUNK,
    sequenceId: 7,
    firstPosition: 1234,
    tokenCount: 3,
    dtype: PayloadDType.F32,
    width: 1024,
    payloadLength: 3 * 1024 * 4,
    requestId: Uint8Array.from({ length: 16 }, (_, i) => i + 1),
    traceId: Uint8Array.from({ length: 16 }, (_, i) => 255 - i),
    spanId: Uint8Array.from({ length: 8 }, (_, i) => i * 3),
    traceFlags: 1,
    temperature: 0.75,
    topP: 0.9,
    topK: 40,
    minP: 0.05,
    repetitionPenalty: 1.1,
    presencePenalty: 0.5,
    frequencyPenalty: 0.25,
    seed: 0xfedcba9876543210n,
    maxTokens: 256,
    planVersion: 9,
  };
}

describe('frame header', () => {
  it('round-trips every field through 128 bytes', () => {
    const header = sample();
    const bytes = encodeFrameHeader(header);
    expect(bytes.length).toBe(FRAME_HEADER_BYTES);
    const back = decodeFrameHeader(bytes);
    expect(back.temperature).toBeCloseTo(0.75, 6);
    expect(back.topP).toBeCloseTo(0.9, 6);
    expect(back.minP).toBeCloseTo(0.05, 6);
    expect(back.repetitionPenalty).toBeCloseTo(1.1, 6);
    const { temperature, topP, minP, repetitionPenalty, ...rest } = back;
    const { temperature: _t, topP: _p, minP: _m, repetitionPenalty: _r, ...expected } = header;
    expect(rest).toEqual(expected);
  });

  it('is little-endian with the documented offsets', () => {
    const bytes = encodeFrameHeader(sample());
    const view = new DataView(bytes.buffer);
    expect(view.getUint32(0, true)).toBe(FRAME_MAGIC);
    expect(String.fromCharCode(...bytes.slice(0, 4))).toBe('BTN1');
    expect(view.getUint8(6)).toBe(FrameKind.HIDDEN);
    expect(view.getUint32(12, true)).toBe(1234);
    expect(view.getUint32(28, true)).toBe(12288);
    expect(view.getBigUint64(104, true)).toBe(0xfedcba9876543210n);
  });

  it('encodes at an offset inside a larger buffer', () => {
    const target = new Uint8Array(300);
    encodeFrameHeader(sample(), target, 100);
    expect(decodeFrameHeader(target, 100).sequenceId).toBe(7);
  });

  it.each([
    ['truncated', (b: Uint8Array) => b.slice(0, 100), /truncated/],
    ['bad magic', (b: Uint8Array) => ((b[0] = 0), b), /magic/],
    ['future version', (b: Uint8Array) => ((b[4] = 99), b), /version 99/],
    ['unknown kind', (b: Uint8Array) => ((b[6] = 42), b), /kind 42/],
    ['unknown dtype', (b: Uint8Array) => ((b[20] = 77), b), /dtype 77/],
    ['payload length disagrees with shape', (b: Uint8Array) => ((b[28] = 1), b), /does not match/],
  ])('refuses a header with %s', (_name, mutate, message) => {
    expect(() => decodeFrameHeader(mutate(encodeFrameHeader(sample())))).toThrow(message);
  });

  it('refuses to encode out-of-range fields', () => {
    expect(() => encodeFrameHeader({ ...sample(), sequenceId: -1 })).toThrow(FrameError);
    expect(() => encodeFrameHeader({ ...sample(), requestId: new Uint8Array(3) })).toThrow(/16 bytes/);
    expect(() => encodeFrameHeader({ ...sample(), seed: 1n << 64n })).toThrow(/u64/);
  });
});
