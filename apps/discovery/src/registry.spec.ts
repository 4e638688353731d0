import { describe, expect, it } from 'vitest';
import { MAX_ANNOUNCEMENT_BYTES, type NodeAnnouncement, type NodeId, type NodeRecord } from '@baton/contracts';
import { announcement } from '../test/fixtures.js';
import { changedFields, isVersionMismatch, parseLease, reconcile, type Observed } from './registry.js';

const lease = (a: NodeAnnouncement, heartbeatAtMs = 1000) => JSON.stringify({ announcement: a, heartbeatAtMs });

describe('parseLease', () => {
  it('accepts a valid lease', () => {
    const parsed = parseLease('p:node:a', lease(announcement('a')));
    expect(parsed.ok).toBe(true);
  });
  it.each([
    ['not JSON', '{oops', /not JSON/],
    ['missing fields', JSON.stringify({ announcement: { id: 'a' }, heartbeatAtMs: 1 }), /hostname/],
    ['negative memory', lease(announcement('a', { memory: { totalBytes: -1, availableBytes: 0, budgetBytes: 0 } })), /totalBytes/],
    ['wrong types', lease({ ...announcement('a'), pid: 'twelve' as never }), /pid/],
    ['an id that is not its key', lease(announcement('b')), /does not match its key/],
    ['more available than total', lease(announcement('a', { memory: { totalBytes: 1, availableBytes: 2, budgetBytes: 1 } })), /availableBytes/],
    ['an oversized payload', lease(announcement('a', { name: 'x'.repeat(100) , models: Array.from({ length: 200 }, (_, i) => ({ name: `m${i}`, path: 'p'.repeat(400), sizeBytes: 1 })) })), new RegExp(`${MAX_ANNOUNCEMENT_BYTES}`)],
  ])('refuses %s', (_what, raw, message) => {
    const parsed = parseLease('p:node:a', raw);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problems.join('; ')).toMatch(message);
  });
});

describe('reconcile', () => {
  const observe = (...list: NodeAnnouncement[]) => new Map<NodeId, Observed>(list.map((a) => [a.id, { announcement: a, heartbeatAtMs: 1000 }]));

  it('emits joined, updated (with the changed fields) and left (expired or goodbye)', () => {
    const step1 = reconcile(new Map(), observe(announcement('a'), announcement('b')), new Set(), 2000);
    expect(step1.events.map((e) => e.type)).toEqual(['node.joined', 'node.joined']);
    const step2 = reconcile(step1.registry, observe(announcement('a', { status: 'loading' }), announcement('b')), new Set(), 3000);
    expect(step2.events).toHaveLength(1);
    expect(step2.events[0]).toMatchObject({ type: 'node.updated', data: { changed: ['status'] } });
    const step3 = reconcile(step2.registry, observe(), new Set(['a' as NodeId]), 4000);
    expect(step3.events.map((e) => [e.type, (e.data as { reason: string }).reason])).toEqual([['node.left', 'goodbye'], ['node.left', 'expired']]);
    expect(step3.registry.size).toBe(0);
  });

  it('does not report a heartbeat as an update', () => {
    const first = reconcile(new Map(), observe(announcement('a')), new Set(), 2000);
    const again = reconcile(first.registry, new Map([['a' as NodeId, { announcement: announcement('a'), heartbeatAtMs: 5000 }]]), new Set(), 6000);
    expect(again.events).toEqual([]);
    expect(again.registry.get('a' as NodeId)!.lastSeenMs).toBe(5000);
  });

  it('marks nodes on another version or protocol', () => {
    const { registry } = reconcile(new Map<NodeId, NodeRecord>(), observe(announcement('old', { version: '0.0.1' }), announcement('proto', { protocolVersion: 9 })), new Set(), 1);
    expect(registry.get('old' as NodeId)!.versionMismatch).toBe(true);
    expect(registry.get('proto' as NodeId)!.versionMismatch).toBe(true);
    expect(isVersionMismatch(announcement('x'))).toBe(false);
  });

  it('names changed fields', () => {
    expect(changedFields(announcement('a'), announcement('a', { pid: 5, endpoints: [{ kind: 'tcp', address: 'h', port: 1 }] }))).toEqual(['endpoints', 'pid']);
  });
});
