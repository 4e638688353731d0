// KvCacheCore: the KV-cache manager's state for one model and plan, as plain deterministic
// logic (no I/O, no clock: callers pass `nowMs`). The kv-cache service owns one per plan, feeds
// it the shards' events and dumps, calls admit / release / lookup for the gateway, and sends the
// shard commands each call returns.
//
// Two views are kept side by side:
// - the ledger: every sequence the manager accounts for, with the blocks it holds or has
//   reserved on each stage (admission decides on this view);
// - one mirror per shard: what that shard says it holds, rebuilt from its numbered events (or
//   a full dump after a gap).
// A frees sent to a shard leaves the ledger at once (its blocks are available to the next
// admission) and stays "pending" in the mirror until the shard's 'freed' event confirms it.
// Sequences a shard reports that the ledger does not know (after a manager restart without a
// snapshot, or a late store after a free) are adopted as idle "orphans": accounted, never
// reused (their token ids are unknown), evicted first.
import {
  BatonError, ErrorCode, KV_BLOCK_TOKENS, modelId as toModelId,
  type KvAdmitRequest, type KvAdmitResponse, type KvDumpCommand, type KvFreeCommand, type KvLookupResponse,
  type KvNodeUsage, type KvQueued, type KvRefused, type KvReleaseRequest, type KvReleaseResponse, type KvReuse, type KvSequenceState,
  type KvShardCommand, type KvShardDump, type KvShardEvent, type KvShardRef, type KvShortage, type KvUsageReport,
  type ModelId, type ModelManifest, type NodeId, type Plan, type PlanId, type RequestId, type SequenceId,
} from '@baton/contracts';
import { blocksForTokens, stageCapacities, type StageKvCapacity } from './blocks.js';
import { chainBlockHashes, extendBlockHashes, type BlockHash } from './hash.js';
import { formatKvFullMessage, formatKvTooLargeMessage } from './messages.js';
import { PrefixIndex } from './prefix-index.js';

export interface KvCacheConfig {
  modelId: ModelId;
  planId: PlanId;
  stages: readonly StageKvCapacity[];
  /** Events kept per shard while its dump is awaited (oldest dropped beyond this; default 10,000). */
  maxBufferedEvents?: number;
}

/** The config for a model's plan: capacities from the manifest and the plan's per-stage KV budgets. */
export function kvCacheConfig(
  manifest: Pick<ModelManifest, 'layers' | 'kvBytesPerToken' | 'name'>,
  plan: Pick<Plan, 'stages' | 'requirement' | 'modelId' | 'planId'>,
  nodeNames?: ReadonlyMap<string, string> | Record<string, string>,
): KvCacheConfig {
  return { modelId: toModelId(plan.modelId), planId: plan.planId, stages: stageCapacities(manifest, plan, nodeNames) };
}

export interface PendingPrefix {
  kind: 'truncate' | 'copy';
  tokens: number;
}

/** A sequence in the ledger. */
export interface KvSequenceRecord {
  sequenceId: SequenceId;
  state: KvSequenceState;
  /** The request running on it; null when idle. */
  requestId: RequestId | null;
  /** Token ids known to be in its KV (the prompt while running; everything held once idle). Empty for orphans. */
  tokens: number[];
  /** Chained hashes of `tokens`' full blocks; all in the prefix index unless `broken`. */
  hashes: BlockHash[];
  /** Blocks accounted on each stage (reserved while running; held when idle). */
  blocks: number[];
  lastUsedMs: number;
  /** Adopted from a shard's report without token ids: never reused, evicted first. */
  orphan: boolean;
  /** A shard lost this running sequence's KV: it is freed, not cached, on release. */
  broken: boolean;
  /**
   * Per stage, in the order sent: the truncate / copy commands the shard has not yet confirmed
   * (by a 'truncated' / 'copied' event or a dump), with the prefix in tokens each told it to
   * keep. Meanwhile the shard's report may still describe older content, so reuse trusts no
   * more than the smallest pending prefix. A confirmation holding less means the reuse failed
   * (the shard had lost the source): the sequence is marked broken.
   */
  pendingPrefixes: PendingPrefix[][];
}

export type KvShardSyncStatus = 'unknown' | 'in-sync' | 'awaiting-dump';

/** What one shard says it holds. */
export interface KvShardMirror {
  stage: number;
  nodeId: NodeId;
  status: KvShardSyncStatus;
  epoch: string | null;
  /** Last event applied (or the seq a dump included). */
  lastSeq: number;
  sequences: Map<SequenceId, { tokens: number; blocks: number }>;
  /** Frees sent and not yet confirmed. */
  pendingFree: Set<SequenceId>;
  /** Events received while awaiting a dump. */
  buffered: KvShardEvent[];
  /** Pool size the shard reported in its last dump. */
  reportedCapacityBlocks: number | null;
}

export type KvEventResult =
  /**
   * `broken`: running sequences whose KV a shard lost (or whose reused prefix it did not have);
   * their requests cannot finish correctly and should be failed or retried cold.
   */
  | { status: 'applied'; commands: KvShardCommand[]; broken: SequenceId[] }
  | { status: 'duplicate' }
  | { status: 'buffered' }
  | { status: 'ignored'; reason: string }
  | { status: 'need-dump'; reason: string; command: KvDumpCommand };

