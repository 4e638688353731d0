// The real PipelineClient: keeps the current plan of every model (planner.list, then
// plan-published events), a frame connection to every stage's node (subscribed, so the last stage
// sends it TOKEN_OUT frames and any stage its ERROR frames), and runs generations: the prompt goes
// to stage 0 as TOKENS frames in chunks (so stages overlap), sampled tokens come back from the
// last stage, and a STOP frame at the end (or on abort) frees the sequence's KV in every stage.
// With the KV-cache manager (apps/kv-cache) running, each generation is admitted first (kv.admit:
// a sequence id, blocks reserved on every stage, and the cached prefix to skip), only the
// uncached prompt tokens are sent, and at the end a CONTROL `release` frame keeps the sequence's
// KV on the stages while kv.release hands it to the manager as an idle cached sequence.
import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import {
  BatonError, ErrorCode, FrameFlags, FrameKind, KV_RELEASE_OP, PayloadDType, TokenFinish, emptyFrameHeader,
  type FrameHeader, type KvAdmitted, type LinkMeasurement, type ModelId, type NodeRecord, type Plan, type RequestId,
} from '@baton/contracts';
import { EventLog, RedisConnections, RpcClient, type ControlPlaneOptions } from '@baton/control-plane';
import { connect, type Connection } from '@baton/transport';
import type { FrameTrace } from '@baton/telemetry';
import type { GatewayTelemetry } from '../telemetry/gateway-telemetry.js';
import type { GenerationTrace } from '../telemetry/generation-trace.js';
import { PipelineClient, type FinishReason, type GenerateRequest, type GenerationEvent, type ModelReadiness, type ServedModel } from './pipeline-client.js';

/** Prompt tokens per TOKENS frame: stage 0 starts on chunk 1 while later chunks are in flight. */
export const PREFILL_CHUNK_TOKENS = 64;
const NODE_REFRESH_MS = 1000;
/** How long a request waits for KV room (or for the KV manager) before 429 (or 503); `BATON_KV_QUEUE_WAIT_MS` overrides. */
export const KV_QUEUE_WAIT_MS = 3000;

function kvQueueWaitMs(env: NodeJS.ProcessEnv = process.env): number {
  const value = Number(env.BATON_KV_QUEUE_WAIT_MS);
  return env.BATON_KV_QUEUE_WAIT_MS !== undefined && Number.isFinite(value) && value >= 0 ? Math.min(value, 600_000) : KV_QUEUE_WAIT_MS;
}
/** First retry delay of a queued admission; doubles up to KV_RETRY_MAX_MS. */
const KV_RETRY_MS = 25;
const KV_RETRY_MAX_MS = 250;
/** How long a request waits for an unreachable KV manager (e.g. while it restarts) before 503. */
const KV_MANAGER_WAIT_MS = 10_000;
/** Per-attempt RPC timeout of kv.admit beyond its wait in line (the manager may wait up to 3 s for the shards' confirmations). */
const KV_ADMIT_TIMEOUT_MS = 4000;
/** A 'queue' answer this close to the deadline ends the wait (the manager's timer and ours differ by a little). */
const KV_DEADLINE_SLACK_MS = 20;

interface Pending {
  /** The plan the generation runs on: a new plan restarts the stages, dropping its frames. */
  plan?: Plan;
  /** The generation's token spans (tracing on and this request sampled). */
  trace?: GenerationTrace;
  /** `resumable`: the plan changed or a node was lost; the generation can go on on the next plan. */
  push(event: GenerationEvent | { type: 'token-out'; token: number; finish: TokenFinish } | { type: 'error'; message: string; resumable?: boolean }): void;
}

type RunOutcome =
  | { end: 'finished'; finish: 'stop' | 'length' }
  | { end: 'cancelled' }
  | { end: 'failed'; message: string; resumable: boolean };

/** Node announcement fields the client acts on: a change to one of them refreshes the node list at once. */
const NODE_FIELDS_USED = new Set(['endpoints', 'servingPlanId', 'status', 'version', 'protocolVersion']);
/** How long a generation whose plan broke waits for a new ready plan before it fails. */
const RESUME_WAIT_MS = 60_000;
/** Pause between looks for a ready plan while resuming. */
const RESUME_RETRY_MS = 250;

