// One loaded stage: frames in (TOKENS on the first stage, HIDDEN after it) → queued → batched
// into one engine forward per turn → HIDDEN to the next stage, or, on the last stage, a sampled
// token to the gateway (TOKEN_OUT) and round the ring to stage 0 as the next TOKENS frame.
// CONTROL frames: `subscribe` (this connection gets TOKEN_OUT), STOP (drop the sequence, free
// its KV, pass the STOP on), `release` (the generation ended but its KV stays cached, idle, for
// the KV-cache manager to reuse or free; passed on). Frames of stopped sequences are dropped.
// With a KV event sink, every forward reports what each sequence now holds and every free is
// reported (issue 7: the manager mirrors each shard's pool from these numbered events).
import { Logger } from '@nestjs/common';
import { FrameFlags, FrameKind, KV_RELEASE_OP, TokenFinish, type FrameHeader, type Plan } from '@baton/contracts';
import type { Engine } from '@baton/engine';
import type { Connection } from '@baton/transport';
import { errorFrame, finishOf, hiddenFrame, ringFrame, stopFrame, takeBatch, tokenOutFrame, view32, type StageRole, type WorkItem } from './frames.js';

/** What the runner needs of an engine (the real Engine, or a double in unit tests). */
export type StageEngine = Pick<Engine, 'info' | 'forward' | 'kv'>;

interface SequenceState {
  maxTokens: number;
  generated: number;
}

const STOPPED_MEMORY = 10_000;

/** Where the runner reports KV changes (the shard's KvAgent). */
export interface KvEventSink {
  stored(sequenceId: number, tokens: number): void;
  freed(sequenceId: number): void;
}

export class StageRunner {
  private readonly logger = new Logger('Stage');
  private readonly queue: WorkItem[] = [];
  private readonly sequences = new Map<number, SequenceState>();
  private readonly stopped = new Set<number>();
  /**
   * Connections that get TOKEN_OUT and ERROR frames (the gateways). The serving service hands
   * every runner the same set, so a gateway subscribed on a connection stays subscribed across
   * plan changes (it subscribes once per connection).
   */
  subscribers = new Set<Connection>();
  /**
   * Sequences generating now (frames seen since their last release, STOP or forget). Every other
   * sequence in the pool is cached and idle: released ones, and ones a manager command made
   * (a copied prefix) that no request has run on — e.g. after the admission's reply was lost.
   */
  private readonly active = new Set<number>();
  kvEvents: KvEventSink | undefined;
  private running = false;
  private closed = false;
  /** Frames this stage has forwarded (for logs and tests). */
  forwards = 0;
  next: Connection | undefined;

  constructor(
    readonly plan: Plan,
    readonly role: StageRole,
    private readonly engine: StageEngine,
    private readonly eog: ReadonlySet<number>,
  ) {}

  get width(): number {
    return this.engine.info.embeddingLength;
  }

  /** A frame from any peer (the gateway, the previous stage, or the last stage round the ring). */
  accept(from: Connection | undefined, header: FrameHeader, payload: Buffer): void {
    if (this.closed) return;
    switch (header.kind) {
      case FrameKind.CONTROL:
        if (header.flags & FrameFlags.STOP) return this.stop(header.sequenceId);
        if (this.parseControl(payload)?.op === KV_RELEASE_OP) return this.release(header, payload);
        if (from && this.parseControl(payload)?.op === 'subscribe') {
          this.subscribers.add(from);
          from.once('close', () => this.subscribers.delete(from));
        }
        return;
      case FrameKind.TOKENS:
        if (!this.role.first) return this.refuse(from, header, 'TOKENS frames go to the first stage');
        if (header.width !== 1 || header.payloadLength !== header.tokenCount * 4) return this.refuse(from, header, 'TOKENS frame must carry tokenCount i32 ids');
        if (this.stopped.has(header.sequenceId)) return;
        this.active.add(header.sequenceId);
        this.queue.push({ header, tokens: view32(Int32Array, payload) });
        break;
      case FrameKind.HIDDEN:
        if (this.role.first) return this.refuse(from, header, 'HIDDEN frames go to stages after the first');
        if (header.width !== this.width || header.payloadLength !== header.tokenCount * this.width * 4) {
          return this.refuse(from, header, `HIDDEN frame width ${header.width} does not match this model's ${this.width}`);
        }
        if (this.stopped.has(header.sequenceId)) return;
        this.active.add(header.sequenceId);
        this.queue.push({ header, hidden: view32(Float32Array, payload) });
        break;
      default:
        return;
    }
    void this.pump();
  }

  close(): void {
    this.closed = true;
    this.queue.length = 0;
  }

  private parseControl(payload: Buffer): { op?: string } | undefined {
    try {
      return JSON.parse(payload.toString('utf8')) as { op?: string };
    } catch {
      return undefined;
    }
  }