export type KvDumpResult =
  | {
    status: 'applied';
    /** Sequences the shard holds that the ledger did not know: now accounted as idle orphans. */
    adopted: SequenceId[];
    /** Idle sequences the shard no longer holds: dropped from the ledger (freed elsewhere). */
    dropped: SequenceId[];
    /** Buffered events applied after the dump. */
    replayed: number;
    /** Running sequences whose KV (or reused prefix) the shard turned out not to hold. */
    broken: SequenceId[];
    commands: KvShardCommand[];
    /** Set when a replayed event showed another gap. */
    needDump?: KvDumpCommand;
  }
  | { status: 'ignored'; reason: string };

/** The ledger in plain JSON, for the service to persist and restore after its own restart. */
export interface KvCacheSnapshot {
  version: 1;
  modelId: ModelId;
  planId: PlanId;
  nextSequenceId: number;
  sequences: Array<Pick<KvSequenceRecord, 'sequenceId' | 'state' | 'requestId' | 'tokens' | 'blocks' | 'lastUsedMs' | 'orphan' | 'broken'>>;
}

/** A read-only summary of one sequence. */
export interface KvSequenceInfo {
  sequenceId: SequenceId;
  state: KvSequenceState;
  requestId: RequestId | null;
  tokens: number;
  hashedBlocks: number;
  blocks: readonly number[];
  lastUsedMs: number;
  orphan: boolean;
  broken: boolean;
}

interface ReuseCandidate {
  record: KvSequenceRecord;
  /** Prompt tokens usable from it on every stage. */
  tokens: number;
}

type Fit = { ok: true; evictions: KvSequenceRecord[] } | { ok: false; shortage: KvShortage };

const U32_MAX = 0xffffffff;

function invalid(message: string): BatonError {
  return new BatonError(ErrorCode.VALIDATION, message);
}

function checkTokenIds(tokens: unknown, what: string): number[] {
  if (!Array.isArray(tokens)) throw invalid(`${what} must be an array of token ids`);
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as unknown;
    if (typeof token !== 'number' || !Number.isInteger(token) || token < 0 || token > U32_MAX) {
      throw invalid(`${what}[${i}] is ${JSON.stringify(token)}: token ids are integers in [0, 2^32)`);
    }
  }
  return tokens as number[];
}

export class KvCacheCore {
  readonly modelId: ModelId;
  readonly planId: PlanId;
  readonly stages: readonly StageKvCapacity[];
  private readonly maxBufferedEvents: number;
  private readonly ledger = new Map<SequenceId, KvSequenceRecord>();
  private readonly index = new PrefixIndex();
  private readonly shards: KvShardMirror[];
  private nextSequenceId = 1;
  /** Running sequences broken while applying the current event (reported in its result). */
  private newlyBroken: SequenceId[] = [];

  constructor(config: KvCacheConfig) {
    if (config.stages.length === 0) throw invalid(`KV cache for ${config.modelId} needs at least one stage`);
    config.stages.forEach((stage, i) => {
      if (stage.stage !== i) throw invalid(`KV cache stage ${i} is numbered ${stage.stage}; stages must be listed in plan order`);
      if (!Number.isSafeInteger(stage.capacityBlocks) || stage.capacityBlocks < 0) throw invalid(`stage ${i} capacity ${stage.capacityBlocks} blocks is not a count`);
    });
    this.modelId = config.modelId;
    this.planId = config.planId;
    this.stages = config.stages.map((stage) => ({ ...stage }));
    this.maxBufferedEvents = config.maxBufferedEvents ?? 10_000;
    this.shards = this.stages.map((stage) => ({
      stage: stage.stage,
      nodeId: stage.nodeId,
      status: 'unknown',
      epoch: null,
      lastSeq: 0,
      sequences: new Map(),
      pendingFree: new Set(),
      buffered: [],
      reportedCapacityBlocks: null,
    }));
  }

  // -------------------------------------------------------------------------------------------
  // Queries

  /** Blocks a stage can hold: the plan's figure, or less if the shard reported a smaller pool. */
  capacityBlocks(stage: number): number {
    const planned = this.stages[stage]!.capacityBlocks;
    const reported = this.shards[stage]!.reportedCapacityBlocks;
    return reported === null ? planned : Math.min(planned, reported);
  }

  /** Blocks the ledger accounts for on a stage. */
  usedBlocks(stage: number): number {
    let used = 0;
    for (const record of this.ledger.values()) used += record.blocks[stage]!;
    return used;
  }

  /** Most tokens (prompt + max_tokens) one sequence can ever hold on this plan. */
  maxSequenceTokens(): number {
    return Math.min(...this.stages.map((_, s) => this.capacityBlocks(s))) * KV_BLOCK_TOKENS;
  }

  sequence(sequenceId: SequenceId): KvSequenceInfo | undefined {
    const record = this.ledger.get(sequenceId);
    return record && this.info(record);
  }

  sequences(): KvSequenceInfo[] {
    return [...this.ledger.values()].map((record) => this.info(record));
  }

