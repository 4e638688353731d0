// planPlacement: the best layout for the objective, with its prediction, the alternatives it
// beat and why, and the defaults it assumed; or an InfeasibleError with the numbers.
//
// latency    — minimise one sequence's ms/token (Σ stage + Σ hop). Splitting never speeds up one
//              stream, so this picks the fewest, fastest nodes that fit, gives slow nodes fewer
//              layers and orders the ring for the cheapest links. Ties go to fewer nodes.
// throughput — maximise tokens/s with `sequences` in flight, min(sequences / ring, 1 / bottleneck):
//              exact (search.ts throughputSearch); stage times come out balanced. For the
//              alternatives, each node set keeps its best layout seen during that search.
//
// Up to 8 nodes the search is exact (search.ts). Beyond, it is a heuristic: exact search over a
// few pools of 8 (the fastest 8; the 8 with most memory; the fewest big-memory nodes that hold
// the model topped up with the fastest), because latency wants few fast nodes and throughput
// gains little past 8 stages on a ring whose hops add up; if no 8 nodes can hold the model, the
// fewest largest nodes that can, in a nearest-neighbour ring order, with the exact split for it.
import { formatBytes, type NodeId, type Placement, type PlanAlternative, type PlanRequirement } from '@baton/contracts';
import { DEFAULT_COMPUTE_BYTES_PER_SEC, DEFAULT_LINK_BANDWIDTH_BYTES_PER_SEC, DEFAULT_LINK_RTT_MS, hopMs, stageMemory } from './costs.js';
import { InfeasibleError, PlacementInputError, type InfeasibleNode } from './errors.js';
import { evaluateExo } from './exo.js';
import { prepare, type PlacementInput, type Prepared } from './input.js';
import { evaluateLayout, type Evaluated } from './layout.js';
import { EXACT_SEARCH_MAX_NODES, balancedWithinRing, exactSearch, fixedOrderSearch, throughputSearch, type Found } from './search.js';

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  return ms < 1 ? ms.toFixed(3) : ms < 10 ? ms.toFixed(2) : ms.toFixed(1);
}

export function formatRate(tokensPerSecond: number): string {
  return tokensPerSecond < 10 ? tokensPerSecond.toFixed(2) : tokensPerSecond.toFixed(1);
}

/** Negative when a is the better plan for the objective; ties go to fewer nodes. */
export function comparePlans(objective: PlanRequirement['objective'], a: Evaluated, b: Evaluated): number {
  const [pa, pb, sa, sb] = objective === 'latency'
    ? [a.predicted.msPerToken, b.predicted.msPerToken, -a.predicted.tokensPerSecond, -b.predicted.tokensPerSecond]
    : [-a.predicted.tokensPerSecond, -b.predicted.tokensPerSecond, a.predicted.msPerToken, b.predicted.msPerToken];
  const tolerance = 1e-9 * Math.max(1, Math.abs(pa), Math.abs(pb));
  if (pa < pb - tolerance) return -1;
  if (pa > pb + tolerance) return 1;
  if (a.stages.length !== b.stages.length) return a.stages.length - b.stages.length;
  const secondaryTolerance = 1e-9 * Math.max(1, Math.abs(sa), Math.abs(sb));
  if (sa < sb - secondaryTolerance) return -1;
  if (sa > sb + secondaryTolerance) return 1;
  return 0;
}

const setKey = (order: number[]) => [...order].sort((x, y) => x - y).join(',');

function nodeOrder(prep: Prepared, key: (i: number) => number[]): number[] {
  return prep.nodes.map((_, i) => i).sort((x, y) => {
    const kx = key(x);
    const ky = key(y);
    for (let j = 0; j < kx.length; j++) if (kx[j] !== ky[j]) return ky[j]! - kx[j]!;
    return x - y;
  });
}

