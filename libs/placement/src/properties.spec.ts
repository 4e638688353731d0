// Property tests over random clusters (seeded, so every run sees the same ones): every plan fits,
// covers each layer once, contiguously, ≥ 1 layer per used node; its predictions equal the
// formula recomputed here independently; and on small clusters it is as good as a brute-force
// search over every order and every split.
import { describe, expect, it } from 'vitest';
import type { ModelManifest, NodeId, Placement, PlacementLink, PlacementNode, PlanRequirement } from '@baton/contracts';
import { GB, manifest, prng } from '../test/fixtures.js';
import { InfeasibleError } from './errors.js';
import type { PlacementInput } from './input.js';
import { planPlacement } from './plan-placement.js';

// ---- the documented formula, written out again (not imported from costs.ts) ----
const DEFAULT_RATE = 20e9;
const DEFAULT_RTT = 0.5;
const DEFAULT_BW = 1e9;
const OVERHEAD = 256 * 1024 * 1024;
const CHUNK = 512;

interface Reference {
  memory(start: number, end: number, first: boolean, last: boolean): { weights: number; kv: number; headroom: number; total: number };
  stageMs(start: number, end: number, last: boolean, node: PlacementNode): number;
  link(from: string, to: string): { rtt: number; bw: number };
}

function reference(m: ModelManifest, req: PlanRequirement, links: PlacementLink[]): Reference {
  const kvPerLayerToken = m.kvBytesPerToken[req.kvDType] / m.layers;
  const layerSum = (start: number, end: number) => m.layerBytes.slice(start, end).reduce((a, b) => a + b, 0);
  return {
    memory(start, end, first, last) {
      let weights = layerSum(start, end);
      if (first) weights += m.embedBytes;
      if (last) weights += m.headBytes + (m.tiedEmbeddings && !first ? m.embedBytes : 0);
      const kv = (end - start) * kvPerLayerToken * req.contextTokens * req.sequences;
      let headroom = OVERHEAD + CHUNK * (6 * m.activationBytesPerToken + 12 * m.feedForwardLength);
      if (last) headroom += req.sequences * m.vocabSize * 4;
      return { weights, kv, headroom, total: weights + kv + headroom };
    },
    stageMs(start, end, last, node) {
      const rate = node.computeBytesPerSec && node.computeBytesPerSec > 0 ? node.computeBytesPerSec : DEFAULT_RATE;
      let bytes = layerSum(start, end) + (end - start) * kvPerLayerToken * (req.contextTokens / 2);
      if (last) bytes += m.headBytes + (m.tiedEmbeddings ? m.embedBytes : 0);
      return (bytes / rate) * 1000;
    },
    link(from, to) {
      const found = links.find((l) => l.from === from && l.to === to) ?? links.find((l) => l.from === to && l.to === from);
      return found ? { rtt: found.rttMs, bw: found.bandwidthBytesPerSec } : { rtt: DEFAULT_RTT, bw: DEFAULT_BW };
    },
  };
}

interface Scored { fits: boolean; ms: number; tps: number }

function score(input: PlacementInput, order: PlacementNode[], bounds: number[]): Scored {
  const ref = reference(input.manifest, input.requirement, input.links ?? []);
  const k = order.length;
  let fits = true;
  const stages: number[] = [];
  order.forEach((n, i) => {
    const memory = ref.memory(bounds[i]!, bounds[i + 1]!, i === 0, i === k - 1);
    if (memory.total > n.memoryBytes) fits = false;
    stages.push(ref.stageMs(bounds[i]!, bounds[i + 1]!, i === k - 1, n));
  });
  const hops: number[] = [];
  const transfers: number[] = [];
  if (k > 1) {
    order.forEach((n, i) => {
      const to = order[(i + 1) % k]!;
      const bytes = i === k - 1 ? 4 : input.manifest.activationBytesPerToken;
      const { rtt, bw } = ref.link(n.id, to.id);
      hops.push(rtt / 2 + (bytes / bw) * 1000);
      transfers.push((bytes / bw) * 1000);
    });
  }
  const ms = [...stages, ...hops].reduce((a, b) => a + b, 0);
  const bottleneck = Math.max(...stages, ...transfers);
  return { fits, ms, tps: Math.min(input.requirement.sequences / ms, 1 / bottleneck) * 1000 };
}

function randomInput(random: () => number, maxNodes: number, maxLayers: number): PlacementInput {
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
  const layers = 2 + Math.floor(random() * (maxLayers - 1));
  const m = manifest({
    layers,
    layerBytes: Array.from({ length: layers }, () => Math.round((0.3 + random()) * GB)),
    embedBytes: Math.round(random() * GB),
    headBytes: Math.round(random() * GB),
    tiedEmbeddings: random() < 0.3,
    kvF16PerTokenPerLayer: pick([1024, 2048, 4096, 8192]),
    embeddingLength: pick([1024, 2048, 4096, 8192]),
    vocabSize: pick([32000, 128256, 151936]),
  });
  const count = 1 + Math.floor(random() * maxNodes);
  const nodes: PlacementNode[] = Array.from({ length: count }, (_, i) => ({
    id: `n${i}` as NodeId,
    memoryBytes: Math.round((2 + random() * 40) * GB),
    computeBytesPerSec: random() < 0.2 ? null : Math.round((10 + random() * 300) * GB),
  }));
  const links: PlacementLink[] = [];
  for (const a of nodes) {
    for (const b of nodes) {
      if (a !== b && random() < 0.6) {
        links.push({ from: a.id, to: b.id, rttMs: 0.05 + random() * 30, bandwidthBytesPerSec: (0.1 + random() * 10) * GB });
      }
    }
  }
  const requirement: PlanRequirement = {
    contextTokens: pick([512, 2048, 8192, 32768, 65536]),
    sequences: 1 + Math.floor(random() * 4),
    kvDType: pick(['f16', 'q8_0'] as const),
    objective: pick(['latency', 'throughput'] as const),
  };
  return { manifest: m, nodes, links, requirement };
}

