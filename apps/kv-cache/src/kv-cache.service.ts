// The KV-cache manager (issue 7 §2, ARCHITECTURE §6): one KvCacheCore per served model's current
// plan. Follows plans (planner.list, then plan events), consumes the shards' numbered KV events
// and dumps from the `<prefix>kv-events` stream, answers kv.admit / kv.release / kv.lookup /
// kv.usage, and sends shards their commands (free, truncate, copy, dump) on per-node streams.
// Admission waits until every shard confirmed the admission's commands (freed / truncated /
// copied events), so the request's first frame never overtakes them. When the cache is full, a
// request may wait (bounded, its `waitMs`) in the model's first-come-first-served line
// (admission-queue.ts), offered room whenever some appears. The ledger is snapshotted to Redis;
// after a restart the service restores it and asks every shard for a dump.
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import {
  BATON_VERSION, BatonError, ErrorCode,
  type KvAdmitRequest, type KvAdmitResponse, type KvLookupRequest, type KvLookupResponse, type KvReleaseRequest, type KvReleaseResponse,
  type KvShardCommand, type KvShardEvent, type KvUsageReport, type PingResponse, type Plan,
} from '@baton/contracts';
import { CONTROL_PLANE_OPTIONS, EventLog, RedisConnections, RpcClient, RpcServer, type ControlPlaneOptions } from '@baton/control-plane';
import { readModelManifest } from '@baton/gguf';
import { KvCacheCore, kvCacheConfig, type KvCacheSnapshot } from '@baton/kv-core';
import { AdmissionQueue } from './admission-queue.js';
import { KvStreams, type KvStreamEntry } from './kv-streams.js';

/** How long admission waits for the shards to confirm its commands. */
export const KV_CONFIRM_TIMEOUT_MS = 3000;
/**
 * Prefix reuse can be switched off (`BATON_KV_REUSE=off`, or `--no-reuse` on the service): every
 * sequence is then freed at its release, so every request prefills cold (a reference for tests
 * and benchmarks). Capacity accounting, queueing and refusals stay the same.
 */
export function kvReuseEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return !['off', '0', 'false', 'no'].includes((env.BATON_KV_REUSE ?? '').trim().toLowerCase());
}

/**
 * A running sequence with no sign of life for this long (no shard event about it since its
 * admission) is freed: its request is gone — e.g. the admission's reply was lost to a manager
 * restart, or the gateway could not release it. `BATON_KV_RUNNING_LEASE_MS` overrides.
 */
export const KV_RUNNING_LEASE_MS = 30_000;

function runningLeaseMs(env: NodeJS.ProcessEnv = process.env): number {
  const value = Number(env.BATON_KV_RUNNING_LEASE_MS);
  return env.BATON_KV_RUNNING_LEASE_MS !== undefined && Number.isFinite(value) && value >= 100 ? value : KV_RUNNING_LEASE_MS;
}

/** How often awaited dumps are asked for again and a changed ledger is snapshotted. */
const TICK_MS = 1000;

interface ModelCache {
  plan: Plan;
  core: KvCacheCore;
  dirty: boolean;
}

interface Waiter {
  resolve(): void;
}

const CONFIRMING_KIND = { free: 'freed', truncate: 'truncated', copy: 'copied' } as const;

