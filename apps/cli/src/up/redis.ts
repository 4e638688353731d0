// Finding a Redis for `baton up`: the one given (--redis / $REDIS_URL); else one answering on
// 127.0.0.1:6379; else an embedded `redis-server` child on a free port with its data under
// ~/.baton/redis; else an error that says how to install one.
import { join } from 'node:path';
import { hasRedisServerBinary, parseRedisUrl, redisAnswers, startRedisServer, type RedisServerHandle } from '@baton/control-plane';
import { CliError } from '../command.js';

export const INSTALL_REDIS_HINT =
  'Baton needs Redis 6.2 or newer. Install one and run `baton up` again:\n' +
  '  Debian/Ubuntu: sudo apt-get install -y redis-server\n' +
  '  macOS:         brew install redis\n' +
  '  Docker:        docker run -d -p 6379:6379 redis:7\n' +
  'or point Baton at a running one with --redis redis://HOST:6379.';

export interface ResolvedRedis {
  url: string;
  /** Set when Baton started its own redis-server. */
  embedded?: RedisServerHandle;
  how: string;
}

export async function resolveRedis(given: string | undefined, home: string): Promise<ResolvedRedis> {
  if (given) {
    parseRedisUrl(given);
    if (!(await redisAnswers(given))) throw new CliError(`nothing answers at ${given}. Start that Redis, or leave out --redis/REDIS_URL so Baton finds or starts one.`);
    return { url: given, how: 'given' };
  }
  const local = 'redis://127.0.0.1:6379';
  if (await redisAnswers(local)) return { url: local, how: 'found on 127.0.0.1:6379' };
  if (!hasRedisServerBinary()) throw new CliError(`no Redis answers on 127.0.0.1:6379 and no redis-server binary is installed.\n${INSTALL_REDIS_HINT}`);
  const dir = join(home, 'redis');
  try {
    const embedded = await startRedisServer({ dir });
    return { url: embedded.url, embedded, how: `embedded redis-server, pid ${embedded.child.pid}, data in ${dir}` };
  } catch (error) {
    throw new CliError((error as Error).message);
  }
}
