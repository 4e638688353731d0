// The prefix index: chained block hash → the sequences whose KV holds that block (and, because
// hashes chain, every block before it). One index per model and plan.
import type { SequenceId } from '@baton/contracts';
import type { BlockHash } from './hash.js';

export class PrefixIndex {
  private readonly holders = new Map<BlockHash, Set<SequenceId>>();

  /** Records that `sequenceId` holds blocks `hashes[from..]`. */
  add(sequenceId: SequenceId, hashes: readonly BlockHash[], from = 0): void {
    for (let i = from; i < hashes.length; i++) {
      const hash = hashes[i]!;
      let set = this.holders.get(hash);
      if (!set) this.holders.set(hash, (set = new Set()));
      set.add(sequenceId);
    }
  }

  /** Forgets that `sequenceId` holds blocks `hashes[from..]`. */
  remove(sequenceId: SequenceId, hashes: readonly BlockHash[], from = 0): void {
    for (let i = from; i < hashes.length; i++) {
      const hash = hashes[i]!;
      const set = this.holders.get(hash);
      if (!set) continue;
      set.delete(sequenceId);
      if (set.size === 0) this.holders.delete(hash);
    }
  }

  /**
   * Walks `hashes` from block 0 while some sequence holds the block. Returns the number of
   * leading blocks found and, for each holder, how many leading blocks it holds.
   */
  match(hashes: readonly BlockHash[]): { blocks: number; depthBySequence: Map<SequenceId, number> } {
    const depthBySequence = new Map<SequenceId, number>();
    let blocks = 0;
    for (let i = 0; i < hashes.length; i++) {
      const set = this.holders.get(hashes[i]!);
      if (!set || set.size === 0) break;
      blocks = i + 1;
      for (const sequenceId of set) depthBySequence.set(sequenceId, i + 1);
    }
    return { blocks, depthBySequence };
  }

  holdersOf(hash: BlockHash): ReadonlySet<SequenceId> {
    return this.holders.get(hash) ?? new Set();
  }

  /** Distinct block hashes indexed. */
  get size(): number {
    return this.holders.size;
  }

  entries(): IterableIterator<[BlockHash, ReadonlySet<SequenceId>]> {
    return this.holders.entries();
  }
}
