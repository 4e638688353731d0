import { describe, expect, it } from 'vitest';
import { BatonError, ErrorCode, type Placement, type PlanRequirement } from '@baton/contracts';
import { GB, LLAMA_70B, link, manifest, node } from '../test/fixtures.js';
import { InfeasibleError, PlacementInputError } from './errors.js';
import { exoPlacement } from './exo.js';
import type { PlacementInput } from './input.js';
import { planPlacement } from './plan-placement.js';

const requirement = (overrides: Partial<PlanRequirement> = {}): PlanRequirement => ({
  contextTokens: 4096, sequences: 1, kvDType: 'f16', objective: 'latency', ...overrides,
});

const layersOf = (plan: Placement) => plan.stages.map((s) => s.layerEnd - s.layerStart);
const idsOf = (plan: Placement) => plan.stages.map((s) => s.nodeId);

function expectValid(plan: Placement, layers: number): void {
  expect(plan.stages[0]!.layerStart).toBe(0);
  expect(plan.stages[plan.stages.length - 1]!.layerEnd).toBe(layers);
  plan.stages.forEach((stage, i) => {
    expect(stage.layerEnd).toBeGreaterThan(stage.layerStart);
    if (i > 0) expect(stage.layerStart).toBe(plan.stages[i - 1]!.layerEnd);
    expect(stage.memoryBytes).toBeLessThanOrEqual(stage.memoryBudgetBytes);
    expect(stage.memoryBytes).toBe(stage.weightsBytes + stage.kvBytes + stage.headroomBytes);
  });
  expect(new Set(idsOf(plan)).size).toBe(plan.stages.length);
}

// A 30-layer model of 1 GB layers: ~31 GB of weights.
const MODEL_31GB = manifest({ layers: 30, layerBytes: 1 * GB });
// 44 GB of layers + 1 GB embedding/head: the weights fit 48 GB, weights + KV at 32K do not.
const MODEL_45GB = manifest({ layers: 44, layerBytes: 1 * GB });