export class ShardPipelineClient extends PipelineClient {
  private readonly logger = new Logger('Pipeline');
  private readonly plans = new Map<string, Plan>();
  private readonly unplaced = new Map<string, string>();
  private nodes = new Map<string, NodeRecord>();
  /** The links discovery last reported (probe round trips and bandwidth, for /metrics). */
  private measuredLinks: readonly LinkMeasurement[] = [];
  private readonly links = new Map<string, Promise<Connection>>();
  private readonly pending = new Map<number, Pending>();
  private nextSequence = (Date.now() % 0x7fffffff) >>> 0;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  /** Whether a KV-cache manager answered (once seen, generations always go through it). */
  private kvSeen = false;
  private readonly kvQueueWaitMs = kvQueueWaitMs();

  constructor(
    private readonly options: ControlPlaneOptions,
    private readonly secret: string,
    private readonly connections: RedisConnections,
    private readonly rpc: RpcClient,
    private readonly telemetry?: GatewayTelemetry,
  ) {
    super();
    telemetry?.metrics.followNodes(() => this.nodes.values(), () => this.measuredLinks);
  }

  async start(): Promise<void> {
    // A KV-cache manager that answers now manages every generation from the first one.
    this.kvSeen = await this.rpc.send('kv.ping', {}, { timeoutMs: 500 }).then(() => true, () => false);
    await this.refresh();
    void this.follow();
    const tick = () => {
      this.timer = setTimeout(() => void this.refresh().finally(() => !this.stopped && tick()), NODE_REFRESH_MS);
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const link of this.links.values()) void link.then((c) => c.close()).catch(() => undefined);
    this.links.clear();
  }

  models(): ServedModel[] {
    return [...this.plans.values()].map((plan) => ({ modelId: plan.modelId as ModelId, modelPath: plan.modelPath, contextLength: plan.requirement.contextTokens, planVersion: plan.version }));
  }

  plan(modelId: string): Plan | undefined {
    return this.plans.get(modelId);
  }

  readiness(modelId: string): ModelReadiness {
    const plan = this.plans.get(modelId);
    if (!plan) return { ready: false, reason: this.unplaced.get(modelId) ?? `no plan for ${modelId} yet (is the planner running and the model applied?)` };
    for (const stage of plan.stages) {
      const node = this.nodes.get(stage.nodeId);
      if (!node) return { ready: false, reason: `node ${stage.nodeId} of plan v${plan.version} is not in the cluster` };
      if (node.servingPlanId !== plan.planId) return { ready: false, reason: `node ${node.name} is ${node.status ?? 'not serving'} (plan v${plan.version})` };
    }
    return { ready: true };
  }

  /**
   * Runs a generation and streams its tokens. If the model is re-placed or a stage's node is lost
   * mid-generation (ARCHITECTURE §7), it resumes on the new plan by prefilling prompt + the tokens
   * generated so far, so the stream goes on with no lost or repeated tokens (under greedy decoding
   * or a seeded sampler, the tokens an uninterrupted run would give).
   */
  async *generate(request: GenerateRequest): AsyncIterable<GenerationEvent> {
    let plan = this.plans.get(request.modelId);
    const done = (finishReason: FinishReason, extra: { error?: string } = {}): GenerationEvent => ({
      type: 'done', finishReason, promptTokens: request.promptTokens.length, completionTokens: generated.length, cachedTokens, ...extra,
    });
    const generated: number[] = [];
    let cachedTokens = 0;
    if (!plan) {
      yield done('error', { error: this.readiness(request.modelId).reason });
      return;
    }
    let resumeBy: number | undefined;
    // One trace for the whole generation, across resumed runs.
    const trace = this.telemetry?.generationTrace(request.traceparent);
    for (let run = 0; ; run++) {
      const outcome: RunOutcome = yield* this.runOnce(plan, request, generated, trace, run === 0 ? (n) => (cachedTokens = n) : () => undefined);
      if (outcome.end === 'finished') {
        yield done(outcome.finish);
        return;
      }
      if (outcome.end === 'cancelled') {
        yield done('cancelled');
        return;
      }
      if (!outcome.resumable || request.signal?.aborted) {
        yield done('error', { error: outcome.message });
        return;
      }
      resumeBy ??= Date.now() + RESUME_WAIT_MS;
      const next = await this.awaitReadyPlan(request.modelId, resumeBy, request.signal);
      if (!next.plan) {
        yield done('error', { error: `${outcome.message}; could not resume: ${next.reason}` });
        return;
      }
      this.logger.warn(`resuming a generation on plan v${next.plan.version} after ${generated.length} token(s): ${outcome.message}`);
      plan = next.plan;
    }
  }

