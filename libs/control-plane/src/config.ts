// Where the control plane lives: one Redis URL and a key/channel namespace prefix. Every key,
// stream and pub/sub channel Baton uses starts with the prefix, so several clusters (or test
// runs) can share one Redis. Pub/sub channels ignore Redis DB numbers, hence a prefix, not a DB.
import type { RedisOptions } from 'ioredis';
import { DEFAULT_PREFIX } from '@baton/contracts';

export interface ControlPlaneOptions {
  redisUrl: string;
  prefix: string;
}

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export function resolveControlPlaneOptions(overrides: Partial<ControlPlaneOptions> = {}, env: NodeJS.ProcessEnv = process.env): ControlPlaneOptions {
  const redisUrl = overrides.redisUrl ?? env.REDIS_URL ?? DEFAULT_REDIS_URL;
  const prefix = overrides.prefix ?? env.BATON_PREFIX ?? DEFAULT_PREFIX;
  parseRedisUrl(redisUrl);
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(prefix)) {
    throw new Error(`invalid namespace prefix ${JSON.stringify(prefix)}: use 1-64 characters of A-Z a-z 0-9 . _ : -`);
  }
  return { redisUrl, prefix };
}

/** Turns redis://[user:pass@]host[:port][/db] (or rediss://) into ioredis options; throws naming the problem. */
export function parseRedisUrl(url: string): Pick<RedisOptions, 'host' | 'port' | 'username' | 'password' | 'db' | 'tls'> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`invalid Redis URL ${JSON.stringify(url)}: expected redis://host:port[/db]`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new Error(`invalid Redis URL ${JSON.stringify(url)}: the scheme must be redis:// or rediss://`);
  }
  const port = parsed.port ? Number(parsed.port) : 6379;
  const dbText = parsed.pathname.replace(/^\//, '');
  const db = dbText === '' ? 0 : Number(dbText);
  if (!Number.isInteger(db) || db < 0) throw new Error(`invalid Redis URL ${JSON.stringify(url)}: the database must be a number`);
  return {
    host: parsed.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port,
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    db,
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/** Reconnect delay after `attempt` failures: 100 ms doubling to a 2 s ceiling. */
export function backoffMs(attempt: number): number {
  return Math.min(2000, 100 * 2 ** Math.max(0, attempt - 1));
}