  /** Per node: capacity, used, running, cached-idle, sequences, and what the shard reports. */
  usage(nowMs: number): KvUsageReport {
    const nodes: KvNodeUsage[] = this.stages.map((stage, s) => {
      let runningBlocks = 0, cachedIdleBlocks = 0, runningSequences = 0, idleSequences = 0;
      for (const record of this.ledger.values()) {
        const blocks = record.blocks[s]!;
        if (record.state === 'running') {
          runningBlocks += blocks;
          runningSequences++;
        } else if (blocks > 0) {
          cachedIdleBlocks += blocks;
          idleSequences++;
        }
      }
      const shard = this.shards[s]!;
      let reportedBlocks: number | null = null;
      if (shard.status === 'in-sync') {
        reportedBlocks = 0;
        for (const entry of shard.sequences.values()) reportedBlocks += entry.blocks;
      }
      return {
        modelId: this.modelId,
        planId: this.planId,
        nodeId: stage.nodeId,
        stage: s,
        layerStart: stage.layerStart,
        layerEnd: stage.layerEnd,
        blockBytes: stage.blockBytes,
        capacityBlocks: this.capacityBlocks(s),
        usedBlocks: runningBlocks + cachedIdleBlocks,
        runningBlocks,
        cachedIdleBlocks,
        sequences: runningSequences + idleSequences,
        runningSequences,
        idleSequences,
        reportedBlocks,
        inSync: shard.status === 'in-sync',
      };
    });
    return { atMs: nowMs, nodes };
  }

  /** How much of a prompt an admit would find cached now, and where (changes nothing). */
  lookup(tokens: readonly number[]): KvLookupResponse {
    checkTokenIds(tokens, 'tokens');
    const hashes = chainBlockHashes(tokens);
    const { blocks, best } = this.findReuse(hashes, tokens.length);
    if (!best) return { cachedTokens: 0, matchedBlocks: blocks, holder: null, mode: 'none' };
    return {
      cachedTokens: best.tokens,
      matchedBlocks: blocks,
      holder: { sequenceId: best.record.sequenceId, state: best.record.state },
      mode: best.record.state === 'idle' ? 'in-place' : 'copy',
    };
  }

  // -------------------------------------------------------------------------------------------
  // Admission and release

  /**
   * Admits a request: reserves blocks for prompt + maxTokens on every stage, reusing the
   * longest cached prefix (in place from an idle sequence, by copy from a running one) and
   * evicting idle sequences least recently used first when short. Returns 'refused' when the
   * request can never fit, 'queue' when it does not fit now even after evicting every idle
   * sequence (nothing is evicted then).
   */
  admit(request: Pick<KvAdmitRequest, 'requestId' | 'tokens' | 'maxTokens'>, nowMs: number): KvAdmitResponse {
    return this.decide(request, nowMs, true)!;
  }

  /**
   * What admit would answer now, changing nothing: 'refused' or 'queue' (with the numbers), or
   * null when the request would be admitted. For a request that must wait behind others.
   */
  previewAdmission(request: Pick<KvAdmitRequest, 'requestId' | 'tokens' | 'maxTokens'>, nowMs: number): KvQueued | KvRefused | null {
    return this.decide(request, nowMs, false) as KvQueued | KvRefused | null;
  }

  private decide(request: Pick<KvAdmitRequest, 'requestId' | 'tokens' | 'maxTokens'>, nowMs: number, commit: boolean): KvAdmitResponse | null {
    const tokens = checkTokenIds(request.tokens, 'tokens');
    if (tokens.length === 0) throw invalid('the prompt has no tokens: admit needs at least one token id');
    if (!Number.isSafeInteger(request.maxTokens) || request.maxTokens < 0) throw invalid(`maxTokens ${request.maxTokens} must be a non-negative integer`);
    const needBlocks = blocksForTokens(tokens.length + request.maxTokens);

    let smallest = 0;
    for (let s = 1; s < this.stages.length; s++) if (this.capacityBlocks(s) < this.capacityBlocks(smallest)) smallest = s;
    if (needBlocks > this.capacityBlocks(smallest)) {
      const shortage = this.shortage(smallest, needBlocks);
      return {
        verdict: 'refused',
        shortage,
        promptTokens: tokens.length,
        maxTokens: request.maxTokens,
        maxSequenceTokens: this.maxSequenceTokens(),
        message: formatKvTooLargeMessage({
          promptTokens: tokens.length,
          maxTokens: request.maxTokens,
          neededBlocks: needBlocks,
          capacityBlocks: shortage.capacityBlocks,
          nodeName: shortage.nodeName,
          blockTokens: KV_BLOCK_TOKENS,
        }),
      };
    }

    const hashes = chainBlockHashes(tokens);
    const { best } = this.findReuse(hashes, tokens.length);
    const attempts: Array<ReuseCandidate | null> = best ? [best, null] : [null];
    let lastShortage: KvShortage | null = null;
    for (const reuse of attempts) {
      const fit = this.fit(reuse, needBlocks);
      if (fit.ok) return commit ? this.commitAdmission(request.requestId, tokens, hashes, needBlocks, reuse, fit.evictions, nowMs) : null;
      lastShortage = fit.shortage;
    }
    return { verdict: 'queue', shortage: lastShortage!, message: formatKvFullMessage(lastShortage!) };
  }

