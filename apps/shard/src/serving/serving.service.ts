// The data-plane side of a node: listens for frame connections, follows plan-published events,
// loads the layer range its plan gives it into the engine (progress in logs and `baton nodes`),
// connects to the next stage, and hands frames to its StageRunner. One model at a time per
// node: the latest plan that names this node wins; a plan without it unloads it.
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { formatBytes, FrameKind, type NodeRecord, type Plan } from '@baton/contracts';
import { CONTROL_PLANE_OPTIONS, EventLog, RedisConnections, RpcClient, type ControlPlaneOptions } from '@baton/control-plane';
import { Engine, measureReadBandwidth } from '@baton/engine';
import { readGguf } from '@baton/gguf';
import { loadVocab, plainMetadata } from '@baton/tokenizer';
import { connect, listen, type Connection, type Server } from '@baton/transport';
import { NODE_AGENT_OPTIONS, NodeAgentService, type NodeAgentOptions } from '../agent.service.js';
import { loadOrCreateSecret } from '../identity.js';
import { addSubscriber, controlOp, roleIn, type StageRole } from './frames.js';
import { KvAgent } from './kv-agent.js';
import { measureStageStep } from './stage-rate.js';
import { StageRunner } from './stage-runner.js';
import { warmStage } from './warm.js';

interface Loaded {
  engine: Engine;
  modelPath: string;
  layerStart: number;
  layerEnd: number;
  kvDType: string;
  contextTokens: number;
  sequences: number;
  eog: Set<number>;
}

/**
 * How often the pool's use is announced when it changed (for `baton nodes` and /v1/cluster). Every
 * announcement change is a node.updated event that every service reads, and a decode step fills
 * a block every 16 tokens, so not at each change.
 */
const KV_REPORT_MS = 2000;

