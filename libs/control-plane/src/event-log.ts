// The cluster event log on a Redis Stream: typed append, read after an id, consumer groups and
// gap detection. Events that must not be lost go here, not on pub/sub (Redis drops slow
// pub/sub subscribers). Entries that fail to parse are skipped and counted, never thrown.
import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { EVENT_TYPES, Keys, type ClusterEvent, type EventMap, type EventType } from '@baton/contracts';

export interface ReadResult {
  events: ClusterEvent[];
  /** The id to pass to the next read. */
  lastId: string;
  /** True when entries after `afterId` were trimmed away before this reader saw them. */
  gap: boolean;
}

/** Compares two stream ids ("ms-seq"). */
export function compareStreamIds(a: string, b: string): number {
  const [am, as] = a.split('-').map((x) => BigInt(x || '0'));
  const [bm, bs] = b.split('-').map((x) => BigInt(x || '0'));
  if (am! !== bm!) return am! < bm! ? -1 : 1;
  if ((as ?? 0n) !== (bs ?? 0n)) return (as ?? 0n) < (bs ?? 0n) ? -1 : 1;
  return 0;
}

type RawEntry = [id: string, fields: string[]];

export class EventLog {
  private readonly logger = new Logger('EventLog');
  readonly key: string;
  /** Entries skipped because they did not parse. */
  invalidEntries = 0;

  constructor(private readonly redis: Redis, prefix: string, private readonly maxLength = 10_000) {
    this.key = Keys.events(prefix);
  }

  async append<T extends EventType>(type: T, data: EventMap[T]): Promise<string> {
    const id = await this.redis.xadd(this.key, 'MAXLEN', '~', String(this.maxLength), '*', 'type', type, 'at', String(Date.now()), 'data', JSON.stringify(data));
    return id as string;
  }

  /** The id of the newest entry ("0-0" for an empty stream): start reading after it to see only new events. */
  async lastId(): Promise<string> {
    const entries = (await this.redis.xrevrange(this.key, '+', '-', 'COUNT', 1)) as RawEntry[];
    return entries[0]?.[0] ?? '0-0';
  }

  /** Reads events after `afterId`; blocks up to `blockMs` when there are none (0 = don't block). */
  async read(afterId: string, opts: { count?: number; blockMs?: number } = {}): Promise<ReadResult> {
    const count = String(opts.count ?? 100);
    const reply = (opts.blockMs
      ? await this.redis.xread('COUNT', count, 'BLOCK', String(opts.blockMs), 'STREAMS', this.key, afterId)
      : await this.redis.xread('COUNT', count, 'STREAMS', this.key, afterId)) as [string, RawEntry[]][] | null;
    const entries = reply?.[0]?.[1] ?? [];
    const gap = afterId !== '0-0' && afterId !== '0' ? await this.trimmedSince(afterId) : false;
    return { events: this.parse(entries), lastId: entries.at(-1)?.[0] ?? afterId, gap };
  }

  /** Creates a consumer group (idempotent). `startId` "$" = only new events, "0" = everything kept. */
  async ensureGroup(group: string, startId = '$'): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', this.key, group, startId, 'MKSTREAM');
    } catch (error) {
      if (!String((error as Error).message).includes('BUSYGROUP')) throw error;
    }
  }

  /** Reads new events for a consumer of a group; they stay pending until acked. */
  async readGroup(group: string, consumer: string, opts: { count?: number; blockMs?: number } = {}): Promise<ClusterEvent[]> {
    const args: (string | number)[] = ['GROUP', group, consumer, 'COUNT', opts.count ?? 100];
    if (opts.blockMs) args.push('BLOCK', opts.blockMs);
    args.push('STREAMS', this.key, '>');
    const reply = (await (this.redis as unknown as { xreadgroup(...a: (string | number)[]): Promise<unknown> }).xreadgroup(...args)) as [string, RawEntry[]][] | null;
    return this.parse(reply?.[0]?.[1] ?? []);
  }

  async ack(group: string, ...ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    return this.redis.xack(this.key, group, ...ids);
  }

  /**
   * Whether entries after `afterId` may have been lost to trimming or deletion: the oldest entry
   * kept is newer than the reader's position, or an entry newer than it was deleted. (A reader
   * whose own last entry was trimmed may see a false alarm; a full resync is always safe.)
   */
  private async trimmedSince(afterId: string): Promise<boolean> {
    try {
      const info = (await this.redis.call('XINFO', 'STREAM', this.key)) as unknown[];
      const field = (name: string) => {
        const at = info.indexOf(name);
        return at < 0 ? undefined : String(info[at + 1]);
      };
      const firstKept = field('recorded-first-entry-id');
      const maxDeleted = field('max-deleted-entry-id');
      const length = Number(field('length') ?? 0);
      if (length > 0 && firstKept && firstKept !== '0-0' && compareStreamIds(firstKept, afterId) > 0) return true;
      return maxDeleted !== undefined && compareStreamIds(maxDeleted, afterId) > 0;
    } catch {
      return false; // no stream yet
    }
  }

  private parse(entries: RawEntry[]): ClusterEvent[] {
    const events: ClusterEvent[] = [];
    for (const [id, fields] of entries) {
      const record: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!;
      const type = record.type as EventType;
      try {
        if (!EVENT_TYPES.includes(type)) throw new Error(`unknown event type ${JSON.stringify(record.type)}`);
        const data = JSON.parse(record.data ?? '') as unknown;
        if (data === null || typeof data !== 'object') throw new Error('data is not an object');
        events.push({ id, type, atMs: Number(record.at) || 0, data: data as EventMap[EventType] });
      } catch (error) {
        this.invalidEntries++;
        this.logger.warn(`skipped event ${id}: ${(error as Error).message}`);
      }
    }
    return events;
  }
}