  /**
   * One run of a generation on one plan: admission, the prompt (with every token generated by
   * earlier runs appended), then tokens until the end, a cancellation or a failure. Generated
   * tokens are yielded and appended to `generated`.
   */
  private async *runOnce(plan: Plan, request: GenerateRequest, generated: number[], trace: GenerationTrace | undefined, onCached: (tokens: number) => void): AsyncGenerator<GenerationEvent, RunOutcome> {
    const run: GenerateRequest = generated.length === 0 ? request : { ...request, promptTokens: [...request.promptTokens, ...generated], maxTokens: request.maxTokens - generated.length };
    let admitted: KvAdmitted | undefined;
    const admitting = this.telemetry?.admissionStarted(plan.modelId);
    const admissionSpan = trace?.admission();
    try {
      admitted = await this.admit(plan, run);
    } catch (error) {
      trace?.end('not admitted');
      // Before the first token the HTTP layer turns this into 429 / 400 / 503; mid-stream it ends the stream.
      if (generated.length === 0) throw error;
      return { end: 'failed', message: `could not resume: ${(error as Error).message}`, resumable: false };
    } finally {
      admitting?.();
      admissionSpan?.();
    }
    const sequenceId = admitted?.sequenceId ?? this.allocateSequence();
    onCached(admitted?.cachedTokens ?? 0);
    const fedThisRun: number[] = [];
    let finished: 'stop' | 'length' | undefined;
    const queue: Parameters<Pending['push']>[0][] = [];
    let wake: (() => void) | undefined;
    const mine: Pending = { plan, ...(trace ? { trace } : {}), push: (event) => (queue.push(event), wake?.()) };
    this.pending.set(sequenceId, mine);
    const onAbort = () => queue.push({ type: 'error', message: 'cancelled' }) && wake?.();
    request.signal?.addEventListener('abort', onAbort, { once: true });
    if (request.signal?.aborted) onAbort();
    let stage0: Connection | undefined;
    try {
      let links: Connection[];
      try {
        links = await Promise.all(plan.stages.map((s) => this.link(s.nodeId)));
      } catch (error) {
        return { end: 'failed', message: `cannot reach a stage of plan v${plan.version}: ${(error as Error).message}`, resumable: true };
      }
      stage0 = links[0]!;
      this.sendPrompt(stage0, plan, sequenceId, run, admitted?.cachedTokens ?? 0, trace?.prompt(run.promptTokens.length, admitted?.cachedTokens ?? 0));
      for (;;) {
        while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        const event = queue.shift()!;
        if (event.type === 'error') {
          if (event.message === 'cancelled') return { end: 'cancelled' };
          return { end: 'failed', message: event.message, resumable: event.resumable === true };
        }
        if (event.type !== 'token-out') continue;
        if (event.finish === TokenFinish.EOG) {
          finished = 'stop';
          await this.release(plan, admitted, stage0, run.promptTokens, fedThisRun, finished);
          return { end: 'finished', finish: 'stop' };
        }
        generated.push(event.token);
        fedThisRun.push(event.token);
        yield { type: 'token', tokenId: event.token };
        if (event.finish === TokenFinish.LENGTH) {
          finished = 'length';
          await this.release(plan, admitted, stage0, run.promptTokens, fedThisRun, finished);
          return { end: 'finished', finish: 'length' };
        }
      }
    } finally {
      request.signal?.removeEventListener('abort', onAbort);
      trace?.end(finished ?? 'ended early');
      // The manager may already have given this id to the next request (reuse in place).
      if (this.pending.get(sequenceId) === mine) this.pending.delete(sequenceId);
      if (!finished || !admitted) {
        stage0?.send({ ...emptyFrameHeader(FrameKind.CONTROL), sequenceId, planVersion: plan.version, flags: FrameFlags.STOP });
        if (admitted) this.rpc.send('kv.release', { modelId: plan.modelId as ModelId, sequenceId: admitted.sequenceId, keep: false }).catch((error: Error) => this.logger.warn(`kv.release of sequence ${sequenceId}: ${error.message}`));
      }
    }
  }

