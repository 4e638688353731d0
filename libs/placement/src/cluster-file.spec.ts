import { describe, expect, it } from 'vitest';
import { ValidationFailed, type LinkMeasurement, type NodeRecord } from '@baton/contracts';
import { clusterFromRecords, readClusterFile } from './cluster-file.js';

function problemsOf(plain: unknown): string[] {
  try {
    readClusterFile(plain);
  } catch (error) {
    if (error instanceof ValidationFailed) return error.problems;
    throw error;
  }
  return [];
}

describe('readClusterFile (nodes.json)', () => {
  it('accepts numbers and human sizes, "/s" included; compute may be omitted or null', () => {
    const cluster = readClusterFile({
      nodes: [
        { id: 'mini1', memoryBytes: '64GB', computeBytesPerSec: '120GB/s' },
        { id: 'mini2', memoryBytes: 48e9, computeBytesPerSec: null },
        { id: 'pi', memoryBytes: '7.5 GiB' },
      ],
      links: [{ from: 'mini1', to: 'mini2', rttMs: 0.4, bandwidthBytesPerSec: '1.25 GB/s' }],
    });
    expect(cluster.nodes).toEqual([
      { id: 'mini1', memoryBytes: 64e9, computeBytesPerSec: 120e9 },
      { id: 'mini2', memoryBytes: 48e9, computeBytesPerSec: null },
      { id: 'pi', memoryBytes: Math.floor(7.5 * 2 ** 30), computeBytesPerSec: null },
    ]);
    expect(cluster.links).toEqual([{ from: 'mini1', to: 'mini2', rttMs: 0.4, bandwidthBytesPerSec: 1.25e9 }]);
  });

  const cases: { name: string; plain: unknown; problems: RegExp[] }[] = [
    { name: 'not an object', plain: [1], problems: [/expected a JSON object, got an array/] },
    { name: 'no nodes', plain: { nodes: [] }, problems: [/nodes must contain at least 1 elements/] },
    {
      name: 'every field problem at once',
      plain: { nodes: [{ id: 'a b', memoryBytes: '48 gigs' }, { id: 'x', memoryBytes: 0, computeBytesPerSec: 'fast', gpu: true }] },
      problems: [/nodes\.0\.id must be 1-128 characters/, /nodes\.0\.memoryBytes must be a positive byte count .* got 48 gigs/, /nodes\.1\.memoryBytes must be a positive/, /nodes\.1\.computeBytesPerSec must be a positive/, /nodes\.1\.gpu: property gpu should not exist/],
    },
    {
      name: 'duplicates, self-links and links to unknown nodes',
      plain: {
        nodes: [{ id: 'a', memoryBytes: '1GB' }, { id: 'a', memoryBytes: '1GB' }, { id: 'b', memoryBytes: '1GB' }],
        links: [
          { from: 'a', to: 'c', rttMs: 1, bandwidthBytesPerSec: '1GB' },
          { from: 'b', to: 'b', rttMs: 1, bandwidthBytesPerSec: '1GB' },
          { from: 'a', to: 'b', rttMs: -1, bandwidthBytesPerSec: '1GB' },
          { from: 'a', to: 'b', rttMs: 1, bandwidthBytesPerSec: 0 },
        ],
      },
      problems: [/nodes\.1\.id: duplicate node id "a"/, /links\.0\.to: "c" is not one of the nodes \(a, b\)/, /links\.1: a link from b to itself/, /links\.2\.rttMs must not be less than 0/, /links\.3\.bandwidthBytesPerSec must be a positive/, /links\.3: a second link a→b/],
    },
  ];
  for (const testCase of cases) {
    it(`refuses ${testCase.name}, listing every problem`, () => {
      const problems = problemsOf(testCase.plain);
      for (const pattern of testCase.problems) expect(problems.join('\n')).toMatch(pattern);
      expect(problems.length).toBeGreaterThanOrEqual(testCase.problems.length);
    });
  }
});

describe('clusterFromRecords (live registry)', () => {
  const record = (id: string, extra: Partial<NodeRecord> = {}): NodeRecord => ({
    id, name: id, hostname: 'h', pid: 1, version: '0.1.0', protocolVersion: 1, endpoints: [],
    memory: { totalBytes: 64e9, availableBytes: 60e9, budgetBytes: 48e9 },
    cpu: { model: 'm', threads: 8, arch: 'arm64', features: [] },
    computeBytesPerSec: 100e9, models: [], rdmaDevices: [], startedAtMs: 0, lastSeenMs: 0, versionMismatch: false,
    ...extra,
  } as NodeRecord);
  it('uses the budget and measured compute, keeps links between usable nodes, leaves out mismatched and draining nodes', () => {
    const links: LinkMeasurement[] = [
      { from: 'a', to: 'b', rttP50Ms: 0.2, rttP99Ms: 1, bandwidthBytesPerSec: 1e9, measuredAtMs: 0 } as LinkMeasurement,
      { from: 'a', to: 'old', rttP50Ms: 0.2, rttP99Ms: 1, bandwidthBytesPerSec: 1e9, measuredAtMs: 0 } as LinkMeasurement,
    ];
    const cluster = clusterFromRecords([record('a'), record('b', { computeBytesPerSec: null }), record('old', { versionMismatch: true }), record('bye', { draining: true })], links);
    expect(cluster.nodes).toEqual([
      { id: 'a', memoryBytes: 48e9, computeBytesPerSec: 100e9 },
      { id: 'b', memoryBytes: 48e9, computeBytesPerSec: null },
    ]);
    expect(cluster.links).toEqual([{ from: 'a', to: 'b', rttMs: 0.2, bandwidthBytesPerSec: 1e9 }]);
    expect(cluster.left.map((n) => n.id)).toEqual(['old', 'bye']);
  });
});
