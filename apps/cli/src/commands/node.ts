import type { CommandSpec } from '../command.js';
import { bytesOption, intOption, stringOption } from '../args.js';

export const nodeCommand: CommandSpec = {
  name: 'node',
  summary: 'Run the Baton agent on this machine and join a cluster',
  description:
    'Announces this machine (memory, CPU, GGUF files under ~/.baton/models) to the cluster whose Redis\n' +
    'is given, and keeps its lease alive until you press Ctrl-C. The node id is kept in ~/.baton/node-id\n' +
    '(or $BATON_HOME/node-id) so a machine keeps its identity across restarts.',
  options: {
    redis: { type: 'string', value: 'URL', description: 'Redis of the cluster (or $REDIS_URL)', default: 'redis://127.0.0.1:6379' },
    id: { type: 'string', value: 'ID', description: 'Node id (default: the persistent id in ~/.baton/node-id)' },
    name: { type: 'string', value: 'NAME', description: 'Display name (default: this host name)' },
    'memory-budget': { type: 'string', value: 'SIZE', description: 'Memory Baton may use here, e.g. 16GB (default: 75% of RAM)' },
    prefix: { type: 'string', value: 'PREFIX', description: 'Key namespace of the cluster (or $BATON_PREFIX)', default: 'baton:' },
    threads: { type: 'string', value: 'N', description: 'Engine compute threads (default: all cores)' },
    'data-host': { type: 'string', value: 'ADDR', description: 'Address the data plane listens on', default: '0.0.0.0' },
    'data-port': { type: 'string', value: 'PORT', description: 'Data-plane port (default: any free port)' },
    advertise: { type: 'string', value: 'HOST', description: 'Address other machines reach this one at (default: first LAN IPv4 address)' },
  },
  examples: ['baton node --redis redis://macbook.local:6379', 'baton node --name mini --memory-budget 12GB'],
  async run(ctx) {
    const memoryBudgetBytes = bytesOption(ctx, 'memory-budget');
    intOption(ctx, 'threads', { min: 1, max: 1024 });
    intOption(ctx, 'data-port', { min: 0, max: 65535 });
    const redisUrl = stringOption(ctx, 'redis');
    const { assertRedisReachable } = await import('../cluster.js');
    const { resolveControlPlaneOptions } = await import('@baton/control-plane');
    await assertRedisReachable(resolveControlPlaneOptions({ redisUrl }).redisUrl);
    const { startNode } = await import('@baton/shard');
    const { cpus } = await import('node:os');
    const app = await startNode({
      redisUrl,
      prefix: stringOption(ctx, 'prefix'),
      id: stringOption(ctx, 'id'),
      name: stringOption(ctx, 'name'),
      memoryBudgetBytes,
      threads: intOption(ctx, 'threads', { min: 1, max: 1024 }) ?? cpus().length,
      dataHost: stringOption(ctx, 'data-host'),
      dataPort: intOption(ctx, 'data-port', { min: 0, max: 65535 }),
      advertiseHost: stringOption(ctx, 'advertise'),
    });
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    await app.close();
    return 0;
  },
};
