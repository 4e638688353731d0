// The KV column of `baton nodes`: the manager's running / cached-idle split when it answers, the
// node's own count otherwise.
import { describe, expect, it } from 'vitest';
import type { KvNodeUsage, KvUsageReport, NodeRecord } from '@baton/contracts';
import { formatKv } from './nodes.js';

const node = { id: 'n1', kv: { blocksUsed: 7, blocksTotal: 64, blockTokens: 16, sequences: 1 } } as unknown as NodeRecord;
const usage = (nodeId: string, running: number, cached: number, capacity: number) =>
  ({ nodeId, runningBlocks: running, cachedIdleBlocks: cached, capacityBlocks: capacity }) as KvNodeUsage;

describe('formatKv', () => {
  it('shows the manager view of the node, summed over the models it serves', () => {
    const kv: KvUsageReport = { atMs: 0, nodes: [usage('n1', 3, 10, 64), usage('n2', 1, 1, 64), usage('n1', 2, 0, 32)] };
    expect(formatKv(node, kv)).toBe('5 running + 10 cached / 96 blocks');
  });

  it("falls back to the node's own count without a manager, and to nothing without a pool", () => {
    expect(formatKv(node)).toBe('7/64 blocks');
    expect(formatKv(node, { atMs: 0, nodes: [usage('n2', 1, 1, 64)] })).toBe('7/64 blocks');
    expect(formatKv({ id: 'n3' } as unknown as NodeRecord)).toBe('');
  });
});