  /**
   * A sequence's request finished. With `tokens` (the ids whose KV it holds) and `keep` not
   * false it stays cached, idle, for prefix reuse; otherwise it is freed on every stage.
   */
  release(request: Pick<KvReleaseRequest, 'sequenceId' | 'tokens' | 'keep'>, nowMs: number): KvReleaseResponse {
    const record = this.ledger.get(request.sequenceId);
    if (!record) return { sequenceId: request.sequenceId, outcome: 'unknown', cachedTokens: 0, commands: [] };
    if (record.state === 'idle') return { sequenceId: record.sequenceId, outcome: 'cached', cachedTokens: record.tokens.length, commands: [] };
    const tokens = request.tokens === undefined ? undefined : checkTokenIds(request.tokens, 'tokens');
    const reservedTokens = Math.min(...record.blocks) * KV_BLOCK_TOKENS;
    const keep = request.keep !== false && tokens !== undefined && tokens.length >= KV_BLOCK_TOKENS && !record.broken && tokens.length <= reservedTokens;
    if (!keep) {
      return { sequenceId: record.sequenceId, outcome: 'freed', cachedTokens: 0, commands: this.drop(record) };
    }
    const hashes = extendBlockHashes(record.tokens, record.hashes, tokens);
    this.reindex(record, hashes);
    record.tokens = [...tokens];
    record.state = 'idle';
    record.requestId = null;
    record.lastUsedMs = nowMs;
    const held = blocksForTokens(tokens.length);
    // What the shard reports counts too (it may hold a block more than the tokens need), unless
    // its report still describes content from before a truncate (then it will shrink).
    record.blocks = record.blocks.map((_, s) => {
      const reported = record.pendingPrefixes[s]!.length === 0 ? (this.shards[s]!.sequences.get(record.sequenceId)?.blocks ?? 0) : 0;
      return Math.min(Math.max(held, reported), record.blocks[s]!);
    });
    return { sequenceId: record.sequenceId, outcome: 'cached', cachedTokens: tokens.length, commands: [] };
  }

  // -------------------------------------------------------------------------------------------
  // Shard events and dumps

  /**
   * Applies one shard event. Events of each shard are numbered 1, 2, 3 … within an epoch: a
   * repeat is a 'duplicate'; a gap (or an unseen epoch not starting at 1) returns 'need-dump'
   * with the command asking that shard for a dump, and later events are buffered until it
   * arrives. Returns commands when the event makes other shards' blocks useless (a shard lost
   * an idle sequence: the others free it).
   */
  applyShardEvent(event: KvShardEvent): KvEventResult {
    const mismatch = this.refMismatch(event);
    if (mismatch) return { status: 'ignored', reason: mismatch };
    const shard = this.shards[event.stage]!;
    if (shard.status === 'awaiting-dump') {
      this.buffer(shard, event);
      return { status: 'buffered' };
    }
    const commands: KvShardCommand[] = [];
    this.newlyBroken = [];
    if (shard.epoch !== event.epoch) {
      if (event.seq !== 1) {
        const reason = shard.epoch === null
          ? `first event seen from shard ${event.nodeId} stage ${event.stage} is #${event.seq} of epoch ${event.epoch}`
          : `shard ${event.nodeId} stage ${event.stage} changed epoch ${shard.epoch} → ${event.epoch} at event #${event.seq}`;
        return this.requestDump(shard, event, reason);
      }
      commands.push(...this.resetShard(shard, event.epoch));
    } else if (event.seq <= shard.lastSeq) {
      return { status: 'duplicate' };
    } else if (event.seq !== shard.lastSeq + 1) {
      return this.requestDump(shard, event, `gap in events from shard ${event.nodeId} stage ${event.stage}: expected #${shard.lastSeq + 1}, got #${event.seq}`);
    }
    shard.lastSeq = event.seq;
    shard.status = 'in-sync';
    commands.push(...this.applyToMirror(shard, event));
    const broken = this.newlyBroken;
    this.newlyBroken = [];
    return { status: 'applied', commands, broken };
  }

