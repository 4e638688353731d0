import { hostname, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatBytes } from '@baton/contracts';
import type { CommandSpec } from '../command.js';
import { CliError } from '../command.js';
import { bytesOption, intOption, stringOption } from '../args.js';

/** The process entry (dist/main.js) of a workspace app, found through its package. */
function appMain(pkg: string): string {
  return join(dirname(fileURLToPath(import.meta.resolve(pkg))), 'main.js');
}

export const upCommand: CommandSpec = {
  name: 'up',
  summary: 'Start a local Baton cluster: Redis (if needed), discovery, planner and N node agents',
  description:
    'Redis: --redis/$REDIS_URL when given; else the one answering on 127.0.0.1:6379; else an embedded\n' +
    'redis-server on a free port with its data under ~/.baton/redis. Each node agent gets an equal share\n' +
    'of the memory budget. Press Ctrl-C to stop everything this command started.',
  options: {
    shards: { type: 'string', value: 'N', description: 'Node agents to start on this machine', default: '2' },
    redis: { type: 'string', value: 'URL', description: 'Use this Redis (or $REDIS_URL)' },
    prefix: { type: 'string', value: 'PREFIX', description: 'Key namespace of the cluster (or $BATON_PREFIX)', default: 'baton:' },
    'memory-budget': { type: 'string', value: 'SIZE', description: 'Memory for all local shards together (default: 75% of RAM)' },
  },
  examples: ['baton up', 'baton up --shards 3', 'baton up --redis redis://127.0.0.1:6390'],
  async run(ctx) {
    const shards = intOption(ctx, 'shards', { min: 1, max: 64 }) ?? 2;
    const totalBudget = bytesOption(ctx, 'memory-budget') ?? Math.floor(totalmem() * 0.75);
    const { resolveControlPlaneOptions, RpcClient } = await import('@baton/control-plane');
    const { batonHome, loadOrCreateNodeId } = await import('@baton/shard');
    const { resolveRedis } = await import('../up/redis.js');
    const { Supervisor } = await import('../up/supervisor.js');
    const log = (line: string) => console.log(line);
    const home = batonHome();
    const redis = await resolveRedis(stringOption(ctx, 'redis') ?? process.env.REDIS_URL, home);
    const options = resolveControlPlaneOptions({ redisUrl: redis.url, prefix: stringOption(ctx, 'prefix') });
    const common = ['--redis', options.redisUrl, '--prefix', options.prefix];

    let failed: string | undefined;
    let wake: () => void = () => undefined;
    const stopped = new Promise<void>((resolve) => (wake = resolve));
    const supervisor = new Supervisor(log, (name, code, signal) => {
      log(`[up]       ${name} exited unexpectedly (${signal ?? `code ${code}`})`);
      if (name === 'discovery' || name === 'planner') {
        failed = `${name} stopped`;
        wake();
      }
    });
    const onSignal = () => wake();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);

    const baseId = loadOrCreateNodeId(home);
    const host = hostname().replace(/\.local$/, '');
    const perShard = Math.floor(totalBudget / shards);
    supervisor.start('discovery', appMain('@baton/discovery'), common);
    supervisor.start('planner', appMain('@baton/planner'), common);
    for (let i = 1; i <= shards; i++) {
      supervisor.start(`shard-${i}`, appMain('@baton/shard'), [...common, '--id', `${baseId}-${i}`, '--name', `${host}-${i}`, '--memory-budget', String(perShard)]);
    }

    const rpc = new RpcClient(options);
    const ready = await (async () => {
      for (let i = 0; i < 100 && !failed; i++) {
        try {
          const { nodes } = await rpc.send('discovery.nodes.list', {}, { timeoutMs: 1000 });
          if (nodes.filter((n) => n.id.startsWith(`${baseId}-`)).length >= shards) return nodes;
        } catch {
          // discovery still starting
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      return undefined;
    })();
    await rpc.close();
    if (ready) {
      log('');
      log(`Baton is up: Redis ${options.redisUrl} (${redis.how}), namespace ${options.prefix}`);
      for (const n of ready) log(`  node ${n.name} (${n.id}) pid ${n.pid}, budget ${formatBytes(n.memory.budgetBytes)}`);
      log('Try `npx baton nodes` in another terminal. Press Ctrl-C to stop.');
      log('');
    } else if (!failed) {
      failed = 'the nodes did not register within 20 s (see the log lines above)';
    }
    if (!failed) await stopped;
    log('[up]       stopping …');
    await supervisor.stopAll();
    if (redis.embedded) {
      await redis.embedded.stop();
      log('[up]       stopped the embedded redis-server');
    }
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (failed) throw new CliError(failed);
    return 0;
  },
};