  private refuse(from: Connection | undefined, header: FrameHeader, reason: string): void {
    this.logger.warn(`refused a frame for sequence ${header.sequenceId}: ${reason}`);
    if (from) {
      const { header: h, payload } = errorFrame(header, reason);
      from.send(h, payload);
    }
  }

  /** Sequences generating now; the pool's other sequences are cached, idle. */
  activeSequences(): ReadonlySet<number> {
    return this.active;
  }

  /** Drops a sequence's queued frames and state (its KV is the caller's business). */
  forget(sequenceId: number): void {
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i]!.header.sequenceId === sequenceId) this.queue.splice(i, 1);
    this.sequences.delete(sequenceId);
    this.active.delete(sequenceId);
  }

  private stop(sequenceId: number): void {
    this.stopped.add(sequenceId);
    if (this.stopped.size > STOPPED_MEMORY) this.stopped.delete(this.stopped.values().next().value!);
    this.forget(sequenceId);
    this.engine.kv.free(sequenceId).then(() => this.kvEvents?.freed(sequenceId), () => this.kvEvents?.freed(sequenceId));
    if (!this.role.last) this.next?.send(stopFrame(sequenceId, this.plan.version));
  }

  /** The generation ended; its KV stays (idle) until the manager reuses or frees it. */
  private release(header: FrameHeader, payload: Buffer): void {
    this.forget(header.sequenceId);
    if (!this.role.last) this.next?.send(header, payload);
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0 && !this.closed) await this.step(takeBatch(this.queue, this.engine.info.maxBatchTokens));
    } finally {
      this.running = false;
    }
  }

  private async step(batch: WorkItem[]): Promise<void> {
    const E = this.width;
    const rows = batch.reduce((n, item) => n + item.header.tokenCount, 0);
    let tokens: Int32Array | undefined;
    let hidden: Float32Array | undefined;
    if (this.role.first) {
      tokens = batch.length === 1 ? batch[0]!.tokens! : new Int32Array(rows);
      if (batch.length > 1) batch.reduce((at, item) => (tokens!.set(item.tokens!, at), at + item.tokens!.length), 0);
    } else {
      hidden = batch.length === 1 ? batch[0]!.hidden! : new Float32Array(rows * E);
      if (batch.length > 1) batch.reduce((at, item) => (hidden!.set(item.hidden!, at), at + item.hidden!.length), 0);
    }
    let result;
    try {
      result = await this.engine.forward({
        sequences: batch.map(({ header: h }) => ({
          sequenceId: h.sequenceId,
          firstPosition: h.firstPosition,
          tokenCount: h.tokenCount,
          sampling: { temperature: h.temperature, topK: h.topK, topP: h.topP, minP: h.minP, repetitionPenalty: h.repetitionPenalty, presencePenalty: h.presencePenalty, frequencyPenalty: h.frequencyPenalty, seed: h.seed },
        })),
        ...(tokens ? { tokens } : { hidden }),
        output: this.role.last ? 'sample' : 'hidden',
      });
    } catch (error) {
      for (const item of batch) this.fail(item.header, (error as Error).message);
      return;
    }
    this.forwards++;
    for (const { header: h } of batch) if (!this.stopped.has(h.sequenceId)) this.kvEvents?.stored(h.sequenceId, h.firstPosition + h.tokenCount);
    let row = 0;
    batch.forEach((item, i) => {
      const h = item.header;
      const from = row;
      row += h.tokenCount;
      if (this.stopped.has(h.sequenceId)) return;
      if (!this.role.last) {
        this.next?.send(hiddenFrame(h, E), result.hidden!.subarray(from * E, (from + h.tokenCount) * E));
      } else if (h.flags & FrameFlags.LAST_CHUNK) {
        this.sampled(h, result.tokens![i]!);
      }
    });
  }

  private sampled(h: FrameHeader, token: number): void {
    const state = this.sequences.get(h.sequenceId) ?? { maxTokens: h.maxTokens, generated: 0 };
    state.generated++;
    this.sequences.set(h.sequenceId, state);
    const position = h.firstPosition + h.tokenCount;
    const finish = finishOf(token, state.generated, state.maxTokens, position + 1, this.engine.info.maxContext, this.eog);
    const out = Int32Array.of(token, finish);
    for (const subscriber of this.subscribers) subscriber.send(tokenOutFrame(h, position), out);
    if (finish !== TokenFinish.CONTINUE) {
      this.sequences.delete(h.sequenceId);
      return;
    }
    const ring = ringFrame(h, position);
    const id = Int32Array.of(token);
    if (this.role.first) this.accept(undefined, ring, Buffer.from(id.buffer));
    else this.next?.send(ring, id);
  }

  private fail(h: FrameHeader, message: string): void {
    this.logger.warn(`sequence ${h.sequenceId}: ${message}`);
    const { header, payload } = errorFrame(h, message);
    for (const subscriber of this.subscribers) subscriber.send(header, payload);
    this.stop(h.sequenceId);
  }
}