  /** Replaces a shard's mirrored state with its full dump and reconciles the ledger with it. */
  applyShardDump(dump: KvShardDump): KvDumpResult {
    const mismatch = this.refMismatch(dump);
    if (mismatch) return { status: 'ignored', reason: mismatch };
    const s = dump.stage;
    const shard = this.shards[s]!;
    const buffered = shard.buffered.filter((event) => event.epoch === dump.epoch && event.seq > dump.seq).sort((a, b) => a.seq - b.seq);
    shard.buffered = [];
    shard.epoch = dump.epoch;
    shard.lastSeq = dump.seq;
    shard.status = 'in-sync';
    shard.reportedCapacityBlocks = dump.capacityBlocks;
    const previous = shard.sequences;
    shard.sequences = new Map(dump.sequences.filter((entry) => entry.blocks > 0).map((entry) => [entry.sequenceId, { tokens: entry.tokens, blocks: entry.blocks }]));
    for (const id of [...shard.pendingFree]) if (!shard.sequences.has(id)) shard.pendingFree.delete(id);

    const commands: KvShardCommand[] = [];
    const dropped: SequenceId[] = [];
    const adopted: SequenceId[] = [];
    this.newlyBroken = [];
    for (const record of [...this.ledger.values()]) {
      if (shard.pendingFree.has(record.sequenceId)) continue;
      const entry = shard.sequences.get(record.sequenceId);
      // Commands reach a shard in the order sent, so a dump reflects every truncate and copy before it.
      commands.push(...this.confirmPrefix(record, s, entry?.tokens ?? 0, 'dump'));
      if (!this.ledger.has(record.sequenceId)) {
        dropped.push(record.sequenceId);
        continue;
      }
      if (entry) {
        if (record.state === 'idle') {
          record.blocks[s] = entry.blocks;
          if (entry.tokens < record.tokens.length) this.trimTokens(record, entry.tokens);
        }
      } else {
        if (record.state === 'idle' && !record.orphan) dropped.push(record.sequenceId);
        // A running sequence the shard had reported storing, and no longer holds, lost its KV.
        commands.push(...this.lostOnShard(s, record, previous.has(record.sequenceId)));
      }
    }
    for (const [id, entry] of shard.sequences) {
      if (!this.ledger.has(id) && !shard.pendingFree.has(id)) {
        this.adopt(s, id, entry.blocks, dump.atMs);
        adopted.push(id);
      }
    }
    const broken = this.newlyBroken;
    this.newlyBroken = [];
    let replayed = 0;
    let needDump: KvDumpCommand | undefined;
    for (const event of buffered) {
      const result = this.applyShardEvent(event);
      replayed++;
      if (result.status === 'applied') {
        commands.push(...result.commands);
        broken.push(...result.broken);
      }
      if (result.status === 'need-dump') needDump = result.command;
    }
    const applied = { status: 'applied' as const, adopted, dropped, replayed, broken, commands };
    return needDump ? { ...applied, needDump } : applied;
  }

  /** Dump requests for every shard (after the service restarts, or to audit). */
  dumpCommands(): KvDumpCommand[] {
    return this.shards.map((shard) => this.dumpCommand(shard.stage));
  }

  /** Dump requests for shards whose dump is still awaited (the service re-sends these on a timer). */
  awaitedDumps(): KvDumpCommand[] {
    return this.shards.filter((shard) => shard.status === 'awaiting-dump').map((shard) => this.dumpCommand(shard.stage));
  }

  // -------------------------------------------------------------------------------------------
  // Persistence

  snapshot(): KvCacheSnapshot {
    return {
      version: 1,
      modelId: this.modelId,
      planId: this.planId,
      nextSequenceId: this.nextSequenceId,
      sequences: [...this.ledger.values()].map((record) => ({
        sequenceId: record.sequenceId,
        state: record.state,
        requestId: record.requestId,
        tokens: [...record.tokens],
        blocks: [...record.blocks],
        lastUsedMs: record.lastUsedMs,
        orphan: record.orphan,
        broken: record.broken,
      })),
    };
  }

  /**
   * A core with a snapshot's ledger. Shard mirrors start unknown: send `dumpCommands()` and
   * apply the dumps to reconcile with what the shards hold now.
   */
  static restore(config: KvCacheConfig, snapshot: KvCacheSnapshot): KvCacheCore {
    const core = new KvCacheCore(config);
    if (snapshot.version !== 1) throw invalid(`KV cache snapshot version ${snapshot.version} is not supported (expected 1)`);
    if (snapshot.modelId !== config.modelId || snapshot.planId !== config.planId) {
      throw invalid(`KV cache snapshot is for ${snapshot.modelId} plan ${snapshot.planId}, not ${config.modelId} plan ${config.planId}`);
    }
    for (const saved of snapshot.sequences) {
      if (saved.blocks.length !== core.stages.length) {
        throw invalid(`KV cache snapshot sequence ${saved.sequenceId} has blocks for ${saved.blocks.length} stages; the plan has ${core.stages.length}`);
      }
      const tokens = checkTokenIds(saved.tokens, `snapshot sequence ${saved.sequenceId} tokens`);
      const record: KvSequenceRecord = {
        ...saved,
        tokens: [...tokens],
        blocks: [...saved.blocks],
        hashes: chainBlockHashes(tokens),
        pendingPrefixes: core.stages.map(() => []),
      };
      core.ledger.set(record.sequenceId, record);
      if (!record.broken) core.index.add(record.sequenceId, record.hashes);
    }
    core.nextSequenceId = snapshot.nextSequenceId >= 1 && snapshot.nextSequenceId <= U32_MAX ? snapshot.nextSequenceId : 1;
    return core;
  }

  /** The internal state, read-only, for invariant checks and diagnostics. */
  inspect(): { ledger: ReadonlyMap<SequenceId, Readonly<KvSequenceRecord>>; index: PrefixIndex; shards: readonly Readonly<KvShardMirror>[] } {
    return { ledger: this.ledger, index: this.index, shards: this.shards };
  }

  // -------------------------------------------------------------------------------------------
  // Internals: reuse and fitting

  private info(record: KvSequenceRecord): KvSequenceInfo {
    return {
      sequenceId: record.sequenceId,
      state: record.state,
      requestId: record.requestId,
      tokens: record.tokens.length,
      hashedBlocks: record.hashes.length,
      blocks: [...record.blocks],
      lastUsedMs: record.lastUsedMs,
      orphan: record.orphan,
      broken: record.broken,
    };
  }