  /**
   * Waits for the model's current plan to be served by every stage (after a re-placement the
   * nodes load their new layers first), until `deadline`.
   */
  private async awaitReadyPlan(modelId: string, deadline: number, signal?: AbortSignal): Promise<{ plan?: Plan; reason: string }> {
    // Give discovery and the planner a moment: right after a node is lost, the old plan still looks ready.
    await new Promise((resolve) => setTimeout(resolve, RESUME_RETRY_MS));
    for (;;) {
      const readiness = this.readiness(modelId);
      const plan = this.plans.get(modelId);
      let reason = readiness.reason ?? `no plan for ${modelId}`;
      if (plan && readiness.ready) {
        // Right after a node is lost its lease still stands: the plan counts only once every stage answers.
        const reachable = await Promise.all(plan.stages.map((s) => this.link(s.nodeId))).then(() => true, (error: Error) => ((reason = error.message), false));
        if (reachable) return { plan, reason: '' };
      }
      if (signal?.aborted) return { reason: 'cancelled' };
      if (Date.now() >= deadline) return { reason: `no ready plan within ${RESUME_WAIT_MS / 1000} s (${reason})` };
      await new Promise((resolve) => setTimeout(resolve, RESUME_RETRY_MS));
    }
  }

  /**
   * Admission through the KV manager: a sequence id, blocks reserved on every stage, and the
   * cached prefix. Waits (bounded) in the manager's line while the cache is full, then 429 with its numbers;
   * 400 at once for a request larger than the whole cache. Without a manager (none ever seen):
   * undefined, and the sequence is the gateway's own, freed at the end.
   */
  private async admit(plan: Plan, request: GenerateRequest): Promise<KvAdmitted | undefined> {
    if (!this.kvSeen) return undefined;
    const requestId = randomBytes(8).toString('hex') as RequestId;
    const started = Date.now();
    const deadline = started + this.kvQueueWaitMs;
    let attempt = 0;
    for (;;) {
      let failure: string;
      try {
        // The manager keeps the request in its first-come-first-served line for up to waitMs.
        const waitMs = Math.max(0, deadline - Date.now());
        const verdict = await this.rpc.send('kv.admit', { modelId: plan.modelId as ModelId, requestId, tokens: request.promptTokens, maxTokens: request.maxTokens, waitMs }, { timeoutMs: KV_ADMIT_TIMEOUT_MS + waitMs });
        if (verdict.verdict === 'admitted') {
          if (request.signal?.aborted) {
            // The client left while it waited: hand the room straight back.
            await this.rpc.send('kv.release', { modelId: plan.modelId as ModelId, sequenceId: verdict.sequenceId, keep: false }).catch(() => undefined);
            throw new BatonError(ErrorCode.UNAVAILABLE, 'cancelled while waiting for KV room');
          }
          return verdict;
        }
        if (verdict.verdict === 'refused') throw new BatonError(ErrorCode.VALIDATION, verdict.message);
        if (Date.now() >= deadline - KV_DEADLINE_SLACK_MS) throw new BatonError(ErrorCode.CAPACITY, verdict.message);
        failure = verdict.message;
      } catch (error) {
        if (error instanceof BatonError && (error.code === ErrorCode.VALIDATION || error.code === ErrorCode.CAPACITY)) throw error;
        failure = (error as Error).message;
        if (Date.now() >= started + KV_MANAGER_WAIT_MS) throw new BatonError(ErrorCode.UNAVAILABLE, `the KV-cache manager cannot admit the request: ${failure}; retry later`);
      }
      if (request.signal?.aborted) throw new BatonError(ErrorCode.UNAVAILABLE, `cancelled while waiting for KV room: ${failure}`);
      await new Promise((resolve) => setTimeout(resolve, Math.min(KV_RETRY_MAX_MS, KV_RETRY_MS << Math.min(attempt++, 8))));
    }
  }

