// The shard's half of the KV-cache protocol (issue 7, libs/kv-core/README.md "What shards must
// do"): numbered events (stored after each forward, freed / truncated / copied after each pool
// change) and dumps go to the `<prefix>kv-events` stream; the manager's commands for this node
// come from `<prefix>kv-commands:<nodeId>` and run in the order sent, queued on the engine
// behind the forwards already queued, so a dump reflects every command sent before it.
import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import {
  KvKeys, KV_STREAM_MAX_LENGTH, KvShardCommandDto, validateDto,
  type KvShardCommand, type KvShardDump, type KvShardEvent, type KvShardRef, type ModelId, type NodeId, type PlanId, type SequenceId,
} from '@baton/contracts';
import type { Engine } from '@baton/engine';

type KvBody =
  | { kind: 'stored'; sequenceId: number; tokens: number; blocks: number }
  | { kind: 'freed'; sequenceId: number }
  | { kind: 'truncated'; sequenceId: number; tokens: number; blocks: number }
  | { kind: 'copied'; sequenceId: number; fromSequenceId: number; tokens: number; blocks: number };

/** What the agent needs of the stage runner: forget a sequence's queued frames and state. */
export interface KvRunnerHooks {
  forget(sequenceId: number): void;
}

type RawEntry = [id: string, fields: string[]];

export class KvAgent {
  private readonly logger = new Logger('KvAgent');
  readonly epoch = `${Date.now().toString(36)}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  private seq = 0;
  private outbox: string[][] = [];
  private flushing: Promise<void> | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly ref: KvShardRef;
  runner: KvRunnerHooks | undefined;

  constructor(
    private readonly writer: Redis,
    private readonly reader: Redis,
    private readonly prefix: string,
    ref: { modelId: string; planId: string; nodeId: string; stage: number },
    private readonly engine: Pick<Engine, 'kv'>,
  ) {
    this.ref = { modelId: ref.modelId as ModelId, planId: ref.planId as PlanId, nodeId: ref.nodeId as NodeId, stage: ref.stage };
  }

  /** The Redis connections this agent uses (the owner closes them after stop()). */
  get clients(): Redis[] {
    return [this.writer, this.reader];
  }

  /** Sends a first dump (so the manager starts in sync) and follows this node's command stream. */
  async start(): Promise<void> {
    const key = KvKeys.commands(this.prefix, this.ref.nodeId);
    const last = ((await this.writer.xrevrange(key, '+', '-', 'COUNT', 1)) as RawEntry[])[0]?.[0] ?? '0-0';
    this.loop = this.follow(key, last);
    await this.dump();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop?.catch(() => undefined);
    await this.flush();
  }

  /** After a forward: the sequence holds KV for positions [0, tokens). */
  stored(sequenceId: number, tokens: number): void {
    this.emit({ kind: 'stored', sequenceId, tokens, blocks: Math.ceil(tokens / 16) });
  }

  /** After the pool freed the sequence (STOP, a failure, or the manager's `free`). */
  freed(sequenceId: number): void {
    this.emit({ kind: 'freed', sequenceId });
  }

  private emit(body: KvBody): void {
    this.seq++;
    const event = { ...this.ref, epoch: this.epoch, seq: this.seq, atMs: Date.now(), ...body, sequenceId: body.sequenceId as SequenceId } as KvShardEvent;
    this.push('event', event);
  }

  private push(type: 'event' | 'dump', data: unknown): void {
    this.outbox.push(['type', type, 'data', JSON.stringify(data)]);
    if (!this.flushing) this.flushing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flush());
  }

  private async flush(): Promise<void> {
    while (this.outbox.length > 0) {
      const entries = this.outbox;
      this.outbox = [];
      const pipeline = this.writer.pipeline();
      for (const fields of entries) pipeline.xadd(KvKeys.events(this.prefix), 'MAXLEN', '~', String(KV_STREAM_MAX_LENGTH), '*', ...fields);
      try {
        await pipeline.exec();
      } catch (error) {
        this.logger.warn(`could not publish ${entries.length} KV event(s): ${(error as Error).message} (the manager will ask for a dump)`);
      }
    }
    this.flushing = undefined;
  }

  private async follow(key: string, after: string): Promise<void> {
    while (!this.stopped) {
      try {
        const reply = (await this.reader.xread('COUNT', '100', 'BLOCK', '500', 'STREAMS', key, after)) as [string, RawEntry[]][] | null;
        for (const [id, fields] of reply?.[0]?.[1] ?? []) {
          after = id;
          const command = this.parse(id, fields);
          if (command) await this.execute(command);
        }
      } catch (error) {
        if (this.stopped) break;
        this.logger.warn(`reading KV commands failed: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  private parse(id: string, fields: string[]): KvShardCommand | undefined {
    const at = fields.indexOf('data');
    try {
      const data = JSON.parse(at >= 0 ? fields[at + 1]! : '') as unknown;
      const checked = validateDto(KvShardCommandDto, data);
      if (!checked.ok) throw new Error(checked.problems.join('; '));
      const command = data as KvShardCommand;
      if (command.modelId !== this.ref.modelId || command.planId !== this.ref.planId || command.stage !== this.ref.stage) return undefined;
      return command;
    } catch (error) {
      this.logger.warn(`skipped KV command ${id}: ${(error as Error).message}`);
      return undefined;
    }
  }

  /** Runs one manager command on the engine's pool and reports the result. */
  async execute(command: KvShardCommand): Promise<void> {
    const kv = this.engine.kv;
    switch (command.kind) {
      case 'free':
        this.runner?.forget(command.sequenceId);
        await kv.free(command.sequenceId).catch(() => undefined);
        this.freed(command.sequenceId);
        return;
      case 'truncate': {
        await kv.truncate(command.sequenceId, command.tokens).catch(() => undefined);
        const held = await this.held(command.sequenceId);
        this.emit({ kind: 'truncated', sequenceId: command.sequenceId, ...held });
        return;
      }
      case 'copy': {
        this.runner?.forget(command.sequenceId);
        await kv.copyPrefix(command.sequenceId, command.fromSequenceId, command.tokens).catch((error: Error) => this.logger.warn(`copy ${command.fromSequenceId} → ${command.sequenceId} failed: ${error.message}`));
        const held = await this.held(command.sequenceId);
        this.emit({ kind: 'copied', sequenceId: command.sequenceId, fromSequenceId: command.fromSequenceId, ...held });
        return;
      }
      case 'dump':
        await this.dump();
        return;
    }
  }

  private async held(sequenceId: number): Promise<{ tokens: number; blocks: number }> {
    const stats = await this.engine.kv.stats().catch(() => undefined);
    const sequence = stats?.sequences.find((s) => s.sequenceId === sequenceId);
    return { tokens: sequence?.tokens ?? 0, blocks: sequence?.blocks ?? 0 };
  }

  /** A full dump of the pool, numbered with the last event it includes. */
  async dump(): Promise<void> {
    const stats = await this.engine.kv.stats().catch(() => undefined);
    if (!stats) return;
    const dump: KvShardDump = {
      ...this.ref,
      epoch: this.epoch,
      seq: this.seq,
      atMs: Date.now(),
      capacityBlocks: stats.blocksTotal,
      sequences: stats.sequences.map((s) => ({ sequenceId: s.sequenceId as SequenceId, tokens: s.tokens, blocks: s.blocks })),
    };
    this.push('dump', dump);
  }
}