  /** Tokens of a sequence's KV that every shard reports holding (0 for a shard not in sync). */
  private heldOnEveryShard(record: KvSequenceRecord): number {
    let held = Infinity;
    for (const shard of this.shards) {
      if (shard.status !== 'in-sync') return 0;
      let tokens = shard.sequences.get(record.sequenceId)?.tokens ?? 0;
      for (const pending of record.pendingPrefixes[shard.stage]!) tokens = Math.min(tokens, pending.tokens);
      held = Math.min(held, tokens);
    }
    return held;
  }

  /**
   * The best sequence to reuse for a prompt: the most usable cached tokens (matched whole
   * blocks, at most prompt − 1 so one token is left to prefill, and no more than every shard
   * reports holding); ties prefer idle (reused in place), then the most recently used.
   */
  private findReuse(hashes: readonly BlockHash[], promptTokens: number): { blocks: number; best: ReuseCandidate | null } {
    const { blocks, depthBySequence } = this.index.match(hashes);
    let best: ReuseCandidate | null = null;
    for (const [id, depth] of depthBySequence) {
      const record = this.ledger.get(id);
      if (!record || record.broken) continue;
      const usable = Math.min(depth * KV_BLOCK_TOKENS, promptTokens - 1, record.tokens.length, this.heldOnEveryShard(record));
      if (usable < KV_BLOCK_TOKENS) continue;
      if (!best || this.betterReuse({ record, tokens: usable }, best)) best = { record, tokens: usable };
    }
    return { blocks, best };
  }

  private betterReuse(a: ReuseCandidate, b: ReuseCandidate): boolean {
    if (a.tokens !== b.tokens) return a.tokens > b.tokens;
    if (a.record.state !== b.record.state) return a.record.state === 'idle';
    if (a.record.lastUsedMs !== b.record.lastUsedMs) return a.record.lastUsedMs > b.record.lastUsedMs;
    return a.record.sequenceId < b.record.sequenceId;
  }

  /** Idle sequences in eviction order: orphans first, then least recently used, then lowest id. */
  private evictionOrder(): KvSequenceRecord[] {
    return [...this.ledger.values()]
      .filter((record) => record.state === 'idle')
      .sort((a, b) => Number(b.orphan) - Number(a.orphan) || a.lastUsedMs - b.lastUsedMs || a.sequenceId - b.sequenceId);
  }

  /** Whether `needBlocks` fit on every stage with this reuse, and which idle sequences must go. */
  private fit(reuse: ReuseCandidate | null, needBlocks: number): Fit {
    const inPlace = reuse?.record.state === 'idle' ? reuse.record : null;
    const pinned = reuse?.record.sequenceId;
    const extra = this.stages.map((_, s) => needBlocks - (inPlace ? inPlace.blocks[s]! : 0));
    const deficit = this.stages.map((_, s) => extra[s]! - (this.capacityBlocks(s) - this.usedBlocks(s)));
    const evictions: KvSequenceRecord[] = [];
    if (deficit.every((d) => d <= 0)) return { ok: true, evictions };
    for (const candidate of this.evictionOrder()) {
      if (deficit.every((d) => d <= 0)) break;
      if (candidate.sequenceId === pinned) continue;
      if (!deficit.some((d, s) => d > 0 && candidate.blocks[s]! > 0)) continue;
      evictions.push(candidate);
      for (let s = 0; s < deficit.length; s++) deficit[s]! -= candidate.blocks[s]!;
    }
    if (deficit.every((d) => d <= 0)) return { ok: true, evictions };
    let worst = 0;
    for (let s = 1; s < deficit.length; s++) if (deficit[s]! > deficit[worst]!) worst = s;
    return { ok: false, shortage: this.shortage(worst, extra[worst]!) };
  }

  private shortage(s: number, neededBlocks: number): KvShortage {
    let runningBlocks = 0, cachedIdleBlocks = 0;
    for (const record of this.ledger.values()) {
      if (record.state === 'running') runningBlocks += record.blocks[s]!;
      else cachedIdleBlocks += record.blocks[s]!;
    }
    const stage = this.stages[s]!;
    return {
      nodeId: stage.nodeId,
      nodeName: stage.nodeName,
      stage: s,
      capacityBlocks: this.capacityBlocks(s),
      usedBlocks: runningBlocks + cachedIdleBlocks,
      runningBlocks,
      cachedIdleBlocks,
      neededBlocks,
    };
  }

