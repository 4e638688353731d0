// The one place Baton opens Redis connections (besides the Nest transport, configured from the
// same options). Connections retry forever with backoff and log outages once, not every retry.
import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import { backoffMs, parseRedisUrl, type ControlPlaneOptions } from './config.js';

@Injectable()
export class RedisConnections implements OnApplicationShutdown {
  private readonly logger = new Logger('Redis');
  private readonly clients = new Set<Redis>();

  constructor(readonly options: ControlPlaneOptions) {}

  /**
   * A new connection. `failFast` connections reject commands at once while Redis is down
   * (for periodic work like lease refreshes that must not pile up); others queue them.
   */
  open(name: string, opts: { failFast?: boolean } = {}): Redis {
    let down = false;
    const client = new Redis({
      ...parseRedisUrl(this.options.redisUrl),
      connectionName: `baton:${name}`,
      lazyConnect: false,
      maxRetriesPerRequest: opts.failFast ? 0 : null,
      enableOfflineQueue: !opts.failFast,
      retryStrategy: (attempt) => backoffMs(attempt),
    });
    client.on('error', (error: Error) => {
      if (!down) this.logger.warn(`${name}: Redis at ${this.options.redisUrl} unavailable (${error.message}); retrying with backoff`);
      down = true;
    });
    client.on('ready', () => {
      if (down) this.logger.log(`${name}: Redis is back`);
      down = false;
    });
    this.clients.add(client);
    return client;
  }

  async close(client: Redis): Promise<void> {
    this.clients.delete(client);
    try {
      await client.quit();
    } catch {
      client.disconnect();
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.clients].map((client) => this.close(client)));
  }
}

/** Waits until the connection is ready; calls `onWait` once if that takes more than a second. */
export async function waitForRedis(client: Redis, onWait?: () => void): Promise<void> {
  if (client.status === 'ready') return;
  const timer = setTimeout(() => onWait?.(), 1000);
  try {
    await new Promise<void>((resolve) => client.once('ready', () => resolve()));
  } finally {
    clearTimeout(timer);
  }
}