  /**
   * A generation ended normally: the stages keep its KV (CONTROL `release`, ahead of any later
   * frame on the same connections) and the manager records it as an idle cached sequence holding
   * the prompt and every generated token that was fed back (all but a final length-capped one).
   */
  private async release(plan: Plan, admitted: KvAdmitted | undefined, stage0: Connection | undefined, prompt: readonly number[], generated: readonly number[], finish: 'stop' | 'length'): Promise<void> {
    if (!admitted || !stage0) return;
    const payload = Buffer.from(JSON.stringify({ op: KV_RELEASE_OP }));
    stage0.send({ ...emptyFrameHeader(FrameKind.CONTROL), sequenceId: admitted.sequenceId, planVersion: plan.version, dtype: PayloadDType.U8, width: 1, tokenCount: payload.length, payloadLength: payload.length }, payload);
    const fed = finish === 'length' ? generated.slice(0, -1) : generated;
    try {
      await this.rpc.send('kv.release', { modelId: plan.modelId as ModelId, sequenceId: admitted.sequenceId, tokens: [...prompt, ...fed] }, { timeoutMs: 1000 });
    } catch (error) {
      this.logger.warn(`kv.release of sequence ${admitted.sequenceId}: ${(error as Error).message}`);
    }
  }

  private allocateSequence(): number {
    do this.nextSequence = (this.nextSequence + 1) >>> 0;
    while (this.pending.has(this.nextSequence));
    return this.nextSequence;
  }

  private sendPrompt(stage0: Connection, plan: Plan, sequenceId: number, request: GenerateRequest, from = 0, trace?: FrameTrace): void {
    const s = request.sampling;
    const base: FrameHeader = {
      ...emptyFrameHeader(FrameKind.TOKENS),
      sequenceId,
      dtype: PayloadDType.I32,
      width: 1,
      requestId: randomBytes(16),
      temperature: s.temperature,
      topP: s.topP,
      topK: s.topK,
      minP: s.minP,
      repetitionPenalty: s.repetitionPenalty,
      presencePenalty: s.presencePenalty,
      frequencyPenalty: s.frequencyPenalty,
      seed: s.seed,
      maxTokens: request.maxTokens,
      planVersion: plan.version,
      // token 1's span: every stage's forward spans of the prompt go under it
      ...trace,
    };
    const ids = Int32Array.from(request.promptTokens);
    for (let at = Math.min(from, ids.length - 1); at < ids.length; at += PREFILL_CHUNK_TOKENS) {
      const chunk = ids.subarray(at, Math.min(ids.length, at + PREFILL_CHUNK_TOKENS));
      const last = at + chunk.length >= ids.length;
      stage0.send({ ...base, firstPosition: at, tokenCount: chunk.length, payloadLength: chunk.length * 4, flags: last ? FrameFlags.LAST_CHUNK : 0 }, chunk);
    }
  }

  /** The connection to a node, opened (and subscribed) on first use and reused after. */
  private link(nodeId: string): Promise<Connection> {
    const existing = this.links.get(nodeId);
    if (existing) return existing;
    const opening = (async () => {
      const endpoint = this.nodes.get(nodeId)?.endpoints.find((e) => e.kind === 'tcp');
      if (!endpoint) throw new Error(`node ${nodeId} has no data-plane endpoint`);
      const connection = await connect({ host: endpoint.address, port: endpoint.port, secret: this.secret });
      connection.on('error', () => undefined);
      connection.on('frame', (header, payload) => this.onFrame(header, payload));
      connection.once('close', (error) => {
        this.links.delete(nodeId);
        if (this.stopped) return;
        this.logger.warn(`connection to node ${nodeId} closed${error ? `: ${error.message}` : ''}`);
        for (const pending of this.pending.values()) pending.push({ type: 'error', message: `lost the connection to node ${nodeId}`, resumable: true });
      });
      const subscribe = Buffer.from(JSON.stringify({ op: 'subscribe' }));
      connection.send({ ...emptyFrameHeader(FrameKind.CONTROL), dtype: PayloadDType.U8, width: 1, tokenCount: subscribe.length, payloadLength: subscribe.length }, subscribe);
      return connection;
    })();
    this.links.set(nodeId, opening);
    opening.catch(() => this.links.delete(nodeId));
    return opening;
  }