@Injectable()
export class ServingService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Serving');
  private server: Server | undefined;
  private secret = '';
  private loaded: Loaded | undefined;
  private runner: StageRunner | undefined;
  /** Gateways' connections subscribed to TOKEN_OUT / ERROR frames, kept across plans (see StageRunner.subscribers). */
  private readonly subscribers = new Set<Connection>();
  private kvAgent: KvAgent | undefined;
  private work: Promise<void> = Promise.resolve();
  private stopped = false;
  private computeMeasured = false;
  private kvTimer: NodeJS.Timeout | undefined;
  private kvLast = '';

  constructor(
    @Inject(CONTROL_PLANE_OPTIONS) private readonly cp: ControlPlaneOptions,
    @Inject(NODE_AGENT_OPTIONS) private readonly options: NodeAgentOptions,
    private readonly agent: NodeAgentService,
    private readonly connections: RedisConnections,
    private readonly rpc: RpcClient,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.secret = loadOrCreateSecret(this.options.home);
    const server = await listen({ host: this.options.dataHost ?? '0.0.0.0', port: this.options.dataPort ?? 0, secret: this.secret });
    this.server = server;
    server.on('connection', (connection) => {
      connection.on('frame', (header, payload) => this.onFrame(connection, header, payload));
      connection.on('error', () => undefined);
    });
    await this.agent.update({ endpoints: [{ kind: 'tcp', address: this.options.advertiseHost ?? '127.0.0.1', port: this.options.advertisePort ?? server.port }] });
    this.logger.log(`data plane listening on ${server.address}`);
    void this.follow();
    this.kvTimer = setInterval(() => void this.reportKv(), KV_REPORT_MS);
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    if (this.kvTimer) clearInterval(this.kvTimer);
    await this.work.catch(() => undefined);
    await this.unload();
    await this.server?.close();
  }

  /** Publishes the KV pool's use when it changed (for `baton nodes`, /v1/cluster and the KV manager). */
  private async reportKv(): Promise<void> {
    const loaded = this.loaded;
    if (!loaded) return;
    try {
      const stats = await loaded.engine.kv.stats();
      // Blocks of sequences kept cached (idle, evictable at once) count as free, as in vLLM's
      // prefix cache; the KV manager's kv.usage reports them separately as cached-idle.
      const active = this.runner?.activeSequences() ?? new Set<number>();
      const idleSequences = stats.sequences.filter((s) => !active.has(s.sequenceId));
      const idleBlocks = idleSequences.reduce((n, s) => n + s.blocks, 0);
      const kv = { blocksTotal: stats.blocksTotal, blocksUsed: stats.blocksUsed - idleBlocks, blockTokens: stats.blockTokens, sequences: stats.sequences.length - idleSequences.length };
      const key = JSON.stringify(kv);
      if (key === this.kvLast || this.loaded !== loaded) return;
      this.kvLast = key;
      await this.agent.update({ kv });
    } catch {
      // engine closing
    }
  }

  private onFrame(connection: Connection, header: Parameters<StageRunner['accept']>[1], payload: Buffer): void {
    if (this.runner) {
      this.runner.accept(connection, header, payload);
    } else if (header.kind === FrameKind.CONTROL) {
      // A gateway may subscribe before this node serves a plan (or between two plans).
      if (controlOp(payload) === 'subscribe') addSubscriber(this.subscribers, connection);
    } else {
      this.logger.warn(`dropped a ${FrameKind[header.kind]} frame: this node serves no plan yet`);
    }
  }

  private enqueue(fn: () => Promise<void>): void {
    this.work = this.work.then(fn).catch((error: Error) => this.logger.error(error.stack ?? error.message));
  }

  /** Current plans at start, then plan events as they come. */
  private async follow(): Promise<void> {
    const reader = this.connections.open('serving-events');
    const log = new EventLog(reader, this.cp.prefix);
    let after = await log.lastId().catch(() => '0-0');
    try {
      const { plans } = await this.rpc.send('planner.list', {}, { timeoutMs: 2000 });
      for (const plan of plans) this.enqueue(() => this.apply(plan));
    } catch {
      // no planner yet: its first plan arrives as an event
    }
    while (!this.stopped) {
      try {
        const { events, lastId } = await log.read(after, { blockMs: 1000 });
        after = lastId;
        for (const event of events) {
          if (event.type === 'plan.published') this.enqueue(() => this.apply((event.data as { plan: Plan }).plan));
          if (event.type === 'plan.withdrawn' && (event.data as { modelId: string }).modelId === this.runner?.plan.modelId) this.enqueue(() => this.unload());
        }
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    await this.connections.close(reader);
  }

  private async apply(plan: Plan): Promise<void> {
    if (this.stopped) return;
    const current = this.runner?.plan;
    if (current && current.modelId === plan.modelId && current.version >= plan.version) return;
    const role = roleIn(plan, this.options.id);
    if (!role) {
      if (current && current.modelId === plan.modelId) {
        this.logger.log(`plan ${plan.modelId} v${plan.version} no longer uses this node: unloading`);
        await this.unload();
      }
      return;
    }
    const { requirement } = plan;
    const same = this.loaded && this.loaded.modelPath === plan.modelPath && this.loaded.layerStart === role.stage.layerStart && this.loaded.layerEnd === role.stage.layerEnd
      && this.loaded.kvDType === requirement.kvDType && this.loaded.contextTokens === requirement.contextTokens && this.loaded.sequences === requirement.sequences;
    this.runner?.close();
    this.runner = undefined;
    await this.stopKvAgent();
    if (!same) {
      await this.unload();
      try {
        this.loaded = await this.load(plan, role);
      } catch (error) {
        // Say so where users look (`baton nodes`, the gateway's 503 reason), not only in this log.
        const range = `[${role.stage.layerStart},${role.stage.layerEnd})`;
        const status = `failed to load ${plan.modelId} v${plan.version} layers ${range}: ${(error as Error).message}`;
        await this.agent.update({ status: status.length > 200 ? `${status.slice(0, 199)}…` : status, servingPlanId: undefined }).catch(() => undefined);
        throw error;
      }
    }
    const runner = new StageRunner(plan, role, this.loaded!.engine, this.loaded!.eog);
    runner.subscribers = this.subscribers;
    this.runner = runner;
    const agent = new KvAgent(this.connections.open('kv-events'), this.connections.open('kv-commands'), this.cp.prefix, { modelId: plan.modelId, planId: plan.planId, nodeId: this.options.id, stage: role.index }, this.loaded!.engine);
    agent.runner = runner;
    runner.kvEvents = agent;
    this.kvAgent = agent;
    await agent.start().catch((error: Error) => this.logger.warn(`KV events unavailable: ${error.message}`));
    if (!(role.first && role.last)) runner.next = await this.connectNext(plan, role);
    const range = `[${role.stage.layerStart},${role.stage.layerEnd})`;
    await this.agent.update({ status: `serving ${plan.modelId} v${plan.version} layers ${range} (stage ${role.index + 1} of ${plan.stages.length})`, servingPlanId: plan.planId });
    this.logger.log(`serving ${plan.modelId} v${plan.version}: layers ${range}, stage ${role.index + 1} of ${plan.stages.length}`);
  }

  private async load(plan: Plan, role: StageRole): Promise<Loaded> {
    const { layerStart, layerEnd } = role.stage;
    const label = `${plan.modelId} v${plan.version} layers [${layerStart},${layerEnd})`;
    const started = Date.now();
    await warmStage(plan.modelPath, layerStart, layerEnd, role.first, role.last, (p) => {
      const pct = p.totalBytes > 0 ? Math.floor((100 * p.bytesLoaded) / p.totalBytes) : 100;
      const status = `loading ${label} ${pct}% (${formatBytes(p.bytesLoaded)} of ${formatBytes(p.totalBytes)}${p.etaMs ? `, ETA ${(p.etaMs / 1000).toFixed(1)} s` : ''})`;
      this.logger.log(status);
      void this.agent.update({ status, servingPlanId: undefined });
    });
    const { requirement } = plan;
    const engine = await Engine.load({
      model: plan.modelPath,
      layerStart,
      layerEnd,
      threads: this.options.threads ?? 1,
      kvDType: requirement.kvDType,
      kvTokens: requirement.contextTokens * requirement.sequences,
      maxContext: requirement.contextTokens,
    });
    const file = await readGguf(plan.modelPath);
    const eog = role.last ? new Set(loadVocab(plainMetadata(file.metadata)).eog) : new Set<number>();
    this.logger.log(`loaded ${label} in ${Date.now() - started} ms (${engine.info.kernels} kernels, ${engine.info.threads} thread(s))`);
    if (!this.computeMeasured) {
      this.computeMeasured = true;
      // The first steps fault the mapped weights in. Other processes (sibling shards loading and
      // measuring at the same time on a small machine) only ever slow a run down, so the best of
      // five runs of 16 kernel-only decode steps is the kernels' rate…
      await engine.measureComputeRate(4);
      let rate = await engine.measureComputeRate(16);
      for (let i = 0; i < 4; i++) {
        const again = await engine.measureComputeRate(16);
        if (again.bytesPerSec > rate.bytesPerSec) rate = again;
      }
      // …and the same bytes per step, timed as the pipeline issues them (the fastest of its steps,
      // for the same reason), is what a step really costs (see stage-rate.ts).
      const bytesPerStep = rate.bytesPerSec * rate.secondsPerToken;
      const step = await measureStageStep(engine, role, 24, 'fastest').catch((error: Error) => (this.logger.warn(`could not time the stage's steps: ${error.message}`), 0));
      if (step > rate.secondsPerToken) rate = { bytesPerSec: bytesPerStep / step, secondsPerToken: step };
      // A small stage can sit in the CPU's last-level cache while it is measured alone, which a
      // pipeline sharing the machine will not enjoy: never announce more than memory can stream.
      const bandwidth = await measureReadBandwidth({ bytes: 512 * 1024 * 1024, passes: 3, threads: engine.info.threads });
      if (bandwidth < rate.bytesPerSec) rate = { ...rate, bytesPerSec: bandwidth };
      await this.agent.update({ computeBytesPerSec: Math.round(rate.bytesPerSec) });
      this.logger.log(`measured compute rate ${formatBytes(rate.bytesPerSec)}/s`);
    }
    return { engine, modelPath: plan.modelPath, layerStart, layerEnd, kvDType: requirement.kvDType, contextTokens: requirement.contextTokens, sequences: requirement.sequences, eog };
  }

  private async stopKvAgent(): Promise<void> {
    const agent = this.kvAgent;
    this.kvAgent = undefined;
    if (!agent) return;
    await agent.stop();
    for (const client of agent.clients) await this.connections.close(client);
  }

  private async unload(): Promise<void> {
    this.runner?.close();
    this.runner = undefined;
    await this.stopKvAgent();
    const loaded = this.loaded;
    this.loaded = undefined;
    if (loaded) {
      await loaded.engine.close();
      this.kvLast = '';
      await this.agent.update({ status: 'idle', servingPlanId: undefined, kv: undefined });
    }
  }

  /** Connects to the stage this one sends to; retries while the plan is current. */
  private async connectNext(plan: Plan, role: StageRole): Promise<Connection | undefined> {
    for (let attempt = 1; !this.stopped && this.runner?.plan === plan; attempt++) {
      try {
        const { nodes } = await this.rpc.send('discovery.nodes.list', {}, { timeoutMs: 2000 });
        const endpoint = nodes.find((n: NodeRecord) => n.id === role.next.nodeId)?.endpoints.find((e) => e.kind === 'tcp');
        if (!endpoint) throw new Error(`node ${role.next.nodeId} has no data-plane endpoint yet`);
        const connection = await connect({ host: endpoint.address, port: endpoint.port, secret: this.secret });
        connection.on('error', () => undefined);
        connection.on('frame', (header, payload) => this.onFrame(connection, header, payload));
        connection.once('close', () => {
          if (this.runner?.plan === plan && !this.stopped) {
            this.logger.warn(`lost the connection to the next stage ${role.next.nodeId}; reconnecting`);
            this.runner.next = undefined;
            void this.connectNext(plan, role).then((next) => {
              if (this.runner?.plan === plan) this.runner.next = next;
            });
          }
        });
        return connection;
      } catch (error) {
        if (attempt === 1 || attempt % 10 === 0) this.logger.warn(`cannot reach the next stage ${role.next.nodeId} yet: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * attempt)));
      }
    }
    return undefined;
  }
}
