import { formatBytes, type KvNodeUsage, type KvUsageReport, type NodeRecord, type LinkMeasurement } from '@baton/contracts';
import type { CommandSpec } from '../command.js';
import { flag, stringOption } from '../args.js';
import { formatTable } from '../table.js';

function ago(ms: number, now: number): string {
  const s = Math.max(0, now - ms) / 1000;
  return s < 60 ? `${s.toFixed(1)}s ago` : `${Math.round(s / 60)}m ago`;
}

/**
 * The KV column: the manager's view when it runs (blocks of running sequences, of cached idle ones
 * — evictable at once — and the capacity), else the node's own count of blocks in use.
 */
export function formatKv(node: NodeRecord, kv?: KvUsageReport): string {
  const managed = kv?.nodes.filter((u) => u.nodeId === node.id) ?? [];
  if (managed.length > 0) {
    const sum = (pick: (u: KvNodeUsage) => number) => managed.reduce((n, u) => n + pick(u), 0);
    return `${sum((u) => u.runningBlocks)} running + ${sum((u) => u.cachedIdleBlocks)} cached / ${sum((u) => u.capacityBlocks)} blocks`;
  }
  return node.kv ? `${node.kv.blocksUsed}/${node.kv.blocksTotal} blocks` : '';
}

export function formatNodes(nodes: NodeRecord[], links: LinkMeasurement[], now = Date.now(), kv?: KvUsageReport): string {
  if (nodes.length === 0) return 'No nodes. Start one with `baton node --redis URL` on each machine, or `baton up` here.';
  const rows = nodes.map((n) => [
    n.id,
    n.name,
    n.hostname,
    n.pid,
    n.versionMismatch ? `${n.version} (MISMATCH)` : n.version,
    `${formatBytes(n.memory.budgetBytes)} / ${formatBytes(n.memory.totalBytes)}`,
    formatBytes(n.memory.availableBytes),
    `${n.cpu.threads}× ${n.cpu.arch}${n.rdmaDevices.length ? ` rdma:${n.rdmaDevices.join(',')}` : ''}`,
    n.computeBytesPerSec === null ? 'unmeasured' : `${formatBytes(n.computeBytesPerSec)}/s`,
    formatKv(n, kv),
    n.status ?? '',
    ago(n.lastSeenMs, now),
  ]);
  let out = formatTable(['ID', 'NAME', 'HOST', 'PID', 'VERSION', 'BUDGET / RAM', 'AVAILABLE', 'CPU', 'COMPUTE', 'KV', 'STATUS', 'LAST SEEN'], rows);
  const mismatched = nodes.filter((n) => n.versionMismatch);
  if (mismatched.length > 0) {
    out += `\n\n${mismatched.length} node(s) run a different Baton version or protocol: upgrade them to take part in plans.`;
  }
  if (kv?.queuedRequests) out += `\n\n${kv.queuedRequests} request(s) waiting for KV room.`;
  if (links.length > 0) {
    const names = new Map(nodes.map((n) => [n.id as string, n.name]));
    out += '\n\nLinks:\n' + formatTable(
      ['FROM', 'TO', 'RTT p50', 'RTT p99', 'BANDWIDTH', 'MEASURED'],
      links.map((l) => [names.get(l.from) ?? l.from, names.get(l.to) ?? l.to, `${l.rttP50Ms.toFixed(3)} ms`, `${l.rttP99Ms.toFixed(3)} ms`, `${formatBytes(l.bandwidthBytesPerSec)}/s`, ago(l.measuredAtMs, now)]),
    );
  }
  return out;
}

export const nodesCommand: CommandSpec = {
  name: 'nodes',
  summary: 'List the nodes in the cluster, their memory and links',
  options: {
    json: { type: 'boolean', description: 'Print {"nodes": [...], "links": [...], "kv"?: {...}} as JSON' },
    redis: { type: 'string', value: 'URL', description: 'Redis of the cluster (or $REDIS_URL)', default: 'redis://127.0.0.1:6379' },
    prefix: { type: 'string', value: 'PREFIX', description: 'Key namespace of the cluster (or $BATON_PREFIX)', default: 'baton:' },
  },
  examples: ['baton nodes', 'baton nodes --json | jq ".nodes[].name"'],
  async run(ctx) {
    const { loadClusterSnapshot } = await import('../cluster.js');
    const snapshot = await loadClusterSnapshot({ redisUrl: stringOption(ctx, 'redis'), prefix: stringOption(ctx, 'prefix') });
    if (flag(ctx, 'json')) {
      console.log(JSON.stringify({ nodes: snapshot.nodes, links: snapshot.links, source: snapshot.source, ...(snapshot.kv ? { kv: snapshot.kv } : {}) }, null, 2));
      return 0;
    }
    if (snapshot.source === 'leases') console.error('(discovery is not answering: read the node leases directly)');
    console.log(formatNodes(snapshot.nodes, snapshot.links, Date.now(), snapshot.kv));
    return 0;
  },
};
