// The C++ frame header (cpp/frame.h) and the TS one (libs/contracts/src/frame.ts) must agree
// byte for byte: encode in one language, parse in the other.
import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeFrameHeader, emptyFrameHeader, encodeFrameHeader, FrameFlags, FrameKind, PayloadDType, type FrameHeader } from '@baton/contracts';
import { loadNative } from '../src/native.js';

const native = loadNative();

function sample(): FrameHeader {
  return {
    ...emptyFrameHeader(FrameKind.TOKENS),
    flags: FrameFlags.LAST_CHUNK | FrameFlags.WANT_LOGITS,
    sequenceId: 0xfffffffe,
    firstPosition: 4096,
    tokenCount: 3,
    dtype: PayloadDType.I32,
    width: 1,
    payloadLength: 12,
    requestId: Uint8Array.from(randomBytes(16)),
    traceId: Uint8Array.from(randomBytes(16)),
    spanId: Uint8Array.from(randomBytes(8)),
    traceFlags: 1,
    temperature: 0.75,
    topP: 0.9,
    topK: 40,
    minP: 0.05,
    repetitionPenalty: 1.1,
    presencePenalty: 0.25,
    frequencyPenalty: -0.5,
    seed: 0xfedcba9876543210n,
    maxTokens: 512,
    planVersion: 7,
  };
}

function normalise(header: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(header)) out[key] = value instanceof Uint8Array ? Buffer.from(value).toString('hex') : typeof value === 'number' ? Math.fround(value) : value;
  return out;
}

describe('frame header: TS ⇄ C++', () => {
  it('C++ parses what TS encodes, field for field', () => {
    const header = sample();
    const parsed = native.parseHeader(encodeFrameHeader(header));
    expect(normalise(parsed)).toEqual(normalise(header as unknown as Record<string, unknown>));
  });

  it('TS decodes what C++ encodes, byte for byte', () => {
    const header = sample();
    const bytes = native.encodeHeader(header);
    expect(Buffer.from(bytes).equals(Buffer.from(encodeFrameHeader(header)))).toBe(true);
    expect(normalise(decodeFrameHeader(bytes) as unknown as Record<string, unknown>)).toEqual(normalise(header as unknown as Record<string, unknown>));
  });

  it.each([
    ['bad magic', (b: Buffer) => b.writeUInt32LE(0xdeadbeef, 0), /bad frame magic/],
    ['wrong version', (b: Buffer) => b.writeUInt16LE(9, 4), /unsupported frame version 9/],
    ['unknown kind', (b: Buffer) => b.writeUInt8(77, 6), /unknown frame kind 77/],
    ['unknown dtype', (b: Buffer) => b.writeUInt8(9, 20), /unknown payload dtype 9/],
    ['length mismatch', (b: Buffer) => b.writeUInt32LE(13, 28), /does not match/],
    ['u32 overflow in tokens × width', (b: Buffer) => (b.writeUInt32LE(0x10000, 16), b.writeUInt32LE(0x10000, 24), b.writeUInt32LE(0, 28)), /does not match/],
  ])('both refuse a header with %s', (_name, corrupt, message) => {
    const bytes = Buffer.from(encodeFrameHeader(sample()));
    corrupt(bytes);
    expect(() => native.parseHeader(bytes)).toThrow(message);
    expect(() => decodeFrameHeader(bytes)).toThrow(message);
  });

  it('refuses a truncated header', () => {
    expect(() => native.parseHeader(Buffer.alloc(127))).toThrow(/truncated/);
  });

  it('HMAC-SHA256 matches node:crypto (empty, short, block-sized and long keys)', () => {
    for (const keyLength of [0, 1, 32, 64, 65, 200]) {
      for (const messageLength of [0, 55, 56, 64, 1000]) {
        const key = randomBytes(keyLength);
        const message = randomBytes(messageLength);
        expect(native.hmacSha256(key, message).toString('hex')).toBe(createHmac('sha256', key).update(message).digest('hex'));
      }
    }
  });
});
