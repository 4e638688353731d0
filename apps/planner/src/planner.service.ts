// The placement service: keeps one current plan per applied model, replans (debounced) when a
// node joins, leaves, changes memory or compute, or a link is measured, and publishes each new
// layout as a versioned plan-published event. State lives in Redis (hash <prefix>plans), so a
// restarted planner carries on with the same versions.
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { Redis } from 'ioredis';
import {
  BATON_VERSION, BatonError, ErrorCode,
  type Placement, type Plan, type PlanApplyRequest, type PlanListResponse, type PlanPreviewRequest, type PlanRequirement, type PingResponse,
} from '@baton/contracts';
import { CONTROL_PLANE_OPTIONS, EventLog, RedisConnections, RpcClient, RpcServer, type ControlPlaneOptions } from '@baton/control-plane';
import { clusterFromRecords, planPlacement, prepare, type PlacementInput } from '@baton/placement';
import { ManifestReader } from './manifests.js';
import { keepCurrent, needsReplan, sameLayout, versionPlan } from './planning.js';

export const REPLAN_DEBOUNCE_MS = 300;

interface Applied {
  modelId: string;
  modelPath: string;
  requirement: PlanRequirement;
}

@Injectable()
export class PlannerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Planner');
  private readonly startedAt = Date.now();
  private redis!: Redis;
  private events!: EventLog;
  private server!: RpcServer;
  private readonly applied = new Map<string, Applied>();
  private readonly plans = new Map<string, Plan>();
  private readonly unplaced = new Map<string, string>();
  private replanTimer: NodeJS.Timeout | undefined;
  private replanning: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    @Inject(CONTROL_PLANE_OPTIONS) private readonly options: ControlPlaneOptions,
    private readonly connections: RedisConnections,
    private readonly rpc: RpcClient,
    private readonly manifests: ManifestReader,
  ) {}

  private get plansKey() {
    return `${this.options.prefix}plans`;
  }
  private get appliedKey() {
    return `${this.options.prefix}plan-requests`;
  }

  async onApplicationBootstrap(): Promise<void> {
    this.redis = this.connections.open('planner');
    this.events = new EventLog(this.redis, this.options.prefix);
    await this.restore();
    this.server = new RpcServer(this.options);
    this.server.register({
      'planner.preview': (request) => this.preview(request),
      'planner.apply': (request) => this.apply(request),
      'planner.current': (request) => this.plans.get(request.modelId) ?? null,
      'planner.list': () => this.list(),
      'planner.ping': () => this.ping(),
    });
    await this.server.listen();
    void this.follow();
    this.logger.log(`planner ${BATON_VERSION} on ${this.options.redisUrl}: ${this.applied.size} model(s) to keep placed`);
    if (this.applied.size > 0) this.scheduleReplan('start');
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    if (this.replanTimer) clearTimeout(this.replanTimer);
    await this.replanning;
    await this.server?.close();
  }

  ping(): PingResponse {
    return { service: 'planner', version: BATON_VERSION, pid: process.pid, uptimeMs: Date.now() - this.startedAt };
  }

  list(): PlanListResponse {
    return {
      plans: [...this.plans.values()],
      unplaced: [...this.unplaced].map(([modelId, reason]) => ({ modelId, modelPath: this.applied.get(modelId)?.modelPath ?? '', reason })),
    };
  }

  async preview(request: PlanPreviewRequest): Promise<Placement> {
    return (await this.placeOnCluster(request)).placement;
  }

  private async placeOnCluster(request: PlanPreviewRequest): Promise<{ input: PlacementInput; placement: Placement }> {
    const manifest = await this.manifests.read(request.modelPath);
    const { nodes, links } = await this.rpc.send('discovery.nodes.list', { includeMismatched: false });
    const cluster = clusterFromRecords(nodes, links);
    const input: PlacementInput = { manifest, nodes: cluster.nodes, links: cluster.links, requirement: request.requirement };
    try {
      return { input, placement: planPlacement(input) };
    } catch (error) {
      throw toBatonError(error);
    }
  }

  async apply(request: PlanApplyRequest): Promise<Plan> {
    const manifest = await this.manifests.read(request.modelPath);
    const modelId = request.modelId ?? manifest.name;
    const applied: Applied = { modelId, modelPath: request.modelPath, requirement: request.requirement };
    const plan = await this.placeAndPublish(applied, true);
    this.applied.set(modelId, applied);
    await this.redis.hset(this.appliedKey, modelId, JSON.stringify(applied));
    return plan;
  }

  /** Plans one model on the live cluster; publishes a new version when the layout changed (or `force`). */
  private async placeAndPublish(applied: Applied, force: boolean): Promise<Plan> {
    const { input, placement } = await this.placeOnCluster(applied);
    const previous = this.plans.get(applied.modelId);
    if (previous && !force && previous.modelPath === applied.modelPath && (sameLayout(previous, placement) || keepCurrent(prepare(input), previous, placement))) return previous;
    const plan = versionPlan(placement, applied.modelId, applied.modelPath, previous, Date.now());
    this.plans.set(applied.modelId, plan);
    this.unplaced.delete(applied.modelId);
    await this.redis.hset(this.plansKey, applied.modelId, JSON.stringify(plan));
    await this.events.append('plan.published', { plan });
    this.logger.log(`published ${applied.modelId} v${plan.version}: ${plan.stages.map((s) => `${s.nodeId}[${s.layerStart},${s.layerEnd})`).join(' → ')}, predicted ${plan.predicted.msPerToken.toFixed(2)} ms/token`);
    return plan;
  }

  private scheduleReplan(why: string): void {
    if (this.stopped || this.applied.size === 0) return;
    if (this.replanTimer) clearTimeout(this.replanTimer);
    this.replanTimer = setTimeout(() => {
      this.replanTimer = undefined;
      this.replanning = this.replanning.then(() => this.replanAll(why));
    }, REPLAN_DEBOUNCE_MS);
  }

  private async replanAll(why: string): Promise<void> {
    for (const applied of this.applied.values()) {
      try {
        await this.placeAndPublish(applied, false);
      } catch (error) {
        const reason = (error as Error).message;
        if (this.unplaced.get(applied.modelId) !== reason) this.logger.warn(`cannot place ${applied.modelId} after ${why}: ${reason}`);
        this.unplaced.set(applied.modelId, reason);
        if (this.plans.delete(applied.modelId)) {
          await this.redis.hdel(this.plansKey, applied.modelId).catch(() => undefined);
          await this.events.append('plan.withdrawn', { modelId: applied.modelId, reason }).catch(() => undefined);
        }
      }
    }
  }

  /** Follows the event log from its current end; a topology change schedules a replan. */
  private async follow(): Promise<void> {
    const reader = this.connections.open('planner-events');
    const log = new EventLog(reader, this.options.prefix);
    let after = await log.lastId().catch(() => '0-0');
    while (!this.stopped) {
      try {
        const { events, lastId, gap } = await log.read(after, { blockMs: 1000 });
        after = lastId;
        if (gap) this.scheduleReplan('missed events');
        const trigger = events.find(needsReplan);
        if (trigger) this.scheduleReplan(trigger.type);
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    await this.connections.close(reader);
  }

  private async restore(): Promise<void> {
    try {
      for (const [modelId, json] of Object.entries(await this.redis.hgetall(this.appliedKey))) this.applied.set(modelId, JSON.parse(json) as Applied);
      for (const [modelId, json] of Object.entries(await this.redis.hgetall(this.plansKey))) this.plans.set(modelId, JSON.parse(json) as Plan);
    } catch (error) {
      this.logger.warn(`could not restore plans from Redis: ${(error as Error).message}`);
    }
  }
}

/** Placement errors (InfeasibleError, PlacementInputError) are BatonErrors already; anything else is an input problem. */
function toBatonError(error: unknown): Error {
  return error instanceof BatonError ? error : new BatonError(ErrorCode.VALIDATION, (error as Error).message);
}
