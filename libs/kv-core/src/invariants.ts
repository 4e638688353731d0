// Invariant checks over a KvCacheCore, for tests and for the service's self-audit: each
// returns the list of violations (empty when all hold), each naming what is wrong.
import type { NodeId } from '@baton/contracts';
import { blocksForTokens } from './blocks.js';
import type { KvCacheCore } from './cache.js';
import { chainBlockHashes } from './hash.js';

export interface KvInvariantOptions {
  /**
   * Every command sent has been applied by the shards and every event they emitted has been
   * applied here: then the blocks the manager accounts for equal the blocks the shards report
   * (exactly for idle sequences; running ones may still hold less than they reserved).
   */
  quiescent?: boolean;
  /** Recompute every sequence's chained hashes (slower; on by default). */
  checkHashes?: boolean;
}

export interface KvAccounting {
  stage: number;
  nodeId: NodeId;
  capacityBlocks: number;
  /** Blocks the ledger accounts for (reserved by running sequences + held by idle ones). */
  accountedBlocks: number;
  /** Blocks the shard reports holding; null while it is not in sync. */
  reportedBlocks: number | null;
}

/** Per stage: what the manager accounts for against what the shard reports. */
export function kvAccounting(core: KvCacheCore): KvAccounting[] {
  const { shards } = core.inspect();
  return core.stages.map((stage, s) => {
    const shard = shards[s]!;
    let reported: number | null = null;
    if (shard.status === 'in-sync') {
      reported = 0;
      for (const entry of shard.sequences.values()) reported += entry.blocks;
    }
    return { stage: s, nodeId: stage.nodeId, capacityBlocks: core.capacityBlocks(s), accountedBlocks: core.usedBlocks(s), reportedBlocks: reported };
  });
}

export function checkKvInvariants(core: KvCacheCore, options: KvInvariantOptions = {}): string[] {
  const problems: string[] = [];
  const { ledger, index, shards } = core.inspect();
  const stageCount = core.stages.length;

  for (let s = 0; s < stageCount; s++) {
    const used = core.usedBlocks(s);
    if (used > core.capacityBlocks(s)) problems.push(`stage ${s}: ${used} blocks accounted exceed capacity ${core.capacityBlocks(s)}`);
  }

  let indexedPairs = 0;
  for (const [id, record] of ledger) {
    const at = `sequence ${id}`;
    if (record.sequenceId !== id) problems.push(`${at}: keyed under ${id} but named ${record.sequenceId}`);
    if (record.blocks.length !== stageCount) problems.push(`${at}: blocks for ${record.blocks.length} stages, plan has ${stageCount}`);
    if (record.blocks.some((blocks) => !Number.isSafeInteger(blocks) || blocks < 0)) problems.push(`${at}: bad block counts ${record.blocks.join(',')}`);
    if (record.state === 'running' && record.requestId === null) problems.push(`${at}: running without a request`);
    if (record.state === 'idle' && record.requestId !== null) problems.push(`${at}: idle but still tied to request ${record.requestId}`);
    if (record.orphan && (record.state !== 'idle' || record.tokens.length > 0 || record.hashes.length > 0)) problems.push(`${at}: orphan must be idle with no known tokens`);
    if (options.checkHashes !== false) {
      const expected = chainBlockHashes(record.tokens);
      if (expected.length !== record.hashes.length || expected.some((hash, i) => hash !== record.hashes[i])) problems.push(`${at}: block hashes do not match its tokens`);
    }
    if (!record.orphan) {
      const needed = blocksForTokens(record.tokens.length);
      record.blocks.forEach((blocks, s) => {
        if (blocks < needed) problems.push(`${at}: ${blocks} blocks on stage ${s} cannot hold its ${record.tokens.length} tokens`);
      });
    }
    if (!record.broken) {
      for (const hash of new Set(record.hashes)) {
        if (!index.holdersOf(hash).has(id)) problems.push(`${at}: block ${hash} missing from the prefix index`);
        else indexedPairs++;
      }
    }
  }
  let indexPairs = 0;
  for (const [hash, holders] of index.entries()) {
    for (const id of holders) {
      indexPairs++;
      const record = ledger.get(id);
      if (!record) problems.push(`prefix index: block ${hash} points at unknown sequence ${id}`);
      else if (record.broken) problems.push(`prefix index: block ${hash} points at broken sequence ${id}`);
      else if (!record.hashes.includes(hash)) problems.push(`prefix index: block ${hash} points at sequence ${id}, which does not hold it`);
    }
  }
  if (indexPairs !== indexedPairs) problems.push(`prefix index holds ${indexPairs} (block, sequence) pairs, the ledger ${indexedPairs}`);

  for (const shard of shards) {
    const s = shard.stage;
    for (const id of shard.pendingFree) {
      if ((ledger.get(id)?.blocks[s] ?? 0) > 0) problems.push(`stage ${s}: sequence ${id} is pending free yet accounted ${ledger.get(id)!.blocks[s]} blocks`);
    }
    if (shard.status !== 'in-sync') {
      if (options.quiescent) problems.push(`stage ${s}: shard ${shard.nodeId} is ${shard.status}`);
      continue;
    }
    for (const [id, entry] of shard.sequences) {
      // A free is on its way to the shard: its blocks already count as free.
      if (shard.pendingFree.has(id)) continue;
      const record = ledger.get(id);
      if (!record) {
        problems.push(`stage ${s}: shard holds sequence ${id} (${entry.blocks} blocks) that nobody accounts for`);
        continue;
      }
      if (record.pendingPrefixes[s]!.length > 0) continue;
      if (entry.blocks > record.blocks[s]!) problems.push(`stage ${s}: shard holds ${entry.blocks} blocks for sequence ${id}, the ledger ${record.blocks[s]}`);
    }
    if (!options.quiescent) continue;
    if (shard.pendingFree.size > 0) problems.push(`stage ${s}: frees not confirmed for sequences ${[...shard.pendingFree].join(', ')}`);
    for (const [id, record] of ledger) {
      if (record.pendingPrefixes[s]!.length > 0) problems.push(`stage ${s}: ${record.pendingPrefixes[s]!.map((p) => p.kind).join(', ')} of sequence ${id} not confirmed`);
      if (record.state !== 'idle') continue;
      const reported = shard.sequences.get(id)?.blocks ?? 0;
      if (reported !== record.blocks[s]) problems.push(`stage ${s}: idle sequence ${id} accounted ${record.blocks[s]} blocks, shard reports ${reported}`);
    }
    const running = [...ledger.values()].some((record) => record.state === 'running');
    if (!running) {
      const accounting = kvAccounting(core)[s]!;
      if (accounting.accountedBlocks !== accounting.reportedBlocks) {
        problems.push(`stage ${s}: ${accounting.accountedBlocks} blocks accounted, shard reports ${accounting.reportedBlocks}`);
      }
    }
  }
  return problems;
}

/** Throws listing every violation. */
export function assertKvInvariants(core: KvCacheCore, options: KvInvariantOptions = {}): void {
  const problems = checkKvInvariants(core, options);
  if (problems.length > 0) throw new Error(`KV cache invariants violated:\n  ${problems.join('\n  ')}`);
}
