import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BATON_VERSION, BatonError, ErrorCode, NodeAnnouncementDto, formatBytes, modelId, nodeId, parseByteSize, sequenceId, validateDto } from './index.js';

function announcement(): Record<string, unknown> {
  return {
    id: 'mbp-1a2b3c',
    name: 'mbp',
    hostname: 'mbp.local',
    pid: 4242,
    version: '0.1.0',
    protocolVersion: 1,
    endpoints: [{ kind: 'tcp', address: '192.168.1.10', port: 7000 }],
    memory: { totalBytes: 48e9, availableBytes: 30e9, budgetBytes: 36e9 },
    cpu: { model: 'Apple M5 Pro', threads: 14, arch: 'arm64', features: ['neon', 'dotprod'] },
    computeBytesPerSec: null,
    models: [{ name: 'qwen3', path: '/x/qwen3.gguf', sizeBytes: 123 }],
    rdmaDevices: [],
    startedAtMs: 1,
  };
}

describe('branded ids', () => {
  it('accept safe ids and refuse the rest with a reason', () => {
    expect(nodeId('mbp-1')).toBe('mbp-1');
    expect(modelId('qwen3:8b')).toBe('qwen3:8b');
    expect(() => nodeId('has space')).toThrow(/invalid node id/);
    expect(() => nodeId('')).toThrow();
    expect(() => sequenceId(-1)).toThrow(/sequence id/);
    expect(sequenceId(3)).toBe(3);
  });
});

describe('byte sizes', () => {
  it.each([
    ['16GB', 16e9],
    ['512 MiB', 512 * 2 ** 20],
    ['1.5gb', 1.5e9],
    ['1048576', 1048576],
    [42, 42],
  ])('parses %s', (input, expected) => expect(parseByteSize(input as string)).toBe(expected));
  it.each(['', 'lots', '-1GB', '12 XB', 'GB'])('refuses %j', (input) => expect(() => parseByteSize(input)).toThrow(/byte size/));
  it('formats for people', () => {
    expect(formatBytes(48e9)).toBe('48.0 GB');
    expect(formatBytes(1.5e9)).toBe('1.50 GB');
    expect(formatBytes(512)).toBe('512 B');
  });
});

describe('node announcement DTO', () => {
  it('accepts a full announcement', () => {
    const result = validateDto(NodeAnnouncementDto, announcement());
    expect(result.ok).toBe(true);
  });

  it('lists every problem of a bad one', () => {
    const bad = announcement();
    delete bad.hostname;
    bad.pid = 'x';
    (bad.memory as Record<string, unknown>).totalBytes = -5;
    bad.extra = true;
    const result = validateDto(NodeAnnouncementDto, bad);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const text = result.problems.join('\n');
    expect(text).toMatch(/hostname/);
    expect(text).toMatch(/pid/);
    expect(text).toMatch(/memory\.totalBytes/);
    expect(text).toMatch(/extra/);
    expect(result.problems.length).toBeGreaterThanOrEqual(4);
  });

  it('refuses non-objects', () => {
    expect(validateDto(NodeAnnouncementDto, null).ok).toBe(false);
    expect(validateDto(NodeAnnouncementDto, [1]).ok).toBe(false);
    expect(validateDto(NodeAnnouncementDto, 'x').ok).toBe(false);
  });
});

describe('errors', () => {
  it('cross the wire with their code', () => {
    const error = new BatonError(ErrorCode.INFEASIBLE, 'needs 52 GB', { needed: 52e9 });
    const back = BatonError.fromBody(JSON.parse(JSON.stringify(error.toBody())));
    expect(back.code).toBe(ErrorCode.INFEASIBLE);
    expect(back.details).toEqual({ needed: 52e9 });
  });
});

describe('version', () => {
  it('equals the root package version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(BATON_VERSION).toBe(pkg.version);
  });
});