function checkPlan(input: PlacementInput, plan: Placement): void {
  const L = input.manifest.layers;
  const ref = reference(input.manifest, input.requirement, input.links ?? []);
  const byId = new Map(input.nodes.map((n) => [n.id as string, n]));
  let next = 0;
  const k = plan.stages.length;
  expect(new Set(plan.stages.map((s) => s.nodeId)).size).toBe(k);
  plan.stages.forEach((stage, i) => {
    const n = byId.get(stage.nodeId)!;
    expect(n).toBeDefined();
    expect(stage.layerStart).toBe(next);
    expect(stage.layerEnd).toBeGreaterThan(stage.layerStart);
    next = stage.layerEnd;
    const memory = ref.memory(stage.layerStart, stage.layerEnd, i === 0, i === k - 1);
    expect(stage.weightsBytes).toBeCloseTo(memory.weights, 0);
    expect(stage.kvBytes).toBeCloseTo(memory.kv, 0);
    expect(stage.headroomBytes).toBeCloseTo(memory.headroom, 0);
    expect(stage.memoryBytes).toBeLessThanOrEqual(n.memoryBytes);
    expect(memory.total).toBeLessThanOrEqual(n.memoryBytes);
    expect(stage.predictedMs).toBeCloseTo(ref.stageMs(stage.layerStart, stage.layerEnd, i === k - 1, n), 9);
  });
  expect(next).toBe(L);
  expect(plan.hops).toHaveLength(k > 1 ? k : 0);
  const scored = score(input, plan.stages.map((s) => byId.get(s.nodeId)!), [...plan.stages.map((s) => s.layerStart), L]);
  expect(plan.predicted.msPerToken).toBeCloseTo(scored.ms, 9);
  expect(plan.predicted.tokensPerSecond).toBeCloseTo(scored.tps, 6);
}

function* permutationsOfSubsets<T>(items: T[]): Generator<T[]> {
  const used = new Array(items.length).fill(false);
  const current: T[] = [];
  function* go(): Generator<T[]> {
    if (current.length > 0) yield [...current];
    for (let i = 0; i < items.length; i++) {
      if (used[i]) continue;
      used[i] = true;
      current.push(items[i]!);
      yield* go();
      current.pop();
      used[i] = false;
    }
  }
  yield* go();
}

function* splits(layers: number, parts: number): Generator<number[]> {
  if (parts === 1) { yield [0, layers]; return; }
  for (let first = 1; first <= layers - parts + 1; first++) {
    for (const rest of splits(layers - first, parts - 1)) yield [0, ...rest.map((b) => b + first)];
  }
}

function bruteForce(input: PlacementInput): Scored | undefined {
  let best: Scored | undefined;
  const better = (a: Scored, b: Scored) => (input.requirement.objective === 'latency' ? a.ms < b.ms : a.tps > b.tps);
  for (const order of permutationsOfSubsets(input.nodes)) {
    if (order.length > input.manifest.layers) continue;
    for (const bounds of splits(input.manifest.layers, order.length)) {
      const s = score(input, order, bounds);
      if (s.fits && (!best || better(s, best))) best = s;
    }
  }
  return best;
}

describe('placement properties over random clusters', () => {
  it('every plan fits, covers each layer once, and predicts what the formula says (400 clusters)', () => {
    const random = prng(20251125);
    let planned = 0;
    let infeasible = 0;
    for (let i = 0; i < 400; i++) {
      const input = randomInput(random, 6, 48);
      try {
        const plan = planPlacement(input);
        checkPlan(input, plan);
        planned++;
      } catch (error) {
        if (!(error instanceof InfeasibleError)) throw error;
        // Refused only when even all the memory together is short, or no split of whole layers fits.
        expect(error.details.nodes.map((n) => n.memoryBytes)).toEqual(input.nodes.map((n) => n.memoryBytes));
        infeasible++;
      }
    }
    // The generator must exercise both outcomes.
    expect(planned).toBeGreaterThan(100);
    expect(infeasible).toBeGreaterThan(10);
  });

  it('matches a brute-force search over every order and split on small clusters (250 clusters)', () => {
    const random = prng(7);
    let compared = 0;
    for (let i = 0; i < 250; i++) {
      const input = randomInput(random, 4, 9);
      const best = bruteForce(input);
      let plan: Placement | undefined;
      try {
        plan = planPlacement(input);
      } catch (error) {
        if (!(error instanceof InfeasibleError)) throw error;
      }
      expect(plan === undefined, `case ${i}: brute force ${best ? 'found' : 'found no'} plan`).toBe(best === undefined);
      if (!plan || !best) continue;
      checkPlan(input, plan);
      compared++;
      if (input.requirement.objective === 'latency') {
        expect(plan.predicted.msPerToken, `case ${i}`).toBeCloseTo(best.ms, 9);
      } else {
        expect(plan.predicted.tokensPerSecond / best.tps, `case ${i}`).toBeCloseTo(1, 9);
      }
    }
    expect(compared).toBeGreaterThan(100);
  });
});
