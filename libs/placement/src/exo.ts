// exo's placement rule, for comparison: every node gets layers in proportion to its memory, in
// the order the nodes are listed, with no regard for compute, links or the KV cache. Evaluated
// with Baton's cost model so `baton plan --explain` can show what that rule would predict.
import { formatBytes } from '@baton/contracts';
import { evaluateLayout, type Evaluated, type Layout } from './layout.js';
import { prepare, type PlacementInput, type Prepared } from './input.js';

export interface ExoPlacement extends Omit<Evaluated, 'layout'> {
  /** Every node with its share; nodes whose share rounds to 0 layers are left out. */
  layout: Layout | undefined;
  /** One line per stage that does not fit its node (memory needed vs budget). */
  problems: string[];
}

/** Layer boundaries ∝ memory: stage i ends at round(layers × cumulative memory / total memory). */
export function exoLayout(prep: Prepared): Layout | undefined {
  const L = prep.cost.layers;
  const total = prep.nodes.reduce((sum, node) => sum + node.memoryBytes, 0);
  if (total <= 0) return undefined;
  const order: number[] = [];
  const bounds = [0];
  let cumulative = 0;
  prep.nodes.forEach((node, index) => {
    cumulative += node.memoryBytes;
    const end = index === prep.nodes.length - 1 ? L : Math.round((L * cumulative) / total);
    if (end > bounds[bounds.length - 1]!) {
      order.push(index);
      bounds.push(end);
    }
  });
  return { order, bounds };
}

export function evaluateExo(prep: Prepared): ExoPlacement {
  const layout = exoLayout(prep);
  if (!layout) {
    return {
      layout: undefined, stages: [], hops: [], fits: false,
      predicted: { msPerToken: Infinity, tokensPerSecond: 0, bottleneckMs: Infinity },
      problems: ['the nodes have no memory'],
    };
  }
  const evaluated = evaluateLayout(prep, layout);
  const problems = evaluated.stages
    .filter((s) => s.memoryBytes > s.memoryBudgetBytes)
    .map((s) => `${s.nodeId} needs ${formatBytes(s.memoryBytes)} (${formatBytes(s.weightsBytes)} weights + ${formatBytes(s.kvBytes)} KV + ${formatBytes(s.headroomBytes)} headroom for layers ${s.layerStart}-${s.layerEnd - 1}), has ${formatBytes(s.memoryBudgetBytes)}`);
  return { ...evaluated, problems };
}

/** What exo's rule (layers ∝ memory over all nodes) would do on this cluster, and whether it fits. */
export function exoPlacement(input: PlacementInput): ExoPlacement {
  return evaluateExo(prepare(input));
}
