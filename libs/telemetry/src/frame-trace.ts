// The trace context a data-plane frame carries (pure functions).
//
// Every frame header has W3C traceId (16 bytes), spanId (8) and traceFlags (1). In a Baton frame:
//  - traceId is the request's trace; all zero when the request is not traced (then traceFlags is 0
//    too, and no process does anything for the frame);
//  - spanId is the span of the generated token this frame works for: every stage's forward (and
//    hop) span for the frame is its child;
//  - traceFlags bit 0 is W3C `sampled`: this token is traced; bits 1–7 hold N − 1 of the request's
//    `every:N` token sampling (0 for every token). Frames never leave Baton as a traceparent
//    header, so these otherwise-reserved bits are ours; with `all` the byte is exactly W3C's 0x01.
//
// Decoding closes the ring without the gateway: the last stage sends each sampled token straight
// back to stage 0 as the next TOKENS frame. It derives that next token's span id from the current
// one (nextTokenSpanId: a hash of trace id and span id) and whether it is sampled (token k is
// traced when k ≡ 1 mod N), and the TOKEN_OUT frame tells the gateway both, so the gateway
// records token k's span under the very id the stages used as parent.
import { createHash } from 'node:crypto';
import type { FrameHeader } from '@baton/contracts';
import { MAX_TRACE_EVERY } from './config.js';

export type FrameTrace = Pick<FrameHeader, 'traceId' | 'spanId' | 'traceFlags'>;

/** The W3C sampled bit of a frame's traceFlags. */
export const FRAME_SAMPLED = 0x01;

/** A W3C span context as OpenTelemetry's API spells it (hex ids). */
export interface HexSpanContext {
  traceId: string;
  spanId: string;
  traceFlags: number;
}

/** traceFlags of a frame of a traced request: the sampled bit and the token sampling interval. */
export function frameTraceFlags(sampled: boolean, interval: number): number {
  if (!Number.isInteger(interval) || interval < 1 || interval > MAX_TRACE_EVERY) throw new RangeError(`token sampling interval ${interval} is not an integer from 1 to ${MAX_TRACE_EVERY}`);
  return (sampled ? FRAME_SAMPLED : 0) | ((interval - 1) << 1);
}

/** Every how many tokens the frame's request traces one (1 = all). */
export function frameTraceInterval(traceFlags: number): number {
  return ((traceFlags & 0xff) >>> 1) + 1;
}

/** Whether this frame's work is traced (its request is traced and this token sampled). */
export function isSampledFrame(header: FrameTrace): boolean {
  return (header.traceFlags & FRAME_SAMPLED) !== 0 && !isZero(header.traceId) && !isZero(header.spanId);
}

function isZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** The span id of the token after the one whose span is `spanId` (deterministic, never zero). */
export function nextTokenSpanId(traceId: Uint8Array, spanId: Uint8Array): Uint8Array {
  const id = new Uint8Array(createHash('sha256').update(traceId).update(spanId).digest().subarray(0, 8));
  if (isZero(id)) id[7] = 1;
  return id;
}

/**
 * The trace fields of the frame that carries the next token round the ring, given the frame
 * that produced the current one and how many tokens the sequence has generated so far. An
 * untraced frame (traceFlags 0) stays untraced, at no cost.
 */
export function nextTokenTrace(current: FrameTrace, generated: number): FrameTrace {
  if (current.traceFlags === 0) return current;
  const interval = frameTraceInterval(current.traceFlags);
  return {
    traceId: current.traceId,
    spanId: nextTokenSpanId(current.traceId, current.spanId),
    // token `generated + 1` is next: traced when it is 1, N + 1, 2N + 1, …
    traceFlags: frameTraceFlags(generated % interval === 0, interval),
  };
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function fromHex(hex: string, bytes: number): Uint8Array {
  if (hex.length !== bytes * 2 || !/^[0-9a-f]*$/.test(hex)) throw new RangeError(`expected ${bytes} bytes of lowercase hex, got "${hex}"`);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** The span context a frame names as its parent (sampled: only sampled frames get spans). */
export function frameParent(header: FrameTrace): HexSpanContext {
  return { traceId: toHex(header.traceId), spanId: toHex(header.spanId), traceFlags: FRAME_SAMPLED };
}

/** Frame trace fields for work under `span`, in a request tracing one token in `interval`. */
export function frameTraceOf(span: HexSpanContext, sampled: boolean, interval: number): FrameTrace {
  return { traceId: fromHex(span.traceId, 16), spanId: fromHex(span.spanId, 8), traceFlags: frameTraceFlags(sampled, interval) };
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Parses a W3C traceparent header; undefined when it is malformed or names an invalid context. */
export function parseTraceparent(value: string | undefined): HexSpanContext | undefined {
  const match = value === undefined ? null : TRACEPARENT.exec(value.trim());
  if (!match || match[1] === 'ff') return undefined;
  const [, , traceId, spanId, flags] = match;
  if (/^0+$/.test(traceId!) || /^0+$/.test(spanId!)) return undefined;
  return { traceId: traceId!, spanId: spanId!, traceFlags: parseInt(flags!, 16) };
}

export function formatTraceparent(context: HexSpanContext): string {
  return `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}
