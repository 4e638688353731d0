// The planner's decisions as pure functions: which registry facts feed placement, when a
// topology event calls for a replan, and when a new placement is a new plan version.
import { randomUUID } from 'node:crypto';
import type { ClusterEvent, LinkMeasurement, NodeRecord, Placement, PlacementLink, PlacementNode, Plan, PlanId } from '@baton/contracts';

/** Nodes that can take part: same Baton version and protocol. */
export function placementNodes(nodes: readonly NodeRecord[]): PlacementNode[] {
  return nodes.filter((n) => !n.versionMismatch).map((n) => ({ id: n.id, memoryBytes: n.memory.budgetBytes, computeBytesPerSec: n.computeBytesPerSec }));
}

export function placementLinks(links: readonly LinkMeasurement[]): PlacementLink[] {
  return links.map((l) => ({ from: l.from, to: l.to, rttMs: l.rttP50Ms, bandwidthBytesPerSec: l.bandwidthBytesPerSec }));
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