  private commitAdmission(
    requestId: RequestId,
    tokens: number[],
    hashes: BlockHash[],
    needBlocks: number,
    reuse: ReuseCandidate | null,
    evictions: KvSequenceRecord[],
    nowMs: number,
  ): KvAdmitResponse {
    const commands: KvShardCommand[] = [];
    for (const victim of evictions) commands.push(...this.drop(victim));
    let record: KvSequenceRecord;
    let reuseInfo: KvReuse = { mode: 'none' };
    const cachedTokens = reuse?.tokens ?? 0;
    if (reuse && reuse.record.state === 'idle') {
      record = reuse.record;
      for (const queue of record.pendingPrefixes) queue.push({ kind: 'truncate', tokens: cachedTokens });
      reuseInfo = { mode: 'in-place', sequenceId: record.sequenceId, tokens: cachedTokens };
      for (const stage of this.stages) commands.push({ ...this.ref(stage.stage), kind: 'truncate', sequenceId: record.sequenceId, tokens: cachedTokens });
    } else {
      record = {
        sequenceId: this.allocateSequenceId(),
        state: 'running',
        requestId,
        tokens: [],
        hashes: [],
        blocks: [],
        lastUsedMs: nowMs,
        orphan: false,
        broken: false,
        pendingPrefixes: this.stages.map(() => []),
      };
      this.ledger.set(record.sequenceId, record);
      if (reuse) {
        reuse.record.lastUsedMs = Math.max(reuse.record.lastUsedMs, nowMs);
        record.pendingPrefixes = this.stages.map(() => [{ kind: 'copy', tokens: cachedTokens }]);
        reuseInfo = { mode: 'copy', fromSequenceId: reuse.record.sequenceId, tokens: cachedTokens };
        for (const stage of this.stages) {
          commands.push({ ...this.ref(stage.stage), kind: 'copy', fromSequenceId: reuse.record.sequenceId, sequenceId: record.sequenceId, tokens: cachedTokens });
        }
      }
    }
    record.state = 'running';
    record.requestId = requestId;
    record.tokens = [...tokens];
    this.reindex(record, hashes);
    record.blocks = this.stages.map(() => needBlocks);
    record.lastUsedMs = nowMs;
    return {
      verdict: 'admitted',
      sequenceId: record.sequenceId,
      cachedTokens,
      prefillTokens: tokens.length - cachedTokens,
      reuse: reuseInfo,
      reservedBlocks: needBlocks,
      evicted: evictions.map((victim) => victim.sequenceId),
      commands,
    };
  }

