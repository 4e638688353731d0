// The node registry service: reads the node leases (on a 250 ms poll, and at once when a node
// hints that its lease changed), keeps the registry, appends node events to the event log, and
// answers `discovery.*` RPCs. A Redis outage pauses it; it resumes by itself.
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { Redis } from 'ioredis';
import {
  BATON_VERSION, Keys, LEASE_TTL_MS,
  type LinkMeasurement, type ListNodesResponse, type NodeId, type NodeRecord, type PingResponse,
} from '@baton/contracts';
import { CONTROL_PLANE_OPTIONS, EventLog, RedisConnections, RpcServer, scanValues, type ControlPlaneOptions } from '@baton/control-plane';
import { parseLease, reconcile, type Observed } from './registry.js';

export const POLL_INTERVAL_MS = 250;

@Injectable()
export class DiscoveryService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Discovery');
  private readonly startedAt = Date.now();
  private redis!: Redis;
  private events!: EventLog;
  private rpc!: RpcServer;
  private registry = new Map<NodeId, NodeRecord>();
  private readonly links = new Map<string, LinkMeasurement>();
  private readonly goodbyes = new Set<NodeId>();
  private readonly refused = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** After an outage, leaves are held back for one lease period so nodes can re-announce. */
  private holdLeavesUntil = 0;
  private redisDown = false;

  constructor(
    @Inject(CONTROL_PLANE_OPTIONS) private readonly options: ControlPlaneOptions,
    private readonly connections: RedisConnections,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.redis = this.connections.open('discovery', { failFast: true });
    this.events = new EventLog(this.redis, this.options.prefix);
    this.rpc = this.createRpcServer();
    await this.listenWithRetry();
    void this.followLinks();
    this.logger.log(`discovery ${BATON_VERSION} watching ${this.options.prefix}node:* on ${this.options.redisUrl}`);
    this.schedule();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.polling;
    await this.rpc?.close();
  }

  list(includeMismatched: boolean): ListNodesResponse {
    const nodes = [...this.registry.values()].filter((n) => includeMismatched || !n.versionMismatch).sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
    return { nodes, links: [...this.links.values()], discoveryVersion: BATON_VERSION };
  }

  ping(): PingResponse {
    return { service: 'discovery', version: BATON_VERSION, pid: process.pid, uptimeMs: Date.now() - this.startedAt };
  }

  private createRpcServer(): RpcServer {
    const rpc = new RpcServer(this.options);
    rpc.register({
      'discovery.nodes.list': (request) => this.list(request.includeMismatched ?? true),
      'discovery.ping': () => this.ping(),
    });
    rpc.onHint('node.changed', (hint) => {
      if (hint.goodbye) this.goodbyes.add(hint.nodeId as NodeId);
      this.pollSoon();
    });
    return rpc;
  }

  /** Keeps the latest link measurement per ordered pair from link.measured events. */
  private async followLinks(): Promise<void> {
    const reader = this.connections.open('discovery-links');
    const log = new EventLog(reader, this.options.prefix);
    let after = '0-0';
    while (!this.stopped) {
      try {
        const { events, lastId } = await log.read(after, { blockMs: 1000 });
        after = lastId;
        for (const event of events) {
          if (event.type !== 'link.measured') continue;
          const { link } = event.data as { link: LinkMeasurement };
          if (this.registry.has(link.from) || this.registry.has(link.to)) this.links.set(`${link.from}>${link.to}`, link);
        }
        for (const [key, link] of this.links) {
          if (!this.registry.has(link.from) || !this.registry.has(link.to)) this.links.delete(key);
        }
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    await this.connections.close(reader);
  }

  private async listenWithRetry(): Promise<void> {
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        await this.rpc.listen();
        return;
      } catch (error) {
        if (attempt === 1) this.logger.warn(`RPC server cannot reach Redis (${(error as Error).message}); retrying`);
        await this.rpc.close().catch(() => undefined);
        this.rpc = this.createRpcServer();
        await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * attempt)));
      }
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.poll().finally(() => this.schedule());
    }, POLL_INTERVAL_MS);
  }

  private pollSoon(): void {
    if (this.polling) {
      this.again = true;
      return;
    }
    void this.poll();
  }

  /** One reconciliation against the leases in Redis. Never throws. */
  poll(): Promise<void> {
    if (this.polling) {
      this.again = true;
      return this.polling;
    }
    this.polling = this.pollOnce()
      .catch((error: Error) => {
        if (!this.redisDown) this.logger.warn(`cannot read leases (${error.message}); registry frozen until Redis answers`);
        this.redisDown = true;
      })
      .finally(() => {
        this.polling = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          void this.poll();
        }
      });
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    const raw = await scanValues(this.redis, Keys.nodePattern(this.options.prefix));
    const now = Date.now();
    if (this.redisDown) {
      this.redisDown = false;
      this.holdLeavesUntil = now + LEASE_TTL_MS;
      this.logger.log('Redis is back; reading leases again');
    }
    const observed = new Map<NodeId, Observed>();
    for (const [key, value] of raw) {
      const parsed = parseLease(key, value);
      if (!parsed.ok) {
        const reason = parsed.problems.join('; ');
        if (this.refused.get(key) !== reason) this.logger.warn(`refused the announcement at ${key}: ${reason}`);
        this.refused.set(key, reason);
        continue;
      }
      this.refused.delete(key);
      observed.set(parsed.announcement.id, { announcement: parsed.announcement, heartbeatAtMs: parsed.heartbeatAtMs });
    }
    if (now < this.holdLeavesUntil) {
      for (const [id, record] of this.registry) {
        if (!observed.has(id)) observed.set(id, { announcement: stripRecord(record), heartbeatAtMs: record.lastSeenMs });
      }
    }
    const { registry, events } = reconcile(this.registry, observed, this.goodbyes, now);
    // The registry changes before the events go out: whoever reacts to an event and then asks
    // discovery must see the change.
    const previous = this.registry;
    this.registry = registry;
    try {
      for (const event of events) {
        await this.events.append(event.type, event.data as never);
        this.describe(event);
      }
    } catch (error) {
      this.registry = previous; // not announced: the next poll tries again
      throw error;
    }
    for (const id of [...this.goodbyes]) if (!registry.has(id)) this.goodbyes.delete(id);
  }

  private describe(event: ReturnType<typeof reconcile>['events'][number]): void {
    if (event.type === 'node.joined') {
      const n = event.data.node;
      const warning = n.versionMismatch ? ` — WARNING: runs Baton ${n.version} (protocol ${n.protocolVersion}), this cluster runs ${BATON_VERSION}` : '';
      this.logger.log(`node joined: ${n.name} (${n.id}) on ${n.hostname}, pid ${n.pid}${warning}`);
    } else if (event.type === 'node.left') {
      this.logger.log(`node left: ${event.data.name} (${event.data.nodeId}) — ${event.data.reason}`);
    } else {
      this.logger.debug?.(`node updated: ${event.data.node.id}: ${event.data.changed.join(', ')}`);
    }
  }
}

function stripRecord(record: NodeRecord) {
  const { lastSeenMs: _l, versionMismatch: _v, ...announcement } = record;
  return announcement;
}
