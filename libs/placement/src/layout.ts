// A layout (ring order of nodes + layer boundaries) turned into stages, hops and a prediction,
// using only the formulas in costs.ts.
import type { PlanHop, PlanPrediction, PlanStage } from '@baton/contracts';
import { TOKEN_ID_BYTES, hopMs, hopTransferMs, predict, stageMemory, stageMs } from './costs.js';
import type { Prepared } from './input.js';

/** order[i] runs layers [bounds[i], bounds[i + 1]); indices are into Prepared.nodes. */
export interface Layout {
  order: number[];
  bounds: number[];
}

export interface Evaluated {
  layout: Layout;
  stages: PlanStage[];
  hops: PlanHop[];
  predicted: PlanPrediction;
  /** Every stage fits its node's memory budget. */
  fits: boolean;
}

export function evaluateLayout(prep: Prepared, layout: Layout): Evaluated {
  const { cost } = prep;
  const k = layout.order.length;
  const stages: PlanStage[] = layout.order.map((index, i) => {
    const node = prep.nodes[index]!;
    const start = layout.bounds[i]!;
    const end = layout.bounds[i + 1]!;
    const first = i === 0;
    const last = i === k - 1;
    const memory = stageMemory(cost, start, end, first, last);
    return {
      nodeId: node.id,
      layerStart: start,
      layerEnd: end,
      weightsBytes: memory.weightsBytes,
      kvBytes: memory.kvBytes,
      headroomBytes: memory.headroomBytes,
      memoryBytes: memory.totalBytes,
      memoryBudgetBytes: node.memoryBytes,
      computeBytesPerSec: node.computeBytesPerSec,
      computeMeasured: node.computeMeasured,
      predictedMs: stageMs(cost, start, end, last, node.computeBytesPerSec),
    };
  });
  const hops: PlanHop[] = [];
  const transfers: number[] = [];
  if (k > 1) {
    for (let i = 0; i < k; i++) {
      const from = layout.order[i]!;
      const to = layout.order[(i + 1) % k]!;
      const link = prep.link(from, to);
      const bytesPerToken = i === k - 1 ? TOKEN_ID_BYTES : cost.activationBytesPerToken;
      hops.push({
        from: prep.nodes[from]!.id,
        to: prep.nodes[to]!.id,
        bytesPerToken,
        rttMs: link.rttMs,
        bandwidthBytesPerSec: link.bandwidthBytesPerSec,
        measured: link.measured,
        predictedMs: hopMs(bytesPerToken, link.rttMs, link.bandwidthBytesPerSec),
      });
      transfers.push(hopTransferMs(bytesPerToken, link.bandwidthBytesPerSec));
    }
  }
  const predicted = predict(stages.map((s) => s.predictedMs), hops.map((h) => h.predictedMs), transfers, cost.sequences);
  return { layout, stages, hops, predicted, fits: stages.every((s) => s.memoryBytes <= s.memoryBudgetBytes) };
}
