// Measures this node's links: it probes every other node's data-plane endpoint (RTT p50/p99 and
// bandwidth with PROBE frames) every LINK_PROBE_INTERVAL_MS, and within a couple of seconds a node
// that joins, moves to a new endpoint, or settles (either side's plan or measured compute rate
// changed), and appends link-measured events that discovery shows in `baton nodes` and the
// planner uses.
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { LinkMeasurement, NodeId } from '@baton/contracts';
import { CONTROL_PLANE_OPTIONS, EventLog, RedisConnections, RpcClient, batonHome, loadOrCreateSecret, type ControlPlaneOptions } from '@baton/control-plane';
import { probeLink } from '@baton/transport';
import { NODE_AGENT_OPTIONS, type NodeAgentOptions } from '../agent.service.js';

export const LINK_PROBE_INTERVAL_MS = 30_000;
/** How often the node list is checked for peers that are due (new, moved, or last probed 30 s ago). */
const CHECK_MS = 2_000;

@Injectable()
export class LinkProberService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Links');
  private timer: NodeJS.Timeout | undefined;
  private events!: EventLog;
  private stopped = false;
  private readonly failing = new Set<string>();
  /** Per peer: when it was last probed (or tried) and at which endpoint. */
  private readonly probed = new Map<string, { atMs: number; endpoint: string }>();

  constructor(
    @Inject(CONTROL_PLANE_OPTIONS) private readonly cp: ControlPlaneOptions,
    @Inject(NODE_AGENT_OPTIONS) private readonly options: NodeAgentOptions,
    private readonly connections: RedisConnections,
    private readonly rpc: RpcClient,
  ) {}

  onApplicationBootstrap(): void {
    this.events = new EventLog(this.connections.open('links'), this.cp.prefix);
    this.schedule(CHECK_MS);
  }

  onModuleDestroy(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.probeAll({ dueOnly: true }).finally(() => this.schedule(CHECK_MS)), ms);
  }

  /**
   * Probes every other node once — or, with `dueOnly`, those never probed at their current
   * endpoint or not for LINK_PROBE_INTERVAL_MS. Failures are logged once per peer until it
   * answers again.
   */
  async probeAll({ dueOnly = false }: { dueOnly?: boolean } = {}): Promise<LinkMeasurement[]> {
    const measured: LinkMeasurement[] = [];
    let nodes;
    try {
      ({ nodes } = await this.rpc.send('discovery.nodes.list', { includeMismatched: false }, { timeoutMs: 2000 }));
    } catch {
      return measured;
    }
    const secret = loadOrCreateSecret(this.options.home ?? batonHome());
    const self = nodes.find((n) => n.id === this.options.id);
    for (const node of nodes) {
      if (this.stopped || node.id === this.options.id) continue;
      const endpoint = node.endpoints.find((e) => e.kind === 'tcp');
      if (!endpoint || endpoint.port === undefined) continue;
      // A probe taken while either side was still loading or measuring its engine (both busy on a
      // small machine) overstates the link: once either side settles — its compute rate or plan
      // changes — the pair is probed again.
      const key = `${endpoint.address}:${endpoint.port} ${node.computeBytesPerSec ?? '-'} ${node.servingPlanId ?? '-'} ${self?.computeBytesPerSec ?? '-'} ${self?.servingPlanId ?? '-'}`;
      const last = this.probed.get(node.id);
      if (dueOnly && last && last.endpoint === key && Date.now() - last.atMs < LINK_PROBE_INTERVAL_MS) continue;
      this.probed.set(node.id, { atMs: Date.now(), endpoint: key });
      try {
        const result = await probeLink({ host: endpoint.address, port: endpoint.port, secret }, { rounds: 20, bytes: 256 * 1024, frames: 4, timeoutMs: 5000 });
        const link: LinkMeasurement = { from: this.options.id as NodeId, to: node.id, ...result, measuredAtMs: Date.now() };
        await this.events.append('link.measured', { link });
        measured.push(link);
        this.failing.delete(node.id);
      } catch (error) {
        if (!this.failing.has(node.id)) this.logger.warn(`cannot probe ${node.name} (${endpoint.address}:${endpoint.port}): ${(error as Error).message}`);
        this.failing.add(node.id);
      }
    }
    return measured;
  }
}
