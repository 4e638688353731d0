// One loaded stage: frames in (TOKENS on the first stage, HIDDEN after it) → queued → batched
// into one engine forward per turn → HIDDEN to the next stage, or, on the last stage, a sampled
// token to the gateway (TOKEN_OUT) and round the ring to stage 0 as the next TOKENS frame.
// CONTROL frames: `subscribe` (this connection gets TOKEN_OUT), STOP (drop the sequence, free
// its KV, pass the STOP on), `release` (the generation ended but its KV stays cached, idle, for
// the KV-cache manager to reuse or free; passed on). Frames of stopped sequences are dropped.
// With a KV event sink, every forward reports what each sequence now holds and every free is
// reported (issue 7: the manager mirrors each shard's pool from these numbered events).
// With tracing on, every sampled frame (its header names the token span it works for) gets a
// forward span under that token, and every frame sent on for it a hop span; with tracing off
// (`tracing` undefined) none of that code runs. Likewise for the stage's Prometheus metrics
// (`metrics`, when the shard serves /metrics).
import { Logger } from '@nestjs/common';
import { FRAME_HEADER_BYTES, FrameFlags, FrameKind, KV_RELEASE_OP, TokenFinish, type FrameHeader, type Plan } from '@baton/contracts';
import type { Engine } from '@baton/engine';
import type { Connection } from '@baton/transport';
import { SpanKind, SpanStatusCode, epochMs, frameParent, isSampledFrame, processTracing, type FrameTrace, type Tracing } from '@baton/telemetry';
import { StageMetrics } from './stage-metrics.js';
import { addSubscriber, controlOp, errorFrame, finishOf, hiddenFrame, ringFrame, stopFrame, takeBatch, tokenOutFrame, view32, type StageRole, type WorkItem } from './frames.js';

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
  /** This process's tracing; undefined = off (no span work on the frame path). */
  tracing: Tracing | undefined = processTracing();
  /** This stage's metrics; undefined = the shard serves no /metrics. */
  metrics: StageMetrics | undefined = StageMetrics.current();
  private stageLabel: { stage: string } | undefined;

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
        switch (controlOp(payload)) {
          case KV_RELEASE_OP:
            return this.release(header, payload);
          case 'subscribe':
            if (from) addSubscriber(this.subscribers, from);
            return;
          default:
            return;
        }
      case FrameKind.TOKENS:
        if (!this.role.first) return this.refuse(from, header, 'TOKENS frames go to the first stage');
        if (header.width !== 1 || header.payloadLength !== header.tokenCount * 4) return this.refuse(from, header, 'TOKENS frame must carry tokenCount i32 ids');
        if (this.stopped.has(header.sequenceId)) return;
        this.active.add(header.sequenceId);
        this.enqueue({ header, tokens: view32(Int32Array, payload) });
        break;
      case FrameKind.HIDDEN:
        if (this.role.first) return this.refuse(from, header, 'HIDDEN frames go to stages after the first');
        if (header.width !== this.width || header.payloadLength !== header.tokenCount * this.width * 4) {
          return this.refuse(from, header, `HIDDEN frame width ${header.width} does not match this model's ${this.width}`);
        }
        if (this.stopped.has(header.sequenceId)) return;
        this.active.add(header.sequenceId);
        this.enqueue({ header, hidden: view32(Float32Array, payload) });
        break;
      default:
        return;
    }
    void this.pump();
  }

  private enqueue(item: WorkItem): void {
    if (this.tracing && isSampledFrame(item.header)) item.receivedAt = epochMs();
    this.queue.push(item);
    if (this.metrics) this.metrics.queueDepth.set(this.labels(), this.queue.length);
  }

  private labels(): { stage: string } {
    return (this.stageLabel ??= { stage: String(this.role.index) });
  }

  close(): void {
    this.closed = true;
    this.queue.length = 0;
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
    const startedAt = this.tracing || this.metrics ? epochMs() : 0;
    if (this.metrics) this.metrics.queueDepth.set(this.labels(), this.queue.length);
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
      if (this.tracing) this.traceForward(batch, rows, startedAt, (error as Error).message);
      for (const item of batch) this.fail(item.header, (error as Error).message);
      return;
    }
    if (this.tracing) this.traceForward(batch, rows, startedAt);
    if (this.metrics) {
      this.metrics.forwardSeconds.observe(this.labels(), (epochMs() - startedAt) / 1000);
      this.metrics.forwardRows.inc(this.labels(), rows);
      this.metrics.batchSequences.observe(this.labels(), batch.length);
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
        const out = hiddenFrame(h, E);
        const rowsOut = result.hidden!.subarray(from * E, (from + h.tokenCount) * E);
        if (item.receivedAt !== undefined || this.metrics) this.measuredSend(this.next, out, rowsOut, item.receivedAt !== undefined ? h : undefined, `${this.role.index + 1}`);
        else this.next?.send(out, rowsOut);
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
    const tokenOut = tokenOutFrame(h, position);
    const tokenTraced = this.tracing !== undefined && isSampledFrame(h);
    if (this.metrics) this.metrics.sampledTokens.inc(this.labels());
    if (tokenTraced || this.metrics) this.measuredSend(this.subscribers, tokenOut, out, tokenTraced ? h : undefined, 'gateway');
    else for (const subscriber of this.subscribers) subscriber.send(tokenOut, out);
    if (finish !== TokenFinish.CONTINUE) {
      this.sequences.delete(h.sequenceId);
      return;
    }
    const ring = ringFrame(h, position, state.generated);
    const id = Int32Array.of(token);
    if (this.role.first) return this.accept(undefined, ring, Buffer.from(id.buffer));
    // the ring frame belongs to the next token: its hop span goes under that token's span
    const ringTraced = this.tracing !== undefined && isSampledFrame(ring);
    if (ringTraced || this.metrics) this.measuredSend(this.next, ring, id, ringTraced ? ring : undefined, '0');
    else this.next?.send(ring, id);
  }

  /** One forward span per sampled item of a batch, each in its own request's trace. */
  private traceForward(batch: WorkItem[], rows: number, startedAt: number, error?: string): void {
    const endedAt = epochMs();
    const { index, stage } = this.role;
    for (const item of batch) {
      if (item.receivedAt === undefined) continue;
      const h = item.header;
      const span = this.tracing!.startSpan(`forward stage ${index}`, {
        parent: frameParent(h),
        startTime: startedAt,
        attributes: {
          'baton.node': stage.nodeId,
          'baton.stage': index,
          'baton.layer_start': stage.layerStart,
          'baton.layer_end': stage.layerEnd,
          'baton.sequence_id': h.sequenceId,
          'baton.position': h.firstPosition,
          'baton.rows': h.tokenCount,
          'baton.batch.rows': rows,
          'baton.batch.sequences': batch.length,
          'baton.queue_us': Math.max(0, Math.round((startedAt - item.receivedAt) * 1000)),
        },
      });
      if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
      span.end(endedAt);
    }
  }

  /**
   * Sends a frame and records the hop: payload bytes and how long the send took here (the
   * transport writes or queues before returning) — in the metrics, and as a span under `parent`
   * for a sampled token. The time on the wire is the gap between this span and the next stage's
   * forward; their clocks differ, so no span claims it.
   */
  private measuredSend(to: Connection | ReadonlySet<Connection> | undefined, header: FrameHeader, payload: Int32Array | Float32Array, parent: FrameTrace | undefined, target: string): void {
    const connections = to === undefined ? [] : to instanceof Set ? [...(to as ReadonlySet<Connection>)] : [to as Connection];
    const start = epochMs();
    let queued = false;
    for (const connection of connections) queued = connection.send(header, payload) === false || queued;
    const end = epochMs();
    if (this.metrics && connections.length > 0) {
      const hop = this.metrics.hop(this.role.index, FrameKind[header.kind] ?? String(header.kind));
      hop.bytes.inc(payload.byteLength * connections.length);
      hop.frames.inc(connections.length);
      hop.send.observe((end - start) / 1000);
    }
    if (!parent || !this.tracing) return;
    this.tracing.startSpan(`hop stage ${this.role.index} → ${target === 'gateway' ? 'gateway' : `stage ${target}`}`, {
      parent: frameParent(parent),
      kind: SpanKind.PRODUCER,
      startTime: start,
      attributes: {
        'baton.node': this.role.stage.nodeId,
        'baton.stage': this.role.index,
        'baton.hop.to': target,
        'baton.hop.kind': FrameKind[header.kind],
        'baton.hop.bytes': payload.byteLength,
        'baton.hop.frame_bytes': FRAME_HEADER_BYTES + payload.byteLength,
        'baton.hop.send_us': Math.round((end - start) * 1000),
        'baton.hop.queued': queued,
        'baton.hop.receivers': connections.length,
      },
    }).end(end);
  }

  private fail(h: FrameHeader, message: string): void {
    this.logger.warn(`sequence ${h.sequenceId}: ${message}`);
    const { header, payload } = errorFrame(h, message);
    for (const subscriber of this.subscribers) subscriber.send(header, payload);
    this.stop(h.sequenceId);
  }
}
