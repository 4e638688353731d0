// The kv-cache service's Redis side, behind one injectable class: reads the shards' event and
// dump stream, appends commands to each node's command stream, and keeps the ledger snapshot.
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { KvKeys, KV_STREAM_MAX_LENGTH, KvShardDumpDto, KvShardEventDto, validateDto, type KvShardCommand, type KvShardDump, type KvShardEvent } from '@baton/contracts';
import { CONTROL_PLANE_OPTIONS, RedisConnections, type ControlPlaneOptions } from '@baton/control-plane';

export type KvStreamEntry = { type: 'event'; event: KvShardEvent } | { type: 'dump'; dump: KvShardDump };

type RawEntry = [id: string, fields: string[]];

@Injectable()
export class KvStreams {
  private readonly logger = new Logger('KvStreams');
  private writer: Redis | undefined;
  private reader: Redis | undefined;
  /** Entries skipped because they did not parse or validate. */
  invalidEntries = 0;

  constructor(
    @Inject(CONTROL_PLANE_OPTIONS) private readonly options: ControlPlaneOptions,
    private readonly connections: RedisConnections,
  ) {}

  private get redis(): Redis {
    return (this.writer ??= this.connections.open('kv-cache'));
  }

  private get blocking(): Redis {
    return (this.reader ??= this.connections.open('kv-cache-events'));
  }

  /** The id of the newest shard entry ("0-0" when none): read after it to see only new ones. */
  async lastId(): Promise<string> {
    const entries = (await this.redis.xrevrange(KvKeys.events(this.options.prefix), '+', '-', 'COUNT', 1)) as RawEntry[];
    return entries[0]?.[0] ?? '0-0';
  }

  /** Shard entries after `afterId`, waiting up to `blockMs` for some. */
  async read(afterId: string, blockMs: number): Promise<{ entries: KvStreamEntry[]; lastId: string }> {
    const reply = (await this.blocking.xread('COUNT', '500', 'BLOCK', String(blockMs), 'STREAMS', KvKeys.events(this.options.prefix), afterId)) as [string, RawEntry[]][] | null;
    const raw = reply?.[0]?.[1] ?? [];
    const entries: KvStreamEntry[] = [];
    for (const [id, fields] of raw) {
      const entry = this.parse(id, fields);
      if (entry) entries.push(entry);
    }
    return { entries, lastId: raw.at(-1)?.[0] ?? afterId };
  }

  /** Appends commands to their nodes' command streams, in order. */
  async send(commands: readonly KvShardCommand[]): Promise<void> {
    if (commands.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const command of commands) {
      pipeline.xadd(KvKeys.commands(this.options.prefix, command.nodeId), 'MAXLEN', '~', String(KV_STREAM_MAX_LENGTH), '*', 'data', JSON.stringify(command));
    }
    await pipeline.exec();
  }

  async saveSnapshot(modelId: string, json: string): Promise<void> {
    await this.redis.set(KvKeys.snapshot(this.options.prefix, modelId), json);
  }

  async loadSnapshot(modelId: string): Promise<string | null> {
    return this.redis.get(KvKeys.snapshot(this.options.prefix, modelId));
  }

  async close(): Promise<void> {
    for (const client of [this.reader, this.writer]) if (client) await this.connections.close(client);
    this.reader = this.writer = undefined;
  }

  private parse(id: string, fields: string[]): KvStreamEntry | undefined {
    const record: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!;
    try {
      const data = JSON.parse(record.data ?? '') as unknown;
      if (record.type === 'event') {
        const checked = validateDto(KvShardEventDto, data);
        if (!checked.ok) throw new Error(checked.problems.join('; '));
        return { type: 'event', event: data as KvShardEvent };
      }
      if (record.type === 'dump') {
        const checked = validateDto(KvShardDumpDto, data);
        if (!checked.ok) throw new Error(checked.problems.join('; '));
        return { type: 'dump', dump: data as KvShardDump };
      }
      throw new Error(`unknown entry type ${JSON.stringify(record.type)}`);
    } catch (error) {
      this.invalidEntries++;
      this.logger.warn(`skipped KV stream entry ${id}: ${(error as Error).message}`);
      return undefined;
    }
  }
}
