// Pure helpers of the serving loop: which stage a node holds in a plan, where its output goes,
// how queued frames form a batch, the frames a stage sends, and the CONTROL ops it reads.
import {
  FrameFlags, FrameKind, PayloadDType, TokenFinish, emptyFrameHeader,
  type FrameHeader, type Plan, type PlanStage,
} from '@baton/contracts';
import { nextTokenTrace } from '@baton/telemetry';
import type { Connection } from '@baton/transport';

export interface StageRole {
  index: number;
  stage: PlanStage;
  first: boolean;
  last: boolean;
  /** Where this stage's output goes: the next stage, or (last stage) stage 0 for the ring. */
  next: PlanStage;
}

export function roleIn(plan: Plan, nodeId: string): StageRole | undefined {
  const index = plan.stages.findIndex((s) => s.nodeId === nodeId);
  if (index < 0) return undefined;
  const last = index === plan.stages.length - 1;
  return { index, stage: plan.stages[index]!, first: index === 0, last, next: plan.stages[last ? 0 : index + 1]! };
}

export interface WorkItem {
  header: FrameHeader;
  /** First stage: token ids. */
  tokens?: Int32Array;
  /** Later stages: hidden states, tokenCount × embeddingLength. */
  hidden?: Float32Array;
  /** When the frame arrived (epoch ms), kept only for sampled frames while tracing is on. */
  receivedAt?: number;
}

/**
 * Takes the next batch from the queue: at most one item per sequence (a sequence's chunks must
 * run in order), in arrival order, up to `maxTokens` rows (the first item always goes).
 */
export function takeBatch(queue: WorkItem[], maxTokens: number): WorkItem[] {
  const batch: WorkItem[] = [];
  const seen = new Set<number>();
  let rows = 0;
  for (let i = 0; i < queue.length; ) {
    const item = queue[i]!;
    const seq = item.header.sequenceId;
    if (seen.has(seq) || (batch.length > 0 && rows + item.header.tokenCount > maxTokens)) {
      seen.add(seq);
      i++;
      continue;
    }
    seen.add(seq);
    batch.push(item);
    rows += item.header.tokenCount;
    queue.splice(i, 1);
  }
  return batch;
}

/** A HIDDEN frame carrying `rows` hidden states of the sequence in `from` onward. */
export function hiddenFrame(from: FrameHeader, width: number): FrameHeader {
  return { ...from, kind: FrameKind.HIDDEN, dtype: PayloadDType.F32, width, payloadLength: from.tokenCount * width * 4 };
}

/** The sampled token for the gateway: payload [tokenId, TokenFinish]. */
export function tokenOutFrame(from: FrameHeader, position: number): FrameHeader {
  return { ...from, kind: FrameKind.TOKEN_OUT, firstPosition: position, tokenCount: 1, dtype: PayloadDType.I32, width: 2, payloadLength: 8, flags: 0 };
}

/**
 * The ring: the sampled token goes back to stage 0 as the next one-token TOKENS frame. In a traced
 * request it carries the next token's span id and sampling decision (`generated` = tokens the
 * sequence has produced so far; see @baton/telemetry frame-trace) whether or not this process
 * traces: the gateway and the other stages rely on it.
 */
export function ringFrame(from: FrameHeader, position: number, generated = 0): FrameHeader {
  const ring = { ...from, kind: FrameKind.TOKENS, firstPosition: position, tokenCount: 1, dtype: PayloadDType.I32, width: 1, payloadLength: 4, flags: FrameFlags.LAST_CHUNK };
  return from.traceFlags === 0 ? ring : { ...ring, ...nextTokenTrace(from, generated) };
}

export function stopFrame(sequenceId: number, planVersion: number): FrameHeader {
  return { ...emptyFrameHeader(FrameKind.CONTROL), sequenceId, planVersion, flags: FrameFlags.STOP };
}

export function errorFrame(from: FrameHeader, message: string): { header: FrameHeader; payload: Buffer } {
  const payload = Buffer.from(message.slice(0, 4000), 'utf8');
  return { header: { ...from, kind: FrameKind.ERROR, dtype: PayloadDType.U8, tokenCount: payload.length, width: 1, payloadLength: payload.length, flags: 0 }, payload };
}

/** Decides what a sampled token means for its sequence. */
export function finishOf(token: number, generated: number, maxTokens: number, nextPosition: number, maxContext: number, eog: ReadonlySet<number>): TokenFinish {
  if (eog.has(token)) return TokenFinish.EOG;
  if ((maxTokens > 0 && generated >= maxTokens) || nextPosition >= maxContext) return TokenFinish.LENGTH;
  return TokenFinish.CONTINUE;
}

/** A typed view of a received payload, copied only when the Buffer is not 4-byte aligned. */
export function view32<T extends Int32Array | Float32Array>(ctor: { new (buffer: ArrayBufferLike, offset: number, length: number): T; new (length: number): T }, payload: Buffer): T {
  const length = payload.byteLength >>> 2;
  if (payload.byteOffset % 4 === 0) return new ctor(payload.buffer, payload.byteOffset, length);
  const copy = new ctor(length);
  new Uint8Array(copy.buffer).set(payload.subarray(0, length * 4));
  return copy;
}

/** The `op` of a CONTROL frame's JSON payload (`subscribe`, `release` …), if it has one. */
export function controlOp(payload: Buffer): string | undefined {
  try {
    const op = (JSON.parse(payload.toString('utf8')) as { op?: unknown }).op;
    return typeof op === 'string' ? op : undefined;
  } catch {
    return undefined;
  }
}

/** Adds a gateway's connection to the TOKEN_OUT / ERROR subscribers until it closes. */
export function addSubscriber(subscribers: Set<Connection>, connection: Connection): void {
  if (subscribers.has(connection)) return;
  subscribers.add(connection);
  connection.once('close', () => subscribers.delete(connection));
}
