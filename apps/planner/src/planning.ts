// The planner's decisions as pure functions: which registry facts feed placement, when a
// topology event calls for a replan, and when a new placement is a new plan version.
import { randomUUID } from 'node:crypto';
import type { ClusterEvent, Placement, Plan, PlanId } from '@baton/contracts';
import { evaluateLayout, type Prepared } from '@baton/placement';

/** A new layout must beat the current one by this much to be published (measurement noise in compute rates and links must not reshuffle layers). */
export const REPLAN_MIN_GAIN = 0.1;

/**
 * Whether the current plan should stay: all its nodes are still usable, it still fits, and the
 * candidate is not better by REPLAN_MIN_GAIN on the objective (both judged on today's inputs).
 */
export function keepCurrent(prep: Prepared, current: Plan, candidate: Placement): boolean {
  const order = current.stages.map((s) => prep.nodes.findIndex((n) => n.id === s.nodeId));
  if (order.some((i) => i < 0)) return false;
  if (current.stages.at(-1)!.layerEnd !== prep.cost.layers) return false;
  const bounds = [...current.stages.map((s) => s.layerStart), current.stages.at(-1)!.layerEnd];
  const now = evaluateLayout(prep, { order, bounds });
  if (!now.fits) return false;
  return prep.requirement.objective === 'latency'
    ? candidate.predicted.msPerToken > now.predicted.msPerToken * (1 - REPLAN_MIN_GAIN)
    : candidate.predicted.tokensPerSecond < now.predicted.tokensPerSecond * (1 + REPLAN_MIN_GAIN);
}

/** Node fields whose change can change a placement (a status line or a pid cannot). */
const PLACEMENT_FIELDS = new Set(['memory', 'computeBytesPerSec', 'version', 'protocolVersion', 'endpoints']);

export function needsReplan(event: ClusterEvent): boolean {
  switch (event.type) {
    case 'node.joined':
    case 'node.left':
    case 'link.measured':
      return true;
    case 'node.updated':
      return (event.data as { changed: string[] }).changed.some((field) => PLACEMENT_FIELDS.has(field));
    default:
      return false;
  }
}

/** Same stages (nodes, order and layer ranges): the shards have nothing to change. */
export function sameLayout(a: Pick<Placement, 'stages'>, b: Pick<Placement, 'stages'>): boolean {
  return a.stages.length === b.stages.length && a.stages.every((s, i) => s.nodeId === b.stages[i]!.nodeId && s.layerStart === b.stages[i]!.layerStart && s.layerEnd === b.stages[i]!.layerEnd);
}

/** Names and versions a placement: version = previous + 1 for the same model. */
export function versionPlan(placement: Placement, modelId: string, modelPath: string, previous: Plan | undefined, nowMs: number): Plan {
  return {
    ...placement,
    planId: randomUUID() as PlanId,
    version: (previous?.version ?? 0) + 1,
    modelId,
    modelPath,
    createdAtMs: nowMs,
  };
}
