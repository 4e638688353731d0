// nodes.json (or the live registry) → PlacementCluster. nodes.json: the DTO check (every problem listed), human sizes turned into
// bytes, then the checks a DTO cannot express (duplicate ids, links to unknown nodes).
import {
  ClusterFileDto, ValidationFailed, parseByteSizeField, validateDto,
  type LinkMeasurement, type NodeId, type NodeRecord, type PlacementCluster,
} from '@baton/contracts';

/** Parses a nodes.json value; throws ValidationFailed naming every problem. */
export function readClusterFile(plain: unknown, what = 'nodes file'): PlacementCluster {
  const result = validateDto(ClusterFileDto, plain);
  const problems = result.ok ? [] : [...result.problems];
  // Cross-checks run on the raw value too, so one pass lists every problem.
  const raw = (plain ?? {}) as { nodes?: unknown; links?: unknown };
  const rawNodes = Array.isArray(raw.nodes) ? (raw.nodes as { id?: unknown }[]) : [];
  const rawLinks = Array.isArray(raw.links) ? (raw.links as { from?: unknown; to?: unknown }[]) : [];
  const ids = new Set<string>();
  for (const [i, node] of rawNodes.entries()) {
    if (typeof node?.id !== 'string') continue;
    if (ids.has(node.id)) problems.push(`nodes.${i}.id: duplicate node id ${JSON.stringify(node.id)}`);
    ids.add(node.id);
  }
  const pairs = new Set<string>();
  for (const [i, link] of rawLinks.entries()) {
    if (typeof link?.from !== 'string' || typeof link?.to !== 'string') continue;
    for (const end of ['from', 'to'] as const) {
      if (!ids.has(link[end] as string)) problems.push(`links.${i}.${end}: ${JSON.stringify(link[end])} is not one of the nodes (${[...ids].join(', ')})`);
    }
    if (link.from === link.to) problems.push(`links.${i}: a link from ${link.from} to itself`);
    const pair = `${link.from}\u0000${link.to}`;
    if (pairs.has(pair)) problems.push(`links.${i}: a second link ${link.from}→${link.to}`);
    pairs.add(pair);
  }
  if (!result.ok || problems.length > 0) throw new ValidationFailed(what, problems);
  const file = result.value;
  return {
    nodes: file.nodes.map((node) => ({
      id: node.id as NodeId,
      memoryBytes: parseByteSizeField(node.memoryBytes),
      computeBytesPerSec: node.computeBytesPerSec === undefined || node.computeBytesPerSec === null ? null : parseByteSizeField(node.computeBytesPerSec),
    })),
    links: (file.links ?? []).map((link) => ({
      from: link.from as NodeId,
      to: link.to as NodeId,
      rttMs: link.rttMs,
      bandwidthBytesPerSec: parseByteSizeField(link.bandwidthBytesPerSec),
    })),
  };
}

/**
 * The live registry as the planner sees it: each node's memory budget and measured compute rate
 * (null = unmeasured), links by their median RTT. Nodes on another Baton version and draining
 * nodes are left out (they cannot take part in a new plan); `left` says which and why.
 */
export function clusterFromRecords(nodes: NodeRecord[], links: LinkMeasurement[]): PlacementCluster & { left: { id: NodeId; reason: string }[] } {
  const usable = nodes.filter((n) => !n.versionMismatch && !n.draining);
  const ids = new Set<string>(usable.map((n) => n.id));
  return {
    nodes: usable.map((n) => ({ id: n.id, memoryBytes: n.memory.budgetBytes, computeBytesPerSec: n.computeBytesPerSec ?? null })),
    links: links
      .filter((l) => ids.has(l.from) && ids.has(l.to))
      .map((l) => ({ from: l.from, to: l.to, rttMs: l.rttP50Ms, bandwidthBytesPerSec: l.bandwidthBytesPerSec })),
    left: nodes
      .filter((n) => n.versionMismatch || n.draining)
      .map((n) => ({ id: n.id, reason: n.versionMismatch ? `runs Baton ${n.version}, protocol ${n.protocolVersion}` : 'draining' })),
  };
}