@Injectable()
export class KvCacheService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('KvCache');
  private readonly startedAt = Date.now();
  private readonly caches = new Map<string, ModelCache>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  private server!: RpcServer;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private adopting: Promise<void> = Promise.resolve();
  private loops: Promise<void>[] = [];
  readonly reuse = kvReuseEnabled();
  private readonly leaseMs = runningLeaseMs();
  /** Last sign of life of each running sequence (admission or a shard event), by model and id. */
  private readonly activity = new Map<string, number>();
  /** Per model, the requests waiting for KV room, first come first served. */
  private readonly lines = new Map<string, AdmissionQueue<KvAdmitRequest, KvAdmitResponse>>();

  constructor(
    @Inject(CONTROL_PLANE_OPTIONS) private readonly options: ControlPlaneOptions,
    private readonly connections: RedisConnections,
    private readonly rpc: RpcClient,
    private readonly streams: KvStreams,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const after = await this.streams.lastId().catch(() => '0-0');
    this.server = new RpcServer(this.options);
    this.server.register({
      'kv.admit': (request) => this.admit(request),
      'kv.release': (request) => this.release(request),
      'kv.lookup': (request) => this.lookup(request),
      'kv.usage': () => this.usage(),
      'kv.ping': () => this.ping(),
    });
    await this.server.listen();
    this.loops.push(this.followShards(after), this.followPlans());
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    this.logger.log(`kv-cache ${BATON_VERSION} on ${this.options.redisUrl}${this.reuse ? '' : ' (prefix reuse off)'}`);
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const line of this.lines.values()) line.clear((waiting) => waiting.fallback);
    await this.server?.close();
    await Promise.all(this.loops).catch(() => undefined);
    await this.saveSnapshots().catch(() => undefined);
    await this.streams.close();
  }

  ping(): PingResponse {
    return { service: 'kv-cache', version: BATON_VERSION, pid: process.pid, uptimeMs: Date.now() - this.startedAt };
  }

  /** The core of a model's current plan, or a 503-worded error. */
  private cacheOf(modelId: string): ModelCache {
    const cache = this.caches.get(modelId);
    if (!cache) throw new BatonError(ErrorCode.UNAVAILABLE, `the KV-cache manager has no plan for model '${modelId}' yet; retry once the model is placed`);
    return cache;
  }

  /**
   * Admits a request now, or — when the cache is full and the caller allows a wait — puts it in
   * the model's first-come-first-served line until room appears or the wait runs out ('queue',
   * with the numbers of the full stage). While anyone waits, newcomers go to the back.
   */
  async admit(request: KvAdmitRequest): Promise<KvAdmitResponse> {
    const cache = this.cacheOf(request.modelId);
    const line = this.lineOf(request.modelId);
    // A retry of a request whose earlier admission's reply was lost: free that one first.
    line.cancel(request.requestId, (waiting) => waiting.fallback);
    for (const stale of cache.core.sequences()) {
      if (stale.state !== 'running' || stale.requestId !== request.requestId) continue;
      await this.streams.send(cache.core.release({ sequenceId: stale.sequenceId, keep: false }, Date.now()).commands);
      this.activity.delete(`${request.modelId}/${stale.sequenceId}`);
    }
    const waitMs = request.waitMs ?? 0;
    if (line.length > 0 && waitMs > 0) {
      const preview = cache.core.previewAdmission(request, Date.now());
      if (preview?.verdict === 'refused') return preview;
      // It would fit, but others came first: it waits behind them (their numbers stand in until it is tried).
      const head = line.peek()!;
      return line.wait(request.requestId, request, preview ?? head.fallback, waitMs);
    }
    const verdict = await this.admitNow(cache, request);
    if (verdict.verdict !== 'queue' || waitMs <= 0) return verdict;
    return line.wait(request.requestId, request, verdict, waitMs);
  }

  /** The wait line of a model (made on first use). */
  private lineOf(modelId: string): AdmissionQueue<KvAdmitRequest, KvAdmitResponse> {
    let line = this.lines.get(modelId);
    if (!line) this.lines.set(modelId, (line = new AdmissionQueue()));
    return line;
  }

  /** Offers the waiting requests of every model, in order, the room there is now. */
  private drainLines(): void {
    for (const [modelId, line] of this.lines) {
      if (line.length === 0) continue;
      void line.drain(async ({ request }) => {
        const cache = this.caches.get(modelId);
        if (!cache) throw new BatonError(ErrorCode.UNAVAILABLE, `the KV-cache manager has no plan for model '${modelId}' any more; retry once the model is placed`);
        const verdict = await this.admitNow(cache, request);
        return verdict.verdict === 'queue' ? { retry: verdict } : verdict;
      });
    }
  }

  /** One admission attempt: reserve, send the shards their commands, wait for their confirmations. */
  private async admitNow(cache: ModelCache, request: KvAdmitRequest): Promise<KvAdmitResponse> {
    const verdict = cache.core.admit(request, Date.now());
    if (verdict.verdict !== 'admitted') return verdict;
    cache.dirty = true;
    this.activity.set(`${request.modelId}/${verdict.sequenceId}`, Date.now());
    const confirmed = this.confirmations(cache.plan, verdict.commands);
    await this.streams.send(verdict.commands);
    if (!(await confirmed)) {
      const undo = cache.core.release({ sequenceId: verdict.sequenceId, keep: false }, Date.now());
      await this.streams.send(undo.commands).catch(() => undefined);
      throw new BatonError(ErrorCode.UNAVAILABLE, `the shards of ${request.modelId} did not confirm the KV commands for request ${request.requestId} within ${KV_CONFIRM_TIMEOUT_MS} ms; retry the request`);
    }
    // Running sequences are persisted before their first frame, so a restarted manager knows them.
    await this.saveSnapshots().catch((error: Error) => this.logger.warn(`could not save the KV ledger: ${error.message}`));
    return verdict;
  }

  async release(request: KvReleaseRequest): Promise<KvReleaseResponse> {
    const cache = this.cacheOf(request.modelId);
    const response = cache.core.release(this.reuse ? request : { ...request, keep: false }, Date.now());
    this.activity.delete(`${request.modelId}/${request.sequenceId}`);
    cache.dirty = true;
    await this.streams.send(response.commands);
    this.drainLines();
    return response;
  }

  lookup(request: KvLookupRequest): KvLookupResponse {
    return this.cacheOf(request.modelId).core.lookup(request.tokens);
  }

  usage(): KvUsageReport {
    const now = Date.now();
    const queuedRequests = [...this.lines.values()].reduce((n, line) => n + line.length, 0);
    return { atMs: now, nodes: [...this.caches.values()].flatMap((cache) => cache.core.usage(now).nodes), queuedRequests };
  }

  /** The core of a model (for tests and diagnostics). */
  core(modelId: string): KvCacheCore | undefined {
    return this.caches.get(modelId)?.core;
  }

  // -------------------------------------------------------------------------------------------
  // Confirmations: resolved by the shards' events for the admission's commands

  private waiterKey(planId: string, stage: number, sequenceId: number, kind: string): string {
    return `${planId}/${stage}/${sequenceId}/${kind}`;
  }

  private confirmations(plan: Plan, commands: readonly KvShardCommand[]): Promise<boolean> {
    const waits: Promise<boolean>[] = [];
    for (const command of commands) {
      if (command.kind === 'dump') continue;
      const key = this.waiterKey(plan.planId, command.stage, command.sequenceId, CONFIRMING_KIND[command.kind]);
      waits.push(new Promise<boolean>((resolve) => {
        const set = this.waiters.get(key) ?? new Set<Waiter>();
        this.waiters.set(key, set);
        const waiter: Waiter = { resolve: () => (clearTimeout(timer), resolve(true)) };
        const timer = setTimeout(() => {
          set.delete(waiter);
          if (set.size === 0) this.waiters.delete(key);
          resolve(false);
        }, KV_CONFIRM_TIMEOUT_MS);
        set.add(waiter);
      }));
    }
    return Promise.all(waits).then((all) => all.every(Boolean));
  }

  private confirm(event: KvShardEvent): void {
    const key = this.waiterKey(event.planId, event.stage, event.sequenceId, event.kind);
    const set = this.waiters.get(key);
    if (!set) return;
    this.waiters.delete(key);
    for (const waiter of set) waiter.resolve();
  }

  /** A dump reflects every command sent before it: whatever that shard was asked is done. */
  private confirmShard(planId: string, stage: number): void {
    for (const [key, set] of this.waiters) {
      if (!key.startsWith(`${planId}/${stage}/`)) continue;
      this.waiters.delete(key);
      for (const waiter of set) waiter.resolve();
    }
  }

  // -------------------------------------------------------------------------------------------
  // Shard events and dumps

  private async followShards(after: string): Promise<void> {
    while (!this.stopped) {
      try {
        await this.adopting;
        const { entries, lastId } = await this.streams.read(after, 1000);
        after = lastId;
        const commands: KvShardCommand[] = [];
        for (const entry of entries) commands.push(...this.apply(entry));
        await this.streams.send(commands);
        // Frees confirmed, sequences adopted or lost: room may have changed for those waiting.
        if (entries.length > 0) this.drainLines();
      } catch (error) {
        if (!this.stopped) this.logger.warn(`reading shard KV events failed: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  private apply(entry: KvStreamEntry): KvShardCommand[] {
    const ref = entry.type === 'event' ? entry.event : entry.dump;
    const cache = this.caches.get(ref.modelId);
    if (!cache || cache.plan.planId !== ref.planId) return [];
    if (entry.type === 'event') {
      const result = cache.core.applyShardEvent(entry.event);
      this.confirm(entry.event);
      const key = `${ref.modelId}/${entry.event.sequenceId}`;
      if (this.activity.has(key)) this.activity.set(key, Date.now());
      if (result.status === 'need-dump') {
        this.logger.warn(`${result.reason}: asking for a dump`);
        return [result.command];
      }
      if (result.status !== 'applied') return [];
      cache.dirty = true;
      if (result.broken.length > 0) this.logger.warn(`sequences ${result.broken.join(', ')} lost KV on ${ref.nodeId}`);
      return result.commands;
    }
    const result = cache.core.applyShardDump(entry.dump);
    this.confirmShard(ref.planId, ref.stage);
    if (result.status !== 'applied') return [];
    cache.dirty = true;
    if (result.adopted.length + result.dropped.length > 0) {
      this.logger.log(`dump of ${ref.nodeId} stage ${ref.stage}: adopted ${result.adopted.length} orphan sequence(s), dropped ${result.dropped.length}`);
    }
    return [...result.commands, ...(result.needDump ? [result.needDump] : [])];
  }

  // -------------------------------------------------------------------------------------------
  // Plans

  private async followPlans(): Promise<void> {
    const reader = this.connections.open('kv-cache-plans');
    const log = new EventLog(reader, this.options.prefix);
    let after = await log.lastId().catch(() => '0-0');
    let listed = false;
    while (!this.stopped) {
      try {
        if (!listed) {
          const { plans } = await this.rpc.send('planner.list', {}, { timeoutMs: 2000 });
          for (const plan of plans) await this.adopt(plan);
          listed = true;
        }
        const { events, lastId, gap } = await log.read(after, { blockMs: 1000 });
        after = lastId;
        if (gap) listed = false;
        for (const event of events) {
          if (event.type === 'plan.published') await this.adopt((event.data as { plan: Plan }).plan);
          if (event.type === 'plan.withdrawn') {
            const { modelId } = event.data as { modelId: string };
            this.caches.delete(modelId);
            this.drainLines(); // those waiting for it get a clear error now
          }
        }
      } catch (error) {
        if (this.stopped) break;
        this.logger.debug?.(`following plans: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    await this.connections.close(reader);
  }

  private adopt(plan: Plan): Promise<void> {
    const run = this.adopting.then(async () => {
      const current = this.caches.get(plan.modelId);
      if (current && (current.plan.planId === plan.planId || current.plan.version >= plan.version)) return;
      const manifest = await readModelManifest(plan.modelPath);
      const names: Record<string, string> = {};
      try {
        const { nodes } = await this.rpc.send('discovery.nodes.list', {}, { timeoutMs: 2000 });
        for (const node of nodes) names[node.id] = node.name;
      } catch {
        // ids stand in for names
      }
      const config = kvCacheConfig(manifest, plan, names);
      let core = new KvCacheCore(config);
      const saved = await this.streams.loadSnapshot(plan.modelId).catch(() => null);
      if (saved) {
        try {
          const snapshot = JSON.parse(saved) as KvCacheSnapshot;
          if (snapshot.planId === plan.planId) core = KvCacheCore.restore(config, snapshot);
        } catch (error) {
          this.logger.warn(`ignored the saved KV ledger of ${plan.modelId}: ${(error as Error).message}`);
        }
      }
      this.caches.set(plan.modelId, { plan, core, dirty: true });
      for (const sequence of core.sequences()) if (sequence.state === 'running') this.activity.set(`${plan.modelId}/${sequence.sequenceId}`, Date.now());
      await this.streams.send(core.dumpCommands());
      const blocks = plan.stages.map((s, i) => `${s.nodeId} ${core.capacityBlocks(i)}`).join(', ');
      this.logger.log(`managing ${plan.modelId} v${plan.version}: ${core.sequences().length} sequence(s) restored; capacity in blocks ${blocks}`);
    });
    this.adopting = run.catch((error: Error) => this.logger.error(`cannot manage the KV cache of ${plan.modelId}: ${error.message}`));
    return this.adopting;
  }

  private async tick(): Promise<void> {
    try {
      const dumps: KvShardCommand[] = [];
      for (const cache of this.caches.values()) dumps.push(...cache.core.awaitedDumps());
      await this.streams.send(dumps);
      await this.expireRunning();
      this.drainLines();
      await this.saveSnapshots();
    } catch (error) {
      this.logger.debug?.(`tick: ${(error as Error).message}`);
    }
  }

  /** Frees running sequences whose requests show no sign of life (see KV_RUNNING_LEASE_MS). */
  private async expireRunning(): Promise<void> {
    const now = Date.now();
    for (const [modelId, cache] of this.caches) {
      for (const sequence of cache.core.sequences()) {
        if (sequence.state !== 'running') continue;
        const key = `${modelId}/${sequence.sequenceId}`;
        const last = this.activity.get(key);
        if (last === undefined) {
          this.activity.set(key, now);
          continue;
        }
        if (now - last < this.leaseMs) continue;
        this.activity.delete(key);
        this.logger.warn(`sequence ${sequence.sequenceId} of ${modelId} (request ${sequence.requestId ?? '?'}) showed no activity for ${now - last} ms: freeing it`);
        await this.streams.send(cache.core.release({ sequenceId: sequence.sequenceId, keep: false }, now).commands);
        cache.dirty = true;
      }
    }
  }

  private async saveSnapshots(): Promise<void> {
    for (const [modelId, cache] of this.caches) {
      if (!cache.dirty) continue;
      cache.dirty = false;
      await this.streams.saveSnapshot(modelId, JSON.stringify(cache.core.snapshot()));
    }
  }
}
