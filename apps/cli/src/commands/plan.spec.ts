// `baton plan` end to end through the CLI's own entry (runCli): a nodes.json + a manifest.json or
// a real GGUF file in, a table / JSON out; bad files refused; infeasible = exit code 2.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ModelManifest } from '@baton/contracts';
import { writeRandomModel, RANDOM_MODEL_DEFAULTS } from '@baton/gguf';
import { runCli } from '../main.js';

const GB = 1e9;
const LAYERS = 80;
const LLAMA_70B: ModelManifest = {
  name: 'llama-3-70b-q4_k_m', arch: 'llama', fileType: 'MOSTLY_Q4_K_M', layers: LAYERS,
  embeddingLength: 8192, feedForwardLength: 28672, headCount: 64, headCountKv: 8, headDim: 128,
  contextLength: 131072, vocabSize: 128256, fileBytes: 42.5e9,
  layerBytes: Array.from({ length: LAYERS }, () => 0.506e9), embedBytes: 0.591e9, headBytes: 0.861e9,
  tiedEmbeddings: false, kvBytesPerToken: { f32: 655360, f16: 327680, q8_0: 174080 }, activationBytesPerToken: 32768,
};

let dir: string;
const file = (name: string, value: unknown) => {
  const path = join(dir, name);
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value));
  return path;
};

async function baton(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((...parts: unknown[]) => { out.push(parts.join(' ')); });
  vi.spyOn(console, 'error').mockImplementation((...parts: unknown[]) => { err.push(parts.join(' ')); });
  const code = await runCli(['plan', ...args]);
  vi.restoreAllMocks();
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'baton-plan-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

describe('baton plan', () => {
  it('answers "would two 64 GB Mac minis run this 70B model at 32K context?" (table)', async () => {
    const model = file('llama70b.json', LLAMA_70B);
    const nodes = file('minis.json', {
      nodes: [{ id: 'mini1', memoryBytes: '48GB', computeBytesPerSec: '100GB/s' }, { id: 'mini2', memoryBytes: '48GB' }],
      links: [{ from: 'mini1', to: 'mini2', rttMs: 0.3, bandwidthBytesPerSec: '1.25GB' }],
    });
    const { code, stdout, stderr } = await baton('--model', model, '--nodes', nodes, '--context', '32768', '--explain');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/STAGE\s+NODE\s+LAYERS\s+WEIGHTS\s+KV/);
    expect(stdout).toMatch(/mini1\s+0-\d+ \(\d+\)/);
    expect(stdout).toMatch(/mini2\s+\d+-79 \(\d+\)/);
    expect(stdout).toMatch(/Predicted: [\d.]+ ms\/token/);
    expect(stdout).toMatch(/compute rate not measured for mini2: assumed 20\.0 GB\/s/);
    expect(stdout).toMatch(/one node \(mini1\)\s+does not fit: needs 53\.\d GB/);
    expect(stdout).toMatch(/exo's rule \(layers ∝ memory over all nodes, KV cache not counted\)/);
  });

  it('prints the promised --json shape', async () => {
    const model = file('llama70b.json', LLAMA_70B);
    const nodes = file('three.json', { nodes: [{ id: 'big', memoryBytes: 96 * GB, computeBytesPerSec: 400 * GB }, { id: 'mid', memoryBytes: '36GB', computeBytesPerSec: '150GB' }, { id: 'small', memoryBytes: '16GB' }] });
    const { code, stdout } = await baton('--model', model, '--nodes', nodes, '--json');
    expect(code).toBe(0);
    const plan = JSON.parse(stdout);
    expect(plan.stages).toHaveLength(1);
    for (const key of ['nodeId', 'layerStart', 'layerEnd', 'weightsBytes', 'kvBytes', 'predictedMs']) expect(plan.stages[0]).toHaveProperty(key);
    expect(plan.stages[0]).toMatchObject({ nodeId: 'big', layerStart: 0, layerEnd: 80 });
    expect(plan.predicted.msPerToken).toBeGreaterThan(0);
    expect(plan.predicted.tokensPerSecond).toBeCloseTo(1000 / plan.predicted.msPerToken, 6);
    expect(Array.isArray(plan.alternatives)).toBe(true);
    expect(plan.alternatives.map((a: { description: string }) => a.description)).toContain('one node (mid)');
  });

  it('exits 2 with the numbers on stderr when the model does not fit', async () => {
    const model = file('llama70b.json', LLAMA_70B);
    const nodes = file('small.json', { nodes: [{ id: 'mbp', memoryBytes: '24GB' }, { id: 'mini', memoryBytes: '16GB' }] });
    const { code, stdout, stderr } = await baton('--model', model, '--nodes', nodes, '--context', '32768');
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/needs 41\.\d GB weights \+ 10\.7 GB KV \+ \d+ MB headroom = 5\d\.\d GB; the cluster has 40\.0 GB/);
    expect(stderr).toMatch(/mbp\s+24\.0 GB\s+\d+ of 80 layers/);
    const json = await baton('--model', model, '--nodes', nodes, '--context', '32768', '--json');
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout).error.details.availableBytes).toBe(40 * GB);
  });

  it('refuses a bad nodes.json listing every problem', async () => {
    const model = file('llama70b.json', LLAMA_70B);
    const nodes = file('bad.json', { nodes: [{ id: 'a', memoryBytes: 'lots' }, { id: 'a', memoryBytes: '1GB' }], links: [{ from: 'a', to: 'b', rttMs: 1, bandwidthBytesPerSec: '1GB' }] });
    const { code, stderr } = await baton('--model', model, '--nodes', nodes);
    expect(code).toBe(1);
    expect(stderr).toMatch(/has 3 problems/);
    expect(stderr).toMatch(/nodes\.0\.memoryBytes must be a positive byte count or a size like "48GB"/);
    expect(stderr).toMatch(/duplicate node id "a"/);
    expect(stderr).toMatch(/links\.0\.to: "b" is not one of the nodes/);
    const broken = await baton('--model', model, '--nodes', file('broken.json', '{"nodes": ['));
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/is not valid JSON/);
  });

  it('refuses a bad manifest and bad flags', async () => {
    const nodes = file('one.json', { nodes: [{ id: 'a', memoryBytes: '48GB' }] });
    const bad = await baton('--model', file('bad-model.json', { layers: 2, layerBytes: [1] }), '--nodes', nodes);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/layerBytes has 1 entries but layers is 2/);
    const flagged = await baton('--model', file('llama70b.json', LLAMA_70B), '--nodes', nodes, '--kv-dtype', 'int4');
    expect(flagged.code).toBe(64);
    expect(flagged.stderr).toMatch(/--kv-dtype must be one of f32, f16, q8_0/);
  });

  it('plans a real GGUF file', async () => {
    const model = join(dir, 'tiny.gguf');
    await writeRandomModel({ ...RANDOM_MODEL_DEFAULTS, out: model, layers: 6 });
    const nodes = file('tiny-nodes.json', { nodes: [{ id: 'a', memoryBytes: '1GB', computeBytesPerSec: '10GB' }, { id: 'b', memoryBytes: '1GB', computeBytesPerSec: '10GB' }] });
    const { code, stdout } = await baton('--model', model, '--nodes', nodes, '--objective', 'throughput', '--sequences', '4', '--json');
    expect(code).toBe(0);
    const plan = JSON.parse(stdout);
    expect(plan.model.layers).toBe(6);
    expect(plan.stages).toHaveLength(2);
    expect(plan.stages[1].layerEnd).toBe(6);
  });
});
