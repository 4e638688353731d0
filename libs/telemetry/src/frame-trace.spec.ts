import { describe, expect, it } from 'vitest';
import {
  FRAME_SAMPLED, formatTraceparent, frameParent, frameTraceFlags, frameTraceInterval, frameTraceOf, fromHex,
  isSampledFrame, nextTokenSpanId, nextTokenTrace, parseTraceparent, toHex, type FrameTrace,
} from './frame-trace.js';

const traceId = fromHex('4bf92f3577b34da6a3ce929d0e0e4736', 16);
const spanId = fromHex('00f067aa0ba902b7', 8);

describe('frame trace flags', () => {
  it('with every token traced the byte is W3C sampled (0x01)', () => {
    expect(frameTraceFlags(true, 1)).toBe(FRAME_SAMPLED);
    expect(frameTraceFlags(false, 1)).toBe(0);
  });

  it('carry the sampling interval in bits 1–7', () => {
    for (const n of [1, 2, 5, 64, 128]) {
      expect(frameTraceInterval(frameTraceFlags(true, n))).toBe(n);
      expect(frameTraceInterval(frameTraceFlags(false, n))).toBe(n);
      expect(frameTraceFlags(true, n) & FRAME_SAMPLED).toBe(1);
      expect(frameTraceFlags(false, n) & FRAME_SAMPLED).toBe(0);
    }
    expect(() => frameTraceFlags(true, 129)).toThrow(RangeError);
    expect(() => frameTraceFlags(true, 0)).toThrow(RangeError);
  });

  it('a frame is sampled only with the bit set and non-zero ids', () => {
    expect(isSampledFrame({ traceId, spanId, traceFlags: 1 })).toBe(true);
    expect(isSampledFrame({ traceId, spanId, traceFlags: 4 })).toBe(false);
    expect(isSampledFrame({ traceId: new Uint8Array(16), spanId, traceFlags: 1 })).toBe(false);
    expect(isSampledFrame({ traceId, spanId: new Uint8Array(8), traceFlags: 1 })).toBe(false);
  });
});

describe('the next token round the ring', () => {
  it('derives a deterministic, distinct, non-zero span id in the same trace', () => {
    const a = nextTokenSpanId(traceId, spanId);
    expect(a).toHaveLength(8);
    expect(toHex(a)).toBe(toHex(nextTokenSpanId(traceId, spanId)));
    expect(toHex(a)).not.toBe(toHex(spanId));
    const ids = new Set<string>();
    let current: Uint8Array = spanId;
    for (let i = 0; i < 1000; i++) {
      current = nextTokenSpanId(traceId, current);
      ids.add(toHex(current));
    }
    expect(ids.size).toBe(1000);
  });

  it('leaves an untraced frame untraced (same object, no hashing)', () => {
    const untraced: FrameTrace = { traceId: new Uint8Array(16), spanId: new Uint8Array(8), traceFlags: 0 };
    expect(nextTokenTrace(untraced, 3)).toBe(untraced);
  });

  it('samples tokens 1, N+1, 2N+1, … with every:N', () => {
    const n = 3;
    let frame: FrameTrace = { traceId, spanId, traceFlags: frameTraceFlags(true, n) }; // token 1
    const sampled = [isSampledFrame(frame)];
    for (let generated = 1; generated < 10; generated++) {
      frame = nextTokenTrace(frame, generated);
      expect(frame.traceId).toBe(traceId);
      sampled.push(isSampledFrame(frame));
    }
    expect(sampled).toEqual([true, false, false, true, false, false, true, false, false, true]);
  });

  it('samples every token with all', () => {
    let frame: FrameTrace = { traceId, spanId, traceFlags: frameTraceFlags(true, 1) };
    for (let generated = 1; generated < 5; generated++) {
      frame = nextTokenTrace(frame, generated);
      expect(frame.traceFlags).toBe(1);
    }
  });
});

describe('span contexts', () => {
  it('a frame names its span as a sampled parent; and back', () => {
    const parent = frameParent({ traceId, spanId, traceFlags: frameTraceFlags(true, 4) });
    expect(parent).toEqual({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1 });
    const fields = frameTraceOf(parent, false, 4);
    expect(toHex(fields.traceId)).toBe(parent.traceId);
    expect(toHex(fields.spanId)).toBe(parent.spanId);
    expect(fields.traceFlags).toBe(frameTraceFlags(false, 4));
  });

  it('parses and formats W3C traceparent', () => {
    const value = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    expect(parseTraceparent(value)).toEqual({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1 });
    expect(formatTraceparent(parseTraceparent(value)!)).toBe(value);
    expect(parseTraceparent('00-00000000000000000000000000000000-00f067aa0ba902b7-01')).toBeUndefined();
    expect(parseTraceparent('ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')).toBeUndefined();
    expect(parseTraceparent('garbage')).toBeUndefined();
    expect(parseTraceparent(undefined)).toBeUndefined();
  });
});
