// A test double of the shards' KV pools and of the service loop around KvCacheCore: shards apply
// the manager's commands and emit numbered events into an outbox; `deliver` feeds them to the
// core and answers its dump requests, as apps/kv-cache will. Used by the kv-core specs only.
import {
  KV_BLOCK_TOKENS, modelId, nodeId, planId,
  type KvShardCommand, type KvShardDump, type KvShardEvent, type KvShardRef, type SequenceId,
} from '@baton/contracts';
import { KvCacheCore, type KvCacheConfig, type StageKvCapacity } from '../src/index.js';

export const MODEL = modelId('test-model');
export const PLAN = planId('plan-1');

export function stagesOf(capacities: number[], names: string[] = capacities.map((_, i) => `node-${i}`)): StageKvCapacity[] {
  return capacities.map((capacityBlocks, stage) => ({
    stage,
    nodeId: nodeId(names[stage]!),
    nodeName: names[stage]!,
    layerStart: stage * 4,
    layerEnd: stage * 4 + 4,
    kvBudgetBytes: capacityBlocks * 1024,
    blockBytes: 1024,
    capacityBlocks,
  }));
}

export function configOf(capacities: number[], names?: string[]): KvCacheConfig {
  return { modelId: MODEL, planId: PLAN, stages: stagesOf(capacities, names) };
}

/** Deterministic token ids: `count` ids from a seed. */
export function tokens(count: number, seed = 1): number[] {
  let x = (seed * 2654435761) >>> 0 || 1;
  return Array.from({ length: count }, () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x % 32_000;
  });
}

export class SimShard {
  seq = 0;
  readonly pool = new Map<SequenceId, { tokens: number; blocks: number }>();
  readonly outbox: KvShardEvent[] = [];
  readonly overflows: string[] = [];

  constructor(readonly ref: KvShardRef, readonly capacityBlocks: number, public epoch = `${ref.nodeId}-e1`) {}

  private used(): number {
    let used = 0;
    for (const entry of this.pool.values()) used += entry.blocks;
    return used;
  }

  private emit(event: Record<string, unknown>): void {
    this.seq += 1;
    this.outbox.push({ ...this.ref, epoch: this.epoch, seq: this.seq, atMs: 0, ...event } as KvShardEvent);
  }

  private set(id: SequenceId, tokens: number): { tokens: number; blocks: number } {
    const entry = { tokens, blocks: Math.ceil(tokens / KV_BLOCK_TOKENS) };
    this.pool.set(id, entry);
    if (this.used() > this.capacityBlocks) this.overflows.push(`${this.ref.nodeId}: ${this.used()} of ${this.capacityBlocks} blocks after sequence ${id} reached ${tokens} tokens`);
    return entry;
  }

  /** The engine wrote KV up to `tokens` positions for a sequence. */
  store(id: SequenceId, tokens: number): void {
    const entry = this.set(id, tokens);
    this.emit({ kind: 'stored', sequenceId: id, ...entry });
  }

  apply(command: KvShardCommand): void {
    switch (command.kind) {
      case 'free':
        this.pool.delete(command.sequenceId);
        this.emit({ kind: 'freed', sequenceId: command.sequenceId }); // always confirmed, held or not
        return;
      case 'truncate': {
        // Keeps at most `tokens` positions; a sequence it does not hold stays empty (0 reported).
        const held = this.pool.get(command.sequenceId)?.tokens ?? 0;
        const entry = this.set(command.sequenceId, Math.min(held, command.tokens));
        this.emit({ kind: 'truncated', sequenceId: command.sequenceId, ...entry });
        return;
      }
      case 'copy': {
        // Copies what the source holds of the prefix (less than asked when it lost it).
        const held = this.pool.get(command.fromSequenceId)?.tokens ?? 0;
        const entry = this.set(command.sequenceId, Math.min(held, command.tokens));
        this.emit({ kind: 'copied', sequenceId: command.sequenceId, fromSequenceId: command.fromSequenceId, ...entry });
        return;
      }
      case 'dump':
        return;
    }
  }

  dump(): KvShardDump {
    return {
      ...this.ref,
      epoch: this.epoch,
      seq: this.seq,
      atMs: 0,
      capacityBlocks: this.capacityBlocks,
      sequences: [...this.pool].map(([sequenceId, entry]) => ({ sequenceId, ...entry })),
    };
  }

  /** The shard process restarts: empty pool, new epoch, numbering from 1. */
  restart(epoch: string): void {
    this.pool.clear();
    this.outbox.length = 0;
    this.seq = 0;
    this.epoch = epoch;
  }
}

/** The shards of one plan plus the service loop: commands out, events and dumps in. */
export class SimCluster {
  readonly shards: SimShard[];
  dumpsRequested = 0;

  constructor(public core: KvCacheCore) {
    this.shards = core.stages.map((stage) => new SimShard({ modelId: core.modelId, planId: core.planId, nodeId: stage.nodeId, stage: stage.stage }, stage.capacityBlocks));
  }

  send(commands: readonly KvShardCommand[]): void {
    for (const command of commands) {
      if (command.kind === 'dump') this.answerDump(command.stage);
      else this.shards[command.stage]!.apply(command);
    }
  }

  /** The engine stored KV for `tokens` positions of a sequence on every stage. */
  store(id: SequenceId, tokens: number): void {
    for (const shard of this.shards) shard.store(id, tokens);
  }

  answerDump(stage: number): void {
    this.dumpsRequested++;
    const result = this.core.applyShardDump(this.shards[stage]!.dump());
    if (result.status !== 'applied') throw new Error(`dump ignored: ${result.reason}`);
    this.send(result.commands);
    if (result.needDump) this.answerDump(result.needDump.stage);
  }

  /** Delivers up to `limit` events of one shard (all of them by default), in order. */
  deliverFrom(stage: number, limit = Infinity): void {
    const outbox = this.shards[stage]!.outbox;
    for (let n = 0; n < limit && outbox.length > 0; n++) {
      const result = this.core.applyShardEvent(outbox.shift()!);
      if (result.status === 'ignored') throw new Error(`event ignored: ${result.reason}`);
      if (result.status === 'applied') this.send(result.commands);
      if (result.status === 'need-dump') this.answerDump(result.command.stage);
    }
  }

  /** Delivers every event until all outboxes are empty. */
  deliverAll(): void {
    while (this.shards.some((shard) => shard.outbox.length > 0)) {
      for (let s = 0; s < this.shards.length; s++) this.deliverFrom(s);
    }
  }

  overflows(): string[] {
    return this.shards.flatMap((shard) => shard.overflows);
  }
}
