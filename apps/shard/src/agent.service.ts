// The node agent's registration: builds this machine's announcement, holds its lease in Redis
// (refreshed every second), hints discovery when it changes, and says goodbye on a clean stop.
// Later issues add the engine (compute rate, loading a layer range) and the transport.
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  BATON_VERSION, FRAME_VERSION, Keys, LEASE_REFRESH_MS, LEASE_TTL_MS,
  type EndpointDto, type NodeAnnouncement, type NodeId,
} from '@baton/contracts';
import { CONTROL_PLANE_OPTIONS, Lease, RedisConnections, RpcClient, waitForRedis, type ControlPlaneOptions } from '@baton/control-plane';
import { rdmaDevices } from '@baton/transport';
import { defaultMemoryBudget, listLocalModels, probeCpu, probeMemory, roundAvailable } from './machine.js';

export interface NodeAgentOptions {
  id: NodeId;
  name: string;
  home: string;
  memoryBudgetBytes?: number;
  endpoints?: EndpointDto[];
  /** Engine compute threads (default 1). */
  threads?: number;
  /** Data-plane listen address (default 0.0.0.0) and port (default: any free one). */
  dataHost?: string;
  dataPort?: number;
  /** Address other nodes use to reach this one (default 127.0.0.1). */
  advertiseHost?: string;
  /** Port other nodes use (default: the bound one; differs behind a proxy or NAT). */
  advertisePort?: number;
}

export const NODE_AGENT_OPTIONS = Symbol('NODE_AGENT_OPTIONS');

/** How often memory and local models are probed again (they change slowly). */
export const PROBE_INTERVAL_MS = 10_000;

@Injectable()
export class NodeAgentService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Node');
  private lease!: Lease;
  private announcement!: NodeAnnouncement;
  private probeTimer: NodeJS.Timeout | undefined;

  constructor(
    @Inject(CONTROL_PLANE_OPTIONS) private readonly cp: ControlPlaneOptions,
    @Inject(NODE_AGENT_OPTIONS) private readonly options: NodeAgentOptions,
    private readonly connections: RedisConnections,
    private readonly rpc: RpcClient,
  ) {}

  current(): NodeAnnouncement {
    return this.announcement;
  }

  async onApplicationBootstrap(): Promise<void> {
    this.announcement = this.build();
    const budget = this.announcement.memory.budgetBytes;
    if (budget > this.announcement.memory.totalBytes) {
      this.logger.warn(`memory budget ${budget} bytes is more than this machine's ${this.announcement.memory.totalBytes} bytes`);
    }
    const redis = this.connections.open(`node-${this.options.id}`, { failFast: true });
    await waitForRedis(redis, () => this.logger.warn(`waiting for Redis at ${this.cp.redisUrl} …`));
    this.lease = new Lease(redis, Keys.node(this.cp.prefix, this.options.id), () => JSON.stringify({ announcement: this.announcement, heartbeatAtMs: Date.now() }), LEASE_TTL_MS, LEASE_REFRESH_MS);
    await this.lease.start();
    void this.hint(false);
    this.logger.log(`node ${this.options.name} (${this.options.id}) announced on ${this.cp.redisUrl} — Baton ${BATON_VERSION}, pid ${process.pid}`);
    this.probeTimer = setInterval(() => void this.reprobe(), PROBE_INTERVAL_MS);
  }

  /** Replaces part of the announcement (status, endpoints, compute rate …) and publishes it now. */
  async update(patch: Partial<NodeAnnouncement>): Promise<void> {
    this.announcement = { ...this.announcement, ...patch };
    if (await this.lease.refresh()) void this.hint(false);
  }

  async onModuleDestroy(): Promise<void> {
    if (this.probeTimer) clearInterval(this.probeTimer);
    if (!this.lease) return;
    await this.lease.stop();
    await this.hint(true);
    this.logger.log(`node ${this.options.id} said goodbye`);
  }

  private async reprobe(): Promise<void> {
    const next = this.build();
    const before = JSON.stringify({ m: this.announcement.memory, l: this.announcement.models });
    if (JSON.stringify({ m: next.memory, l: next.models }) !== before) {
      await this.update({ memory: next.memory, models: next.models });
    }
  }

  private async hint(goodbye: boolean): Promise<void> {
    try {
      await Promise.race([this.rpc.emit('node.changed', { nodeId: this.options.id, goodbye }), new Promise((resolve) => setTimeout(resolve, 500))]);
    } catch {
      // a hint is only a hint: discovery polls anyway
    }
  }

  private build(): NodeAnnouncement {
    const memory = probeMemory();
    const previous = this.announcement;
    return {
      id: this.options.id,
      name: this.options.name,
      hostname: hostname(),
      pid: process.pid,
      version: BATON_VERSION,
      protocolVersion: FRAME_VERSION,
      endpoints: previous?.endpoints ?? this.options.endpoints ?? [],
      memory: {
        totalBytes: memory.totalBytes,
        availableBytes: roundAvailable(memory.availableBytes),
        budgetBytes: this.options.memoryBudgetBytes ?? defaultMemoryBudget(memory.totalBytes),
      },
      cpu: probeCpu(),
      computeBytesPerSec: previous?.computeBytesPerSec ?? null,
      models: listLocalModels(join(this.options.home, 'models')),
      rdmaDevices: previous?.rdmaDevices ?? rdmaDevices(),
      startedAtMs: previous?.startedAtMs ?? Date.now(),
      status: previous?.status ?? 'idle',
      ...(previous?.servingPlanId ? { servingPlanId: previous.servingPlanId } : {}),
      ...(previous?.kv ? { kv: previous.kv } : {}),
    };
  }
}
