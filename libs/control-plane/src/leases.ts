// Leases: a key that exists only while its owner keeps refreshing it (SET key value PX ttl).
// Expiry means the owner is gone. Used for node registration (ARCHITECTURE §3).
import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';

export class Lease {
  private readonly logger = new Logger('Lease');
  private timer: NodeJS.Timeout | undefined;
  private failing = false;
  private stopped = false;

  constructor(
    private readonly redis: Redis,
    readonly key: string,
    private readonly value: () => string,
    private readonly ttlMs: number,
    private readonly refreshMs: number,
  ) {}

  /** Writes the lease now and keeps refreshing it until stop(). Resolves after the first attempt. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.refresh();
    this.schedule();
  }

  /** Writes the lease immediately (e.g. after the value changed). */
  async refresh(): Promise<boolean> {
    try {
      await this.redis.set(this.key, this.value(), 'PX', this.ttlMs);
      if (this.failing) this.logger.log(`lease ${this.key} restored`);
      this.failing = false;
      return true;
    } catch (error) {
      if (!this.failing) this.logger.warn(`lease ${this.key}: refresh failed (${(error as Error).message}); retrying every ${this.refreshMs} ms`);
      this.failing = true;
      return false;
    }
  }

  /** Stops refreshing and deletes the key (a goodbye: the owner is gone at once). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    try {
      await this.redis.del(this.key);
    } catch (error) {
      this.logger.warn(`lease ${this.key}: could not delete (${(error as Error).message}); it expires within ${this.ttlMs} ms`);
    }
  }

  private schedule(): void {
    this.timer = setTimeout(async () => {
      if (this.stopped) return;
      await this.refresh();
      if (!this.stopped) this.schedule();
    }, this.refreshMs);
  }
}

/** Lists keys matching a pattern with their values (SCAN + MGET; missing values skipped). */
export async function scanValues(redis: Redis, pattern: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 200);
    cursor = next;
    if (keys.length > 0) {
      const values = await redis.mget(...keys);
      keys.forEach((key, i) => {
        const value = values[i];
        if (value !== null && value !== undefined) found.set(key, value);
      });
    }
  } while (cursor !== '0');
  return found;
}
