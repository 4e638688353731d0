// Link probe: round-trip time and bandwidth between two nodes over a transport connection, using
// PROBE frames. Every Connection answers PROBE requests by default with an empty PROBE frame
// flagged REPLY and the same sequenceId, so any Baton node can be probed without extra set-up.
import { emptyFrameHeader, FrameKind, PayloadDType } from '@baton/contracts';
import { connect, Connection } from './transport.js';
import type { ConnectOptions } from './options.js';

export interface ProbeOptions {
  /** Empty round trips for the RTT figures. Default 20. */
  rounds?: number;
  /** Bytes per bandwidth frame. Default 1 MiB. */
  bytes?: number;
  /** Bandwidth frames, sent back to back. Default 8. */
  frames?: number;
  /** Give up after this long. Default 10 s. */
  timeoutMs?: number;
}

export interface LinkProbeResult {
  rttP50Ms: number;
  rttP99Ms: number;
  bandwidthBytesPerSec: number;
}

let nextProbeId = 1;

function integer(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`probeLink(): ${name} must be an integer from ${min} to ${max}, got ${value}`);
  return value;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`probeLink(): ${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Measures the link behind `target` (an open Connection, or an endpoint to connect to, probe and
 * close). RTT: `rounds` sequential empty PROBE round trips (JS on both ends included). Bandwidth:
 * `frames` PROBE frames of `bytes` each, sent back to back, each answered with an empty reply;
 * bytes / (time to the last reply − one RTT).
 */
export async function probeLink(target: Connection | ConnectOptions, options: ProbeOptions = {}): Promise<LinkProbeResult> {
  const rounds = integer('rounds', options.rounds, 20, 1, 100_000);
  const bytes = integer('bytes', options.bytes, 1 << 20, 1, 1 << 30);
  const frames = integer('frames', options.frames, 8, 1, 10_000);
  const timeoutMs = integer('timeoutMs', options.timeoutMs, 10_000, 1, 3_600_000);
  const owned = !(target instanceof Connection);
  const connection = target instanceof Connection ? target : await connect(target);
  try {
    return await withTimeout(measure(connection, rounds, bytes, frames), timeoutMs, `probing ${connection.remoteAddress}`);
  } finally {
    if (owned) await connection.close();
  }
}

async function measure(connection: Connection, rounds: number, bytes: number, frames: number): Promise<LinkProbeResult> {
  const header = emptyFrameHeader(FrameKind.PROBE);
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const id = nextProbeId++ >>> 0;
    const reply = connection._awaitProbeReply(id);
    const started = process.hrtime.bigint();
    connection.send({ ...header, sequenceId: id });
    await reply;
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  times.sort((a, b) => a - b);
  const rttP50Ms = percentile(times, 50);
  const payload = Buffer.alloc(bytes);
  const bulk = { ...header, dtype: PayloadDType.U8, tokenCount: 1, width: bytes };
  const replies: Promise<unknown>[] = [];
  const started = process.hrtime.bigint();
  for (let i = 0; i < frames; i++) {
    const id = nextProbeId++ >>> 0;
    replies.push(connection._awaitProbeReply(id));
    if (!connection.send({ ...bulk, sequenceId: id }, payload)) await new Promise<void>((resolve) => connection.once('drain', () => resolve()));
  }
  await Promise.all(replies);
  const seconds = Math.max(Number(process.hrtime.bigint() - started) / 1e9 - rttP50Ms / 1000, 1e-6);
  return { rttP50Ms, rttP99Ms: percentile(times, 99), bandwidthBytesPerSec: (bytes * frames) / seconds };
}