  private allocateSequenceId(): SequenceId {
    for (;;) {
      const id = this.nextSequenceId as SequenceId;
      this.nextSequenceId = id >= U32_MAX ? 1 : id + 1;
      if (this.ledger.has(id)) continue;
      if (this.shards.some((shard) => shard.sequences.has(id) || shard.pendingFree.has(id))) continue;
      return id;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Internals: ledger changes

  /** Replaces a sequence's block hashes in the index, touching only the blocks that change. */
  private reindex(record: KvSequenceRecord, hashes: BlockHash[]): void {
    let same = 0;
    const limit = Math.min(record.hashes.length, hashes.length);
    while (same < limit && record.hashes[same] === hashes[same]) same++;
    if (!record.broken) {
      this.index.remove(record.sequenceId, record.hashes, same);
      this.index.add(record.sequenceId, hashes, same);
    }
    record.hashes = hashes;
  }

  /** Removes a sequence from the ledger and the index, and frees it on every shard. */
  private drop(record: KvSequenceRecord): KvFreeCommand[] {
    this.forget(record);
    return this.shards.map((shard) => {
      shard.pendingFree.add(record.sequenceId);
      return { ...this.ref(shard.stage), kind: 'free', sequenceId: record.sequenceId };
    });
  }

  /** Removes a sequence from the ledger and the index (the shards no longer hold it). */
  private forget(record: KvSequenceRecord): void {
    this.index.remove(record.sequenceId, record.hashes);
    this.ledger.delete(record.sequenceId);
  }

  private adopt(s: number, sequenceId: SequenceId, blocks: number, nowMs: number): void {
    const existing = this.ledger.get(sequenceId);
    if (existing) {
      existing.blocks[s] = Math.max(existing.blocks[s]!, blocks);
      return;
    }
    const record: KvSequenceRecord = {
      sequenceId,
      state: 'idle',
      requestId: null,
      tokens: [],
      hashes: [],
      blocks: this.stages.map((_, t) => (t === s ? blocks : 0)),
      lastUsedMs: nowMs,
      orphan: true,
      broken: false,
      pendingPrefixes: this.stages.map(() => []),
    };
    this.ledger.set(sequenceId, record);
  }

  /** Keeps only the first `tokens` known token ids of an idle sequence (a shard cut it back). */
  private trimTokens(record: KvSequenceRecord, tokens: number): void {
    const keepBlocks = Math.floor(tokens / KV_BLOCK_TOKENS);
    this.index.remove(record.sequenceId, record.hashes, keepBlocks);
    record.hashes = record.hashes.slice(0, keepBlocks);
    record.tokens = record.tokens.slice(0, tokens);
  }

  /**
   * Event #1 of an epoch: the shard's pool starts empty and its events from here describe it
   * fully. When an earlier epoch was known, the shard restarted: everything it held is lost.
   * (With no earlier epoch the manager simply had not heard from it yet: the ledger stands.)
   */
  private resetShard(shard: KvShardMirror, epoch: string): KvShardCommand[] {
    const restarted = shard.epoch !== null;
    shard.epoch = epoch;
    shard.lastSeq = 0;
    shard.sequences.clear();
    shard.buffered = [];
    if (!restarted) return [];
    // Frees stay pending: those sent after the restart will be confirmed in the new epoch (a
    // shard confirms every free, held or not); a dump clears any the old process never saw.
    const commands: KvShardCommand[] = [];
    for (const record of [...this.ledger.values()]) commands.push(...this.lostOnShard(shard.stage, record, true));
    return commands;
  }

  private markBroken(record: KvSequenceRecord): void {
    if (record.broken) return;
    record.broken = true;
    this.newlyBroken.push(record.sequenceId);
    this.index.remove(record.sequenceId, record.hashes);
  }

  /**
   * A shard no longer holds a sequence it was not told to free: an idle one is dropped (its KV is
   * incomplete), an orphan loses that stage's blocks, a running one is marked broken when
   * `runningLost` says its KV really was lost.
   */
  private lostOnShard(s: number, record: KvSequenceRecord, runningLost: boolean): KvShardCommand[] {
    if (record.state === 'running') {
      if (runningLost) this.markBroken(record);
      return [];
    }
    if (record.orphan) {
      record.blocks[s] = 0;
      if (record.blocks.every((blocks) => blocks === 0)) this.forget(record);
      return [];
    }
    // Freed everywhere, that shard included: its report may be old, and by now later commands
    // or stores may have put the id back there (every free is confirmed, held or not).
    return this.drop(record);
  }

  private applyToMirror(shard: KvShardMirror, event: KvShardEvent): KvShardCommand[] {
    const s = shard.stage;
    const id = event.sequenceId;
    const record = this.ledger.get(id);
    switch (event.kind) {
      case 'stored':
      case 'truncated':
      case 'copied': {
        if (event.blocks === 0) shard.sequences.delete(id);
        else shard.sequences.set(id, { tokens: event.tokens, blocks: event.blocks });
        // A free is on its way to this shard: what it reports meanwhile does not count.
        if (shard.pendingFree.has(id)) return [];
        if (!record) {
          if (event.blocks > 0) this.adopt(s, id, event.blocks, event.atMs);
          return [];
        }
        if (event.kind !== 'stored') {
          const kind = event.kind === 'copied' ? 'copy' : 'truncate';
          // The confirmation of a command this manager sent: nothing else to account.
          if (record.pendingPrefixes[s]!.some((pending) => pending.kind === kind)) return this.confirmPrefix(record, s, event.tokens, kind);
        }
        // Until the shard confirms the commands sent, its report may describe older content.
        if (record.pendingPrefixes[s]!.length > 0) return [];
        if (event.kind === 'truncated') {
          if (record.state === 'idle') {
            // The shard cut an idle sequence back on its own: account what it holds now.
            record.blocks[s] = event.blocks;
            if (event.tokens < record.tokens.length) this.trimTokens(record, event.tokens);
          }
        } else if (record.state === 'idle') {
          // A store reported after release (reports lag): the idle sequence holds at least this.
          record.blocks[s] = Math.max(record.blocks[s]!, event.blocks);
        }
        return [];
      }
      case 'freed': {
        shard.sequences.delete(id);
        if (shard.pendingFree.delete(id)) return [];
        if (!record) return [];
        return this.lostOnShard(s, record, true);
      }
    }
  }

  /**
   * The shard confirmed (by a 'truncated' / 'copied' event or a dump) holding `heldTokens` of a
   * sequence it was told to keep a prefix of. Less than the prefix means the reuse failed (the
   * shard had lost the source): a running sequence is broken, an idle one (its KV is not what
   * the ledger says) is freed everywhere.
   */
  private confirmPrefix(record: KvSequenceRecord, s: number, heldTokens: number, by: PendingPrefix['kind'] | 'dump'): KvShardCommand[] {
    const queue = record.pendingPrefixes[s]!;
    let expected: number;
    if (by === 'dump') {
      // A dump reflects every command sent before it: the last one decides.
      if (queue.length === 0) return [];
      expected = queue[queue.length - 1]!.tokens;
      queue.length = 0;
    } else {
      // Events come in command order: this one confirms the oldest pending command of its kind
      // (none pending: the shard cut the sequence on its own).
      const at = queue.findIndex((pending) => pending.kind === by);
      if (at < 0) return [];
      expected = queue[at]!.tokens;
      queue.splice(0, at + 1);
    }
    if (heldTokens >= expected) return [];
    if (record.state === 'running') {
      this.markBroken(record);
      return [];
    }
    return this.drop(record);
  }

  private requestDump(shard: KvShardMirror, event: KvShardEvent, reason: string): KvEventResult {
    shard.status = 'awaiting-dump';
    this.buffer(shard, event);
    return { status: 'need-dump', reason: `${reason}; asking shard ${shard.nodeId} stage ${shard.stage} for a full dump`, command: this.dumpCommand(shard.stage) };
  }

  private buffer(shard: KvShardMirror, event: KvShardEvent): void {
    shard.buffered.push(event);
    if (shard.buffered.length > this.maxBufferedEvents) shard.buffered.shift();
  }

  private dumpCommand(s: number): KvDumpCommand {
    return { ...this.ref(s), kind: 'dump' };
  }

  private ref(s: number): KvShardRef {
    return { modelId: this.modelId, planId: this.planId, nodeId: this.stages[s]!.nodeId, stage: s };
  }

  private refMismatch(ref: KvShardRef): string | null {
    if (ref.modelId !== this.modelId || ref.planId !== this.planId) {
      return `for model ${ref.modelId} plan ${ref.planId}, not ${this.modelId} plan ${this.planId}`;
    }
    const stage = this.stages[ref.stage];
    if (!Number.isInteger(ref.stage) || !stage) return `stage ${ref.stage} is not in plan ${this.planId} (${this.stages.length} stages)`;
    if (stage.nodeId !== ref.nodeId) return `stage ${ref.stage} of plan ${this.planId} runs on node ${stage.nodeId}, not ${ref.nodeId}`;
    return null;
  }
}
