// Reading the live cluster for CLI commands: ask discovery (RPC); when discovery does not
// answer, read the node leases straight from Redis so `baton nodes` still tells the truth.
import { Redis } from 'ioredis';
import { Keys, type KvUsageReport, type LinkMeasurement, type NodeId, type NodeRecord } from '@baton/contracts';
import { parseRedisUrl, resolveControlPlaneOptions, RpcClient, scanValues, type ControlPlaneOptions } from '@baton/control-plane';
import { isVersionMismatch, parseLease } from '@baton/discovery';
import { CliError } from './command.js';

export interface ClusterSnapshot {
  nodes: NodeRecord[];
  links: LinkMeasurement[];
  /** Where the answer came from: the discovery service, or the leases directly. */
  source: 'discovery' | 'leases';
  /** The KV-cache manager's per-node accounting (running, cached-idle), when it answers. */
  kv?: KvUsageReport;
}

export async function loadClusterSnapshot(opts: Partial<ControlPlaneOptions> & { timeoutMs?: number } = {}): Promise<ClusterSnapshot> {
  const options = resolveControlPlaneOptions(opts);
  await assertRedisReachable(options.redisUrl);
  const rpc = new RpcClient(options);
  try {
    const kv = rpc.send('kv.usage', {}, { timeoutMs: opts.timeoutMs ?? 1500 }).catch(() => undefined);
    try {
      const reply = await rpc.send('discovery.nodes.list', {}, { timeoutMs: opts.timeoutMs ?? 1500 });
      const usage = await kv;
      return { nodes: reply.nodes, links: reply.links, source: 'discovery', ...(usage ? { kv: usage } : {}) };
    } catch {
      const usage = await kv;
      return { nodes: await readLeases(options), links: [], source: 'leases', ...(usage ? { kv: usage } : {}) };
    }
  } finally {
    await rpc.close();
  }
}

async function readLeases(options: ControlPlaneOptions): Promise<NodeRecord[]> {
  const redis = new Redis({ ...parseRedisUrl(options.redisUrl), lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const nodes: NodeRecord[] = [];
    for (const [key, raw] of await scanValues(redis, Keys.nodePattern(options.prefix))) {
      const parsed = parseLease(key, raw);
      if (!parsed.ok) continue;
      nodes.push({ ...parsed.announcement, id: parsed.announcement.id as NodeId, lastSeenMs: parsed.heartbeatAtMs, versionMismatch: isVersionMismatch(parsed.announcement) });
    }
    return nodes.sort((a, b) => a.name.localeCompare(b.name));
  } finally {
    redis.disconnect();
  }
}

/** Fails fast with a clear message when nothing answers at the Redis URL. */
export async function assertRedisReachable(url: string, timeoutMs = 1500): Promise<void> {
  const redis = new Redis({ ...parseRedisUrl(url), lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: timeoutMs, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    throw new CliError(`cannot reach Redis at ${url} (${(error as Error).message}). Start the cluster with \`baton up\`, or pass --redis redis://HOST:6379 of a running cluster.`);
  } finally {
    redis.disconnect();
  }
}
