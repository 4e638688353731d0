// nodes.json → PlacementCluster: the DTO check (every problem listed), human sizes turned into
// bytes, then the checks a DTO cannot express (duplicate ids, links to unknown nodes).
import {
  ClusterFileDto, ValidationFailed, parseByteSizeField, validateDto,
  type NodeId, type PlacementCluster,
} from '@baton/contracts';

/** Parses a nodes.json value; throws ValidationFailed naming every problem. */
export function readClusterFile(plain: unknown, what = 'nodes file'): PlacementCluster {
  const result = validateDto(ClusterFileDto, plain);
  if (!result.ok) throw new ValidationFailed(what, result.problems);
  const file = result.value;
  const problems: string[] = [];
  const ids = new Set<string>();
  for (const [i, node] of file.nodes.entries()) {
    if (ids.has(node.id)) problems.push(`nodes.${i}.id: duplicate node id ${JSON.stringify(node.id)}`);
    ids.add(node.id);
  }
  const pairs = new Set<string>();
  for (const [i, link] of (file.links ?? []).entries()) {
    for (const end of ['from', 'to'] as const) {
      if (!ids.has(link[end])) problems.push(`links.${i}.${end}: ${JSON.stringify(link[end])} is not one of the nodes (${[...ids].join(', ')})`);
    }
    if (link.from === link.to) problems.push(`links.${i}: a link from ${link.from} to itself`);
    const pair = `${link.from}\u0000${link.to}`;
    if (pairs.has(pair)) problems.push(`links.${i}: a second link ${link.from}→${link.to}`);
    pairs.add(pair);
  }
  if (problems.length > 0) throw new ValidationFailed(what, problems);
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