  private onFrame(header: FrameHeader, payload: Buffer): void {
    const pending = this.pending.get(header.sequenceId);
    if (!pending) return;
    if (header.kind === FrameKind.TOKEN_OUT && payload.length >= 8) {
      pending.trace?.tokenOut(header, payload.readInt32LE(0), payload.readInt32LE(4) as TokenFinish);
      pending.push({ type: 'token-out', token: payload.readInt32LE(0), finish: payload.readInt32LE(4) as TokenFinish });
    } else if (header.kind === FrameKind.ERROR) {
      pending.push({ type: 'error', message: payload.toString('utf8') || 'a stage failed' });
    }
  }

  private async refresh(): Promise<void> {
    if (!this.kvSeen) {
      this.rpc.send('kv.ping', {}, { timeoutMs: 500 }).then(() => {
        if (!this.kvSeen) this.logger.log('KV-cache manager found: generations are admitted through it, with prefix reuse');
        this.kvSeen = true;
      }, () => undefined);
    }
    try {
      const { nodes, links } = await this.rpc.send('discovery.nodes.list', {}, { timeoutMs: 1000 });
      this.nodes = new Map(nodes.map((n) => [n.id, n]));
      this.measuredLinks = links ?? [];
      const { plans, unplaced } = await this.rpc.send('planner.list', {}, { timeoutMs: 1000 });
      for (const plan of plans) this.adopt(plan);
      for (const entry of unplaced) {
        this.unplaced.set(entry.modelId, `no plan for ${entry.modelId}: ${entry.reason}`);
        this.plans.delete(entry.modelId);
      }
    } catch (error) {
      this.logger.debug?.(`refresh failed: ${(error as Error).message}`);
    }
  }

  private adopt(plan: Plan): void {
    const current = this.plans.get(plan.modelId);
    if (current && current.version >= plan.version) return;
    this.plans.set(plan.modelId, plan);
    this.unplaced.delete(plan.modelId);
    // The stages start over on a new plan (in-flight frames are dropped): fail what ran on the old one.
    for (const pending of this.pending.values()) {
      if (pending.plan?.modelId === plan.modelId && pending.plan.version < plan.version) {
        pending.push({ type: 'error', message: `the model was re-placed during the generation (plan v${pending.plan.version} → v${plan.version})`, resumable: true });
      }
    }
    this.logger.log(`plan ${plan.modelId} v${plan.version}: ${plan.stages.map((s) => `${s.nodeId}[${s.layerStart},${s.layerEnd})`).join(' → ')}`);
  }

  private async follow(): Promise<void> {
    const reader = this.connections.open('gateway-events');
    const log = new EventLog(reader, this.options.prefix);
    let after = await log.lastId().catch(() => '0-0');
    while (!this.stopped) {
      try {
        const { events, lastId } = await log.read(after, { blockMs: 1000 });
        after = lastId;
        for (const event of events) {
          if (event.type === 'plan.published') this.adopt((event.data as { plan: Plan }).plan);
          if (event.type === 'plan.withdrawn') {
            const { modelId, reason } = event.data as { modelId: string; reason: string };
            this.plans.delete(modelId);
            this.unplaced.set(modelId, `no plan for ${modelId}: ${reason}`);
          }
          // Joins, leaves, and changes to what readiness and links use (not, say, a node's KV use).
          if (event.type === 'node.joined' || event.type === 'node.left') await this.refresh();
          if (event.type === 'node.updated' && (event.data as { changed?: string[] }).changed?.some((field) => NODE_FIELDS_USED.has(field))) await this.refresh();
        }
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    await this.connections.close(reader);
  }
}
