import { describe, expect, it } from 'vitest';
import {
  KvAdmitRequestDto, KvLookupRequestDto, KvNodeUsageDto, KvReleaseRequestDto, KvShardCommandDto, KvShardDumpDto, KvShardEventDto, KvUsageReportDto,
} from './kv.js';
import { validateDto } from './validate.js';

const ref = { modelId: 'demo', planId: 'plan-1', nodeId: 'mini-1', stage: 0 };
const base = { ...ref, epoch: '1700000000000-42', seq: 1, atMs: 1, sequenceId: 7 };

describe('KV shard events', () => {
  it.each([
    ['stored', { ...base, kind: 'stored', tokens: 40, blocks: 3 }],
    ['truncated', { ...base, kind: 'truncated', tokens: 32, blocks: 2 }],
    ['copied', { ...base, kind: 'copied', fromSequenceId: 3, tokens: 32, blocks: 2 }],
    ['freed', { ...base, kind: 'freed' }],
  ])('accepts a %s event', (_kind, event) => {
    expect(validateDto(KvShardEventDto, event)).toMatchObject({ ok: true });
  });

  it.each([
    ['a stored event without counts', { ...base, kind: 'stored' }, ['tokens', 'blocks']],
    ['a copied event without its source', { ...base, kind: 'copied', tokens: 1, blocks: 1 }, ['fromSequenceId']],
    ['seq 0', { ...base, kind: 'freed', seq: 0 }, ['seq']],
    ['an unknown kind', { ...base, kind: 'moved' }, ['kind']],
    ['a bad node id', { ...base, kind: 'freed', nodeId: 'mini 1' }, ['nodeId']],
    ['a sequence id beyond u32', { ...base, kind: 'freed', sequenceId: 2 ** 32 }, ['sequenceId']],
    ['an unknown field', { ...base, kind: 'freed', extra: 1 }, ['extra']],
  ])('refuses %s, naming the field', (_name, event, fields) => {
    const result = validateDto(KvShardEventDto, event);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    for (const field of fields) expect(result.problems.some((problem) => problem.includes(field))).toBe(true);
  });
});

describe('KV dumps, commands and requests', () => {
  it('accepts a dump and refuses a bad sequence in it', () => {
    const dump = { ...ref, epoch: 'e1', seq: 12, atMs: 5, capacityBlocks: 1240, sequences: [{ sequenceId: 1, tokens: 40, blocks: 3 }] };
    expect(validateDto(KvShardDumpDto, dump).ok).toBe(true);
    const bad = validateDto(KvShardDumpDto, { ...dump, sequences: [{ sequenceId: 1, tokens: -1, blocks: 3 }] });
    expect(bad.ok === false && bad.problems.join()).toMatch(/sequences\.0\.tokens/);
  });

  it.each([
    [{ ...ref, kind: 'free', sequenceId: 4 }, true],
    [{ ...ref, kind: 'truncate', sequenceId: 4, tokens: 32 }, true],
    [{ ...ref, kind: 'truncate', sequenceId: 4 }, false],
    [{ ...ref, kind: 'copy', sequenceId: 4, fromSequenceId: 2, tokens: 32 }, true],
    [{ ...ref, kind: 'copy', sequenceId: 4, tokens: 32 }, false],
    [{ ...ref, kind: 'dump' }, true],
  ])('command %j valid: %s', (command, ok) => {
    expect(validateDto(KvShardCommandDto, command).ok).toBe(ok);
  });

  it('lists every problem of an admit request', () => {
    const result = validateDto(KvAdmitRequestDto, { modelId: 'demo', requestId: 'r 1', tokens: [1, -2, 3.5], maxTokens: -1 });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.join('\n')).toMatch(/requestId/);
    expect(result.problems.join('\n')).toMatch(/tokens/);
    expect(result.problems.join('\n')).toMatch(/maxTokens/);
  });

  it('accepts release and lookup requests', () => {
    expect(validateDto(KvReleaseRequestDto, { modelId: 'demo', sequenceId: 3, tokens: [1, 2], keep: true }).ok).toBe(true);
    expect(validateDto(KvReleaseRequestDto, { modelId: 'demo', sequenceId: 3 }).ok).toBe(true);
    expect(validateDto(KvReleaseRequestDto, { modelId: 'demo', sequenceId: 3, keep: 'yes' }).ok).toBe(false);
    expect(validateDto(KvLookupRequestDto, { modelId: 'demo', tokens: [] }).ok).toBe(true);
  });

  it('accepts a usage report, with a null report from a shard out of sync', () => {
    const node = {
      ...ref, layerStart: 0, layerEnd: 8, blockBytes: 163840, capacityBlocks: 1240, usedBlocks: 1234, runningBlocks: 1000, cachedIdleBlocks: 234,
      sequences: 9, runningSequences: 4, idleSequences: 5, reportedBlocks: null, inSync: false,
    };
    expect(validateDto(KvNodeUsageDto, node).ok).toBe(true);
    expect(validateDto(KvUsageReportDto, { atMs: 1, nodes: [node, { ...node, reportedBlocks: 1200, inSync: true }] }).ok).toBe(true);
    expect(validateDto(KvUsageReportDto, { atMs: 1, nodes: [{ ...node, reportedBlocks: -1 }] }).ok).toBe(false);
  });
});