/** Pools of at most EXACT_SEARCH_MAX_NODES nodes to search exactly when the cluster is larger. */
function candidatePools(prep: Prepared): number[][] {
  const byRate = nodeOrder(prep, (i) => [prep.nodes[i]!.computeBytesPerSec, prep.nodes[i]!.memoryBytes]);
  const byMemory = nodeOrder(prep, (i) => [prep.nodes[i]!.memoryBytes, prep.nodes[i]!.computeBytesPerSec]);
  const need = stageMemory(prep.cost, 0, prep.cost.layers, true, true).totalBytes;
  const mixed: number[] = [];
  let held = 0;
  for (const i of byMemory) {
    if (held >= need || mixed.length === EXACT_SEARCH_MAX_NODES) break;
    mixed.push(i);
    held += prep.nodes[i]!.memoryBytes;
  }
  for (const i of byRate) if (mixed.length < EXACT_SEARCH_MAX_NODES && !mixed.includes(i)) mixed.push(i);
  const pools = [byRate.slice(0, EXACT_SEARCH_MAX_NODES), byMemory.slice(0, EXACT_SEARCH_MAX_NODES), mixed];
  const seen = new Set<string>();
  return pools.filter((pool) => {
    const key = setKey(pool);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** A ring through the given nodes, each step to the nearest unvisited node by hop time. */
function nearestNeighbourRing(prep: Prepared, nodes: number[]): number[] {
  const ring = [nodes[0]!];
  const left = new Set(nodes.slice(1));
  while (left.size > 0) {
    const at = ring[ring.length - 1]!;
    let next = -1;
    let nextMs = Infinity;
    for (const candidate of left) {
      const link = prep.link(at, candidate);
      const ms = hopMs(prep.cost.activationBytesPerToken, link.rttMs, link.bandwidthBytesPerSec);
      if (ms < nextMs) { next = candidate; nextMs = ms; }
    }
    ring.push(next);
    left.delete(next);
  }
  return ring;
}

/** The best plan found for every node set considered, keyed by the sorted node indices. */
function searchCandidates(prep: Prepared): { bySet: Map<string, Evaluated>; heuristic: string | undefined } {
  const objective = prep.requirement.objective;
  const bySet = new Map<string, Evaluated>();
  const consider = (found: Found) => {
    const evaluated = evaluateLayout(prep, found.layout);
    const key = setKey(found.layout.order);
    const current = bySet.get(key);
    if (!current || comparePlans(objective, evaluated, current) < 0) bySet.set(key, evaluated);
  };
  const n = prep.nodes.length;
  const pools = n <= EXACT_SEARCH_MAX_NODES ? [prep.nodes.map((_, i) => i)] : candidatePools(prep);
  for (const pool of pools) {
    for (const found of exactSearch(prep, pool).values()) consider(found);
    if (objective === 'throughput') {
      for (const found of throughputSearch(prep, pool, consider)) consider(found);
    }
  }
  let heuristic: string | undefined;
  if (n > EXACT_SEARCH_MAX_NODES) {
    heuristic = `${n} nodes: searched exactly over ${pools.length} pools of ${EXACT_SEARCH_MAX_NODES} (fastest, most memory, fewest that hold the model + fastest), not every subset`;
    if (bySet.size === 0) {
      const byMemory = nodeOrder(prep, (i) => [prep.nodes[i]!.memoryBytes, prep.nodes[i]!.computeBytesPerSec]);
      for (let k = EXACT_SEARCH_MAX_NODES + 1; k <= n && bySet.size === 0; k++) {
        const ring = nearestNeighbourRing(prep, byMemory.slice(0, k));
        const found = fixedOrderSearch(prep, ring, objective === 'latency' ? 'sum' : 'max');
        if (found) {
          consider(found);
          heuristic = `${n} nodes and no 8 hold the model: used the ${k} with most memory in a nearest-neighbour ring order (exact layer split for that order)`;
        }
      }
    }
  }
  return { bySet, heuristic };
}

function maxLayersAsMiddle(prep: Prepared, node: number): number {
  const L = prep.cost.layers;
  let most = 0;
  let e = 0;
  for (let b = 0; b < L; b++) {
    if (e < b) e = b;
    while (e < L && stageMemory(prep.cost, b, e + 1, false, false).totalBytes <= prep.nodes[node]!.memoryBytes) e++;
    most = Math.max(most, e - b);
  }
  return most;
}

function infeasibleError(prep: Prepared): InfeasibleError {
  const { cost, requirement, manifest } = prep;
  const whole = stageMemory(cost, 0, cost.layers, true, true);
  const availableBytes = prep.nodes.reduce((sum, node) => sum + node.memoryBytes, 0);
  const nodes: InfeasibleNode[] = prep.nodes.map((node, i) => ({
    nodeId: node.id,
    memoryBytes: node.memoryBytes,
    wholeModelBytes: whole.totalBytes,
    maxLayers: maxLayersAsMiddle(prep, i),
  }));
  const what = `${manifest.name} (${cost.layers} layers) at ${requirement.contextTokens} tokens × ${requirement.sequences} sequence${requirement.sequences === 1 ? '' : 's'} with ${requirement.kvDType} KV`;
  const need = `needs ${formatBytes(whole.weightsBytes)} weights + ${formatBytes(whole.kvBytes)} KV + ${formatBytes(whole.headroomBytes)} headroom = ${formatBytes(whole.totalBytes)}`;
  const which = requirement.pinnedNodes?.length ? 'the pinned nodes have' : 'the cluster has';
  const have = availableBytes < whole.totalBytes
    ? `${which} ${formatBytes(availableBytes)}`
    : `${which} ${formatBytes(availableBytes)} in all, but no contiguous split fits (each stage adds ${formatBytes(cost.headroomBytes)} headroom and layers do not divide)`;
  const perNode = nodes.map((n) => `${n.nodeId} ${formatBytes(n.memoryBytes)} (holds at most ${n.maxLayers} layer${n.maxLayers === 1 ? '' : 's'})`).join(', ');
  const message = `${what} does not fit: it ${need}; ${have}: ${perNode}. Try a smaller context, fewer sequences, q8_0 KV, or more nodes.`;
  return new InfeasibleError(message, {
    layers: cost.layers,
    contextTokens: requirement.contextTokens,
    sequences: requirement.sequences,
    kvDType: requirement.kvDType,
    needed: { weightsBytes: whole.weightsBytes, kvBytes: whole.kvBytes, headroomBytes: whole.headroomBytes, totalBytes: whole.totalBytes },
    headroomPerExtraStageBytes: cost.headroomBytes,
    availableBytes,
    nodes,
  });
}

function describe(plan: Evaluated): string {
  const ids = plan.stages.map((s) => s.nodeId);
  if (ids.length === 1) return `one node (${ids[0]})`;
  return `${ids.length} nodes ${ids.join('→')} (${plan.stages.map((s) => s.layerEnd - s.layerStart).join('+')} layers)`;
}

function why(objective: PlanRequirement['objective'], sequences: number, alternative: Evaluated, chosen: Evaluated): string {
  const a = alternative.predicted;
  const c = chosen.predicted;
  if (objective === 'latency') {
    if (comparePlans(objective, alternative, chosen) >= 0 && Math.abs(a.msPerToken - c.msPerToken) <= 1e-9 * Math.max(1, c.msPerToken)) {
      return `ties at ${formatMs(c.msPerToken)} ms/token; the chosen plan ${alternative.stages.length > chosen.stages.length ? 'uses fewer nodes' : a.bottleneckMs > c.bottleneckMs * (1 + 1e-9) ? `has the smaller bottleneck (${formatMs(c.bottleneckMs)} vs ${formatMs(a.bottleneckMs)} ms)` : 'was found first'}`;
    }
    return `${formatMs(a.msPerToken)} ms/token vs ${formatMs(c.msPerToken)} ms/token`;
  }
  if (Math.abs(a.tokensPerSecond - c.tokensPerSecond) <= 1e-9 * Math.max(1, c.tokensPerSecond)) {
    return `ties at ${formatRate(c.tokensPerSecond)} tokens/s; the chosen plan ${alternative.stages.length > chosen.stages.length ? 'uses fewer nodes' : a.msPerToken > c.msPerToken * (1 + 1e-9) ? `is faster for one sequence (${formatMs(c.msPerToken)} vs ${formatMs(a.msPerToken)} ms/token)` : 'was found first'}`;
  }
  return `${formatRate(a.tokensPerSecond)} tokens/s vs ${formatRate(c.tokensPerSecond)} tokens/s with ${sequences} sequence${sequences === 1 ? '' : 's'} in flight`;
}

function alternativesFor(prep: Prepared, bySet: Map<string, Evaluated>, chosen: Evaluated): PlanAlternative[] {
  const { objective, sequences } = prep.requirement;
  const out: PlanAlternative[] = [];
  const chosenKey = setKey(chosen.layout.order);
  const whole = stageMemory(prep.cost, 0, prep.cost.layers, true, true);
  const entry = (plan: Evaluated): PlanAlternative => ({
    description: describe(plan),
    nodes: plan.stages.map((s) => s.nodeId),
    predicted: plan.predicted,
    reason: why(objective, sequences, plan, chosen),
  });
  // Each node alone.
  prep.nodes.forEach((node, i) => {
    const key = String(i);
    if (key === chosenKey) return;
    const alone = bySet.get(key);
    if (alone) out.push(entry(alone));
    else {
      out.push({
        description: `one node (${node.id})`,
        nodes: [node.id],
        predicted: null,
        reason: `does not fit: needs ${formatBytes(whole.totalBytes)} (${formatBytes(whole.weightsBytes)} weights + ${formatBytes(whole.kvBytes)} KV + ${formatBytes(whole.headroomBytes)} headroom), has ${formatBytes(node.memoryBytes)}`,
      });
    }
  });
  // The best plan of every other size, and the runner-up of the chosen size.
  const bySize = new Map<number, Evaluated[]>();
  for (const [key, plan] of bySet) {
    if (key === chosenKey || plan.stages.length === 1) continue;
    const list = bySize.get(plan.stages.length) ?? [];
    list.push(plan);
    bySize.set(plan.stages.length, list);
  }
  const sizes = [...bySize.keys()].sort((a, b) => a - b);
  const smallest = sizes[0] ?? Infinity;
  for (let size = 2; size < Math.min(smallest, chosen.stages.length, prep.nodes.length + 1); size++) {
    const budgets = prep.nodes.map((n) => n.memoryBytes).sort((a, b) => b - a).slice(0, size);
    const total = budgets.reduce((a, b) => a + b, 0);
    out.push({
      description: `any ${size} nodes`,
      nodes: [],
      predicted: null,
      reason: `no set of ${size} nodes fits: the ${size} largest budgets total ${formatBytes(total)}; the model needs ${formatBytes(whole.totalBytes)} + ${formatBytes(prep.cost.headroomBytes)} headroom per extra stage, in whole layers`,
    });
  }
  for (const size of sizes) {
    const best = bySize.get(size)!.sort((a, b) => comparePlans(objective, a, b))[0]!;
    out.push(entry(best));
  }
  // exo's rule on the same nodes.
  const exo = evaluateExo(prep);
  if (exo.layout) {
    const ids = exo.stages.map((s) => s.nodeId);
    out.push({
      description: `exo's rule (layers ∝ memory over all nodes): ${ids.join('→')} (${exo.stages.map((s) => s.layerEnd - s.layerStart).join('+')} layers)`,
      nodes: ids,
      predicted: exo.fits ? exo.predicted : null,
      reason: exo.fits ? why(objective, sequences, { ...exo, layout: exo.layout }, chosen) : `does not fit: ${exo.problems.join('; ')}`,
    });
  }
  return out;
}

function assumptionsFor(prep: Prepared, chosen: Evaluated, heuristic: string | undefined): string[] {
  const notes: string[] = [];
  const unmeasured = chosen.stages.filter((s) => !s.computeMeasured).map((s) => s.nodeId);
  if (unmeasured.length > 0) {
    notes.push(`compute rate not measured for ${unmeasured.join(', ')}: assumed ${formatBytes(DEFAULT_COMPUTE_BYTES_PER_SEC)}/s of weights`);
  }
  const links = chosen.hops.filter((h) => !h.measured).map((h) => `${h.from}→${h.to}`);
  if (links.length > 0) {
    notes.push(`link${links.length === 1 ? '' : 's'} ${links.join(', ')} not measured: assumed ${DEFAULT_LINK_RTT_MS} ms RTT and ${formatBytes(DEFAULT_LINK_BANDWIDTH_BYTES_PER_SEC)}/s`);
  }
  const { contextTokens } = prep.requirement;
  if (prep.manifest.contextLength > 0 && contextTokens > prep.manifest.contextLength) {
    notes.push(`context ${contextTokens} is beyond the model's trained context of ${prep.manifest.contextLength} tokens: output quality past it is not guaranteed`);
  }
  if (heuristic) notes.push(heuristic);
  return notes;
}

/**
 * Places the model's layers on the nodes for the requirement's objective. Throws
 * PlacementInputError (VALIDATION) for bad input and InfeasibleError (INFEASIBLE, with
 * per-node numbers) when no placement fits.
 */
export function planPlacement(input: PlacementInput): Placement {
  const prep = prepare(input);
  const { bySet, heuristic } = searchCandidates(prep);
  if (bySet.size === 0) throw infeasibleError(prep);
  const wanted = prep.requirement.stages;
  const candidates = [...bySet.values()].filter((e) => wanted === undefined || e.stages.length === wanted);
  if (candidates.length === 0) {
    const sizes = [...new Set([...bySet.values()].map((e) => e.stages.length))].sort((a, b) => a - b);
    throw new PlacementInputError([`no placement uses exactly ${wanted} stages (${prep.nodes.length} usable nodes; feasible stage counts: ${sizes.join(', ')})`]);
  }
  let chosen = candidates.sort((a, b) => comparePlans(prep.requirement.objective, a, b))[0]!;
  if (prep.requirement.objective === 'latency' && chosen.stages.length > 1 && chosen.stages.length <= EXACT_SEARCH_MAX_NODES) {
    // Equal ring times can hide very unequal splits (two identical nodes: 8+72 layers is as fast
    // as 40+40 for one sequence); prefer the one with the smallest bottleneck.
    const balanced = balancedWithinRing(prep, chosen.layout.order, chosen.predicted.msPerToken);
    if (balanced) {
      const evaluated = evaluateLayout(prep, balanced.layout);
      if (comparePlans('latency', evaluated, chosen) <= 0) chosen = evaluated;
    }
  }
  return {
    requirement: { ...prep.requirement, ...(prep.requirement.pinnedNodes ? { pinnedNodes: [...prep.requirement.pinnedNodes] as NodeId[] } : {}) },
    stages: chosen.stages,
    hops: chosen.hops,
    predicted: chosen.predicted,
    alternatives: alternativesFor(prep, bySet, chosen),
    assumptions: assumptionsFor(prep, chosen, heuristic),
  };
}