describe('planPlacement: the cases from issue 5', () => {
  const cases: {
    name: string;
    input: PlacementInput;
    expectNodes?: string[];
    expectStages?: number;
    check?: (plan: Placement) => void;
  }[] = [
    {
      name: '48 GB + 16 GB 20 ms apart, model fits the 48 GB one: latency uses one node',
      input: {
        manifest: MODEL_31GB,
        nodes: [node('small', 16), node('big', 48)],
        links: [link('small', 'big', 20), link('big', 'small', 20)],
        requirement: requirement(),
      },
      expectNodes: ['big'],
      check: (plan) => {
        expect(plan.hops).toEqual([]);
        const split = plan.alternatives.find((a) => a.nodes.length === 2 && !a.description.startsWith("exo"));
        expect(split?.reason).toMatch(/ms\/token vs .* ms\/token/);
        expect(split!.predicted!.msPerToken).toBeGreaterThan(plan.predicted.msPerToken);
        const small = plan.alternatives.find((a) => a.description === 'one node (small)');
        expect(small?.reason).toMatch(/^does not fit: needs 3\d\.\d GB .*has 16\.0 GB$/);
      },
    },
    {
      name: 'too big for either once the KV cache is counted: it splits, and fits',
      input: {
        manifest: MODEL_45GB,
        nodes: [node('big', 48), node('small', 16, 50)],
        links: [link('small', 'big', 20)],
        requirement: requirement({ contextTokens: 32768 }),
      },
      expectStages: 2,
      check: (plan) => {
        // Weights alone (45 GB) would fit the 48 GB node; with 5.9 GB of KV they do not.
        expect(plan.stages.reduce((sum, s) => sum + s.kvBytes, 0)).toBeCloseTo(44 * 4096 * 32768, -3);
        const alone = plan.alternatives.find((a) => a.description === 'one node (big)');
        expect(alone?.reason).toMatch(/does not fit: needs 5\d\.\d GB \(45\.\d GB weights \+ 5\.9\d GB KV/);
        // The fast big node keeps as many layers as fit.
        expect(plan.stages.find((s) => s.nodeId === 'big')!.layerEnd - plan.stages.find((s) => s.nodeId === 'big')!.layerStart).toBeGreaterThan(35);
      },
    },
    {
      name: '80 layers over 4 machines (Llama 70B on 4 × 12 GB)',
      input: {
        manifest: LLAMA_70B,
        nodes: [node('a', 12), node('b', 12), node('c', 12), node('d', 12)],
        requirement: requirement({ contextTokens: 8192 }),
      },
      expectStages: 4,
      check: (plan) => {
        expect(layersOf(plan).reduce((a, b) => a + b, 0)).toBe(80);
        expect(plan.hops).toHaveLength(4);
        expect(plan.hops[3]!.bytesPerToken).toBe(4);
        expect(plan.hops[0]!.bytesPerToken).toBe(8192 * 4);
        expect(plan.assumptions.join(' ')).toMatch(/not measured: assumed 0.5 ms RTT/);
      },
    },
    {
      name: 'a node with 10× slower compute gets fewer layers',
      input: {
        manifest: manifest({ layers: 40, layerBytes: 1 * GB }),
        nodes: [node('slow', 30, 10), node('fast', 30, 100)],
        requirement: requirement(),
      },
      expectStages: 2,
      check: (plan) => {
        const slow = plan.stages.find((s) => s.nodeId === 'slow')!;
        const fast = plan.stages.find((s) => s.nodeId === 'fast')!;
        expect(slow.layerEnd - slow.layerStart).toBeLessThan(fast.layerEnd - fast.layerStart);
        // As few as memory allows: the fast node could not take one more 1 GB layer.
        expect(fast.memoryBytes + 1 * GB).toBeGreaterThan(fast.memoryBudgetBytes);
      },
    },
    {
      name: 'throughput balances stage times across nodes',
      input: {
        manifest: manifest({ layers: 32, layerBytes: 0.25 * GB }),
        nodes: [node('a', 64), node('b', 64), node('c', 64), node('d', 64)],
        links: [],
        requirement: requirement({ objective: 'throughput', sequences: 8 }),
      },
      expectStages: 4,
      check: (plan) => {
        const times = plan.stages.map((s) => s.predictedMs);
        expect(Math.max(...times) / Math.min(...times)).toBeLessThan(1.3);
        expect(plan.predicted.tokensPerSecond).toBeCloseTo(1000 / plan.predicted.bottleneckMs, 6);
        const alone = plan.alternatives.find((a) => a.description === 'one node (a)');
        expect(alone!.predicted!.tokensPerSecond).toBeLessThan(plan.predicted.tokensPerSecond);
        expect(alone!.reason).toMatch(/tokens\/s vs .* tokens\/s with 8 sequences in flight/);
      },
    },
    {
      name: 'the same cluster under latency uses one node',
      input: {
        manifest: manifest({ layers: 32, layerBytes: 0.25 * GB }),
        nodes: [node('a', 64), node('b', 64), node('c', 64), node('d', 64)],
        requirement: requirement({ objective: 'latency', sequences: 8 }),
      },
      expectNodes: ['a'],
    },
    {
      name: 'the ring is ordered to cross the slow links as few times as possible',
      input: {
        manifest: manifest({ layers: 40, layerBytes: 1 * GB }),
        nodes: [node('a', 12), node('c', 12), node('b', 12), node('d', 12)],
        links: [link('a', 'b', 0.1), link('c', 'd', 0.1), link('a', 'c', 20), link('a', 'd', 20), link('b', 'c', 20), link('b', 'd', 20)],
        requirement: requirement(),
      },
      expectStages: 4,
      check: (plan) => {
        expect(plan.hops.filter((h) => h.rttMs >= 20)).toHaveLength(2);
        expect(plan.assumptions).toEqual([]);
      },
    },
    {
      name: 'pinned nodes: only those are used',
      input: {
        manifest: MODEL_31GB,
        nodes: [node('big', 48), node('m1', 24), node('m2', 24)],
        requirement: requirement({ pinnedNodes: ['m1', 'm2'] as never }),
      },
      expectStages: 2,
      check: (plan) => expect(new Set(idsOf(plan))).toEqual(new Set(['m1', 'm2'])),
    },
    {
      name: 'an unmeasured node is planned at the default rate, and the plan says so',
      input: {
        manifest: MODEL_31GB,
        nodes: [node('mystery', 48, null)],
        requirement: requirement(),
      },
      expectNodes: ['mystery'],
      check: (plan) => {
        expect(plan.stages[0]!.computeMeasured).toBe(false);
        expect(plan.stages[0]!.computeBytesPerSec).toBe(20e9);
        expect(plan.assumptions[0]).toMatch(/compute rate not measured for mystery: assumed 20\.0 GB\/s/);
      },
    },
    {
      name: 'tied embeddings: the last stage holds its own copy of the embedding',
      input: {
        manifest: manifest({ layers: 10, layerBytes: 1 * GB, embedBytes: 2 * GB, headBytes: 0, tiedEmbeddings: true }),
        nodes: [node('a', 8), node('b', 8)],
        requirement: requirement(),
      },
      expectStages: 2,
      check: (plan) => {
        const [first, last] = plan.stages;
        expect(first!.weightsBytes).toBe((first!.layerEnd - first!.layerStart) * GB + 2 * GB);
        expect(last!.weightsBytes).toBe((last!.layerEnd - last!.layerStart) * GB + 2 * GB);
      },
    },
  ];

  for (const testCase of cases) {
    it(testCase.name, () => {
      const plan = planPlacement(testCase.input);
      expectValid(plan, testCase.input.manifest.layers);
      if (testCase.expectNodes) expect(idsOf(plan)).toEqual(testCase.expectNodes);
      if (testCase.expectStages) expect(plan.stages).toHaveLength(testCase.expectStages);
      testCase.check?.(plan);
    });
  }
});

describe('planPlacement: infeasible requirements state the numbers', () => {
  const cases: { name: string; input: PlacementInput; message: RegExp[]; available: number }[] = [
    {
      name: '70B at 32K on a 24 GB and a 16 GB machine',
      input: {
        manifest: LLAMA_70B,
        nodes: [node('mbp', 24), node('mini', 16)],
        requirement: requirement({ contextTokens: 32768 }),
      },
      message: [/41\.5 GB weights \+ 10\.7 GB KV/, /the cluster has 40\.0 GB/, /mbp 24\.0 GB \(holds at most \d+ layers\)/, /mini 16\.0 GB/, /32768 tokens × 1 sequence with f16 KV/],
      available: 40 * GB,
    },
    {
      name: 'enough memory in all, but the KV of 16 sequences does not fit',
      input: {
        manifest: manifest({ layers: 8, layerBytes: 1 * GB }),
        nodes: [node('a', 20), node('b', 20)],
        requirement: requirement({ contextTokens: 131072, sequences: 16 }),
      },
      message: [/× 16 sequences/, /the cluster has 40\.0 GB/, /a 20\.0 GB \(holds at most 2 layers\)/],
      available: 40 * GB,
    },
    {
      name: 'in all the nodes have enough, but no contiguous split fits',
      input: {
        manifest: manifest({ layers: 2, layerBytes: 10 * GB, embedBytes: 0.1 * GB, headBytes: 0.1 * GB }),
        nodes: [node('a', 7), node('b', 7), node('c', 7)],
        requirement: requirement({ contextTokens: 16 }),
      },
      message: [/21\.0 GB in all, but no contiguous split fits/],
      available: 21 * GB,
    },
    {
      name: 'pinned to a node too small',
      input: {
        manifest: MODEL_31GB,
        nodes: [node('big', 48), node('small', 16)],
        requirement: requirement({ pinnedNodes: ['small'] as never }),
      },
      message: [/the pinned nodes have 16\.0 GB/],
      available: 16 * GB,
    },
  ];
  for (const testCase of cases) {
    it(testCase.name, () => {
      let error: unknown;
      try {
        planPlacement(testCase.input);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(InfeasibleError);
      const infeasible = error as InfeasibleError;
      expect(infeasible.code).toBe(ErrorCode.INFEASIBLE);
      for (const pattern of testCase.message) expect(infeasible.message).toMatch(pattern);
      expect(infeasible.details.availableBytes).toBe(testCase.available);
      expect(infeasible.details.nodes.length).toBeGreaterThan(0);
      for (const n of infeasible.details.nodes) expect(n.memoryBytes).toBeGreaterThan(0);
      expect(infeasible.toBody().details).toBe(infeasible.details);
    });
  }
});

describe('planPlacement: bad input is refused with every problem listed', () => {
  it('lists requirement, node and link problems together', () => {
    let error: unknown;
    try {
      planPlacement({
        manifest: MODEL_31GB,
        nodes: [node('a', 48), { id: 'a', memoryBytes: -1, computeBytesPerSec: null } as never],
        links: [{ from: 'a', to: 'b', rttMs: -2, bandwidthBytesPerSec: 0 } as never],
        requirement: { contextTokens: 0, sequences: 1.5, kvDType: 'f8', objective: 'fast', pinnedNodes: ['zz'] } as never,
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(PlacementInputError);
    const problems = (error as PlacementInputError).problems.join('\n');
    for (const pattern of [/contextTokens/, /sequences/, /kvDType/, /objective/, /duplicate node id/, /memoryBytes/, /rttMs/, /bandwidthBytesPerSec/, /pinned node "zz"/]) {
      expect(problems).toMatch(pattern);
    }
    expect((error as BatonError).code).toBe(ErrorCode.VALIDATION);
  });

  it('refuses a manifest whose layer list does not match its layer count', () => {
    const broken = { ...MODEL_31GB, layerBytes: [1, 2, 3] };
    expect(() => planPlacement({ manifest: broken, nodes: [node('a', 48)], requirement: requirement() })).toThrow(/layerBytes has 3 entries but layers is 30/);
  });
});

describe('exoPlacement: layers ∝ memory over all nodes', () => {
  it('splits 48 GB + 16 GB as 3:1 and, with KV counted, can fail where Baton fits', () => {
    const exo = exoPlacement({
      manifest: MODEL_45GB,
      nodes: [node('big', 48), node('small', 16)],
      requirement: requirement({ contextTokens: 32768 }),
    });
    expect(exo.stages.map((s) => s.layerEnd - s.layerStart)).toEqual([33, 11]);
    expect(exo.fits).toBe(true);
    const tight = exoPlacement({
      manifest: MODEL_45GB,
      nodes: [node('big', 48), node('small', 6)],
      requirement: requirement({ contextTokens: 32768 }),
    });
    expect(tight.fits).toBe(false);
    expect(tight.problems[0]).toMatch(/small needs 6\.\d+ GB .* has 6\.00 GB/);
    const plan = planPlacement({
      manifest: MODEL_45GB,
      nodes: [node('big', 48), node('small', 6)],
      requirement: requirement({ contextTokens: 32768 }),
    });
    expect(plan.stages).toHaveLength(2);
    expect(plan.alternatives.find((a) => a.description.startsWith("exo's rule"))?.reason).toMatch(/^does not fit: small needs/);
  });

  it('is slower than Baton when it gives layers to a slow node', () => {
    const input: PlacementInput = {
      manifest: MODEL_31GB,
      nodes: [node('fast', 48, 100), node('slow', 48, 10)],
      requirement: requirement(),
    };
    const exo = exoPlacement(input);
    const plan = planPlacement(input);
    expect(exo.stages).toHaveLength(2);
    expect(exo.predicted.msPerToken).toBeGreaterThan(3 * plan.predicted.msPerToken);
    const entry = plan.alternatives.find((a) => a.description.startsWith("exo's rule"));
    expect(entry?.reason).toMatch(/ms\/token vs/);
  });
});

describe('planPlacement beyond 8 nodes (heuristic)', () => {
  it('plans 12 nodes using the fastest that fit', () => {
    const nodes = Array.from({ length: 12 }, (_, i) => node(`n${i}`, 16, i === 7 ? 200 : 50));
    const plan = planPlacement({ manifest: MODEL_31GB, nodes, requirement: requirement() });
    expectValid(plan, 30);
    expect(idsOf(plan)).toContain('n7');
    expect(plan.assumptions.join(' ')).toMatch(/12 nodes: searched exactly over/);
  });

  it('uses more than 8 nodes when no 8 hold the model', () => {
    const nodes = Array.from({ length: 12 }, (_, i) => node(`n${i}`, 4));
    const plan = planPlacement({ manifest: MODEL_31GB, nodes, requirement: requirement() });
    expectValid(plan, 30);
    expect(plan.stages.length).toBeGreaterThan(8);
    expect(plan.assumptions.join(' ')).toMatch(/no 8 hold the model/);
  });
});

describe('a required stage count', () => {
  it('spreads the model over exactly that many nodes, or says which counts are possible', async () => {
    const { planPlacement: place } = await import('./plan-placement.js');
    const manifest = {
      name: 'm', arch: 'llama', fileType: 'Q8_0', layers: 6, embeddingLength: 256, feedForwardLength: 512, headCount: 8, headCountKv: 4, headDim: 32,
      contextLength: 2048, vocabSize: 1000, fileBytes: 7e6, layerBytes: Array(6).fill(1e6), embedBytes: 2.7e5, headBytes: 2.7e5, tiedEmbeddings: false,
      kvBytesPerToken: { f32: 6 * 2 * 128 * 4, f16: 6 * 2 * 128 * 2, q8_0: 6 * 2 * 136 }, activationBytesPerToken: 1024,
    };
    const nodes = ['a', 'b', 'c'].map((id) => ({ id: id as never, memoryBytes: 8e9, computeBytesPerSec: 10e9 }));
    const requirement = { contextTokens: 512, sequences: 1, kvDType: 'f16' as const, objective: 'latency' as const };
    expect(place({ manifest, nodes, requirement }).stages).toHaveLength(1);
    const three = place({ manifest, nodes, requirement: { ...requirement, stages: 3 } });
    expect(three.stages.map((s) => [s.layerStart, s.layerEnd])).toEqual([[0, 2], [2, 4], [4, 6]]);
    expect(() => place({ manifest, nodes, requirement: { ...requirement, stages: 4 } })).toThrow(/exactly 4 stages/);
  });
});
