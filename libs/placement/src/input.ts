// The planner's input, checked and resolved: defaults filled in for unmeasured compute and
// links, every problem with the input listed at once.
import {
  KV_DTYPES, OBJECTIVES, ID_PATTERN,
  type ModelManifest, type NodeId, type PlacementLink, type PlacementNode, type PlanRequirement,
} from '@baton/contracts';
import {
  DEFAULT_COMPUTE_BYTES_PER_SEC, DEFAULT_LINK_BANDWIDTH_BYTES_PER_SEC, DEFAULT_LINK_RTT_MS,
  buildCostModel, type CostModel,
} from './costs.js';
import { PlacementInputError } from './errors.js';

export interface PlacementInput {
  manifest: ModelManifest;
  nodes: PlacementNode[];
  /** Measured links; pairs missing in both directions get the default link. */
  links?: PlacementLink[];
  requirement: PlanRequirement;
}

export interface ResolvedNode {
  id: NodeId;
  memoryBytes: number;
  computeBytesPerSec: number;
  computeMeasured: boolean;
}

export interface ResolvedLink {
  rttMs: number;
  bandwidthBytesPerSec: number;
  measured: boolean;
}

export interface Prepared {
  manifest: ModelManifest;
  requirement: PlanRequirement;
  cost: CostModel;
  /** Nodes the plan may use (pinned ones when pinned), in input order. */
  nodes: ResolvedNode[];
  link(from: number, to: number): ResolvedLink;
}

const finite = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
const nonNegative = (value: unknown): value is number => finite(value) && value >= 0;

/** Problems with a manifest (from a GGUF header or a manifest.json someone wrote), all at once. */
export function manifestProblems(manifest: unknown): string[] {
  if (manifest === null || typeof manifest !== 'object' || Array.isArray(manifest)) return ['the manifest must be a JSON object'];
  const m = manifest as Record<string, unknown>;
  const problems: string[] = [];
  if (!Number.isInteger(m.layers) || (m.layers as number) < 1) problems.push(`layers must be a positive integer, got ${JSON.stringify(m.layers)}`);
  if (!Array.isArray(m.layerBytes)) problems.push('layerBytes must be an array of per-layer weight bytes');
  else {
    if (Number.isInteger(m.layers) && m.layerBytes.length !== m.layers) problems.push(`layerBytes has ${m.layerBytes.length} entries but layers is ${String(m.layers)}`);
    const bad = m.layerBytes.findIndex((v) => !nonNegative(v));
    if (bad >= 0) problems.push(`layerBytes[${bad}] must be a non-negative number, got ${JSON.stringify(m.layerBytes[bad])}`);
  }
  for (const key of ['embedBytes', 'headBytes', 'activationBytesPerToken', 'feedForwardLength', 'vocabSize', 'contextLength']) {
    if (!nonNegative(m[key])) problems.push(`${key} must be a non-negative number, got ${JSON.stringify(m[key])}`);
  }
  if (typeof m.tiedEmbeddings !== 'boolean') problems.push(`tiedEmbeddings must be true or false, got ${JSON.stringify(m.tiedEmbeddings)}`);
  if (m.kvBytesPerToken === null || typeof m.kvBytesPerToken !== 'object') problems.push('kvBytesPerToken must be an object like {"f16": 262144, "q8_0": 139264}');
  else {
    for (const [dtype, bytes] of Object.entries(m.kvBytesPerToken as Record<string, unknown>)) {
      if (!nonNegative(bytes)) problems.push(`kvBytesPerToken.${dtype} must be a non-negative number, got ${JSON.stringify(bytes)}`);
    }
  }
  return problems;
}

/** Checks the input and resolves defaults; throws PlacementInputError listing every problem. */
export function prepare(input: PlacementInput): Prepared {
  const problems = manifestProblems(input.manifest);
  const requirement = input.requirement;
  if (requirement === null || typeof requirement !== 'object') throw new PlacementInputError(['a requirement is needed']);
  if (!Number.isInteger(requirement.contextTokens) || requirement.contextTokens < 1) problems.push(`contextTokens must be a positive integer, got ${JSON.stringify(requirement.contextTokens)}`);
  if (!Number.isInteger(requirement.sequences) || requirement.sequences < 1) problems.push(`sequences must be a positive integer, got ${JSON.stringify(requirement.sequences)}`);
  if (!KV_DTYPES.includes(requirement.kvDType)) problems.push(`kvDType must be one of ${KV_DTYPES.join(', ')}, got ${JSON.stringify(requirement.kvDType)}`);
  else if (problems.length === 0 && !nonNegative(input.manifest.kvBytesPerToken[requirement.kvDType])) {
    problems.push(`the manifest has no KV size for ${requirement.kvDType}`);
  }
  if (!OBJECTIVES.includes(requirement.objective)) problems.push(`objective must be one of ${OBJECTIVES.join(', ')}, got ${JSON.stringify(requirement.objective)}`);

  if (!Array.isArray(input.nodes) || input.nodes.length === 0) problems.push('at least one node is needed');
  const seen = new Set<string>();
  for (const [i, node] of (Array.isArray(input.nodes) ? input.nodes : []).entries()) {
    const at = `nodes[${i}]${node && typeof node.id === 'string' ? ` (${node.id})` : ''}`;
    if (!node || typeof node.id !== 'string' || !ID_PATTERN.test(node.id)) problems.push(`${at}: id must be 1-128 characters of A-Z a-z 0-9 . _ : -`);
    else if (seen.has(node.id)) problems.push(`${at}: duplicate node id`);
    else seen.add(node.id);
    if (!node || !nonNegative(node.memoryBytes)) problems.push(`${at}: memoryBytes must be a non-negative number`);
    if (node && node.computeBytesPerSec !== null && node.computeBytesPerSec !== undefined && !nonNegative(node.computeBytesPerSec)) {
      problems.push(`${at}: computeBytesPerSec must be a positive number or null (not measured)`);
    }
  }
  for (const [i, link] of (input.links ?? []).entries()) {
    if (!link || typeof link.from !== 'string' || typeof link.to !== 'string') { problems.push(`links[${i}]: from and to must be node ids`); continue; }
    if (!nonNegative(link.rttMs)) problems.push(`links[${i}] (${link.from}→${link.to}): rttMs must be a non-negative number`);
    if (!finite(link.bandwidthBytesPerSec) || link.bandwidthBytesPerSec <= 0) problems.push(`links[${i}] (${link.from}→${link.to}): bandwidthBytesPerSec must be a positive number`);
  }
  for (const pinned of requirement.pinnedNodes ?? []) {
    if (!seen.has(pinned)) problems.push(`pinned node ${JSON.stringify(pinned)} is not in the cluster (nodes: ${[...seen].join(', ')})`);
  }
  if (problems.length > 0) throw new PlacementInputError(problems);

  const pinned = requirement.pinnedNodes?.length ? new Set<string>(requirement.pinnedNodes) : undefined;
  const nodes: ResolvedNode[] = input.nodes
    .filter((node) => !pinned || pinned.has(node.id))
    .map((node) => {
      const measured = typeof node.computeBytesPerSec === 'number' && node.computeBytesPerSec > 0;
      return {
        id: node.id,
        memoryBytes: node.memoryBytes,
        computeBytesPerSec: measured ? node.computeBytesPerSec! : DEFAULT_COMPUTE_BYTES_PER_SEC,
        computeMeasured: measured,
      };
    });

  const byPair = new Map<string, PlacementLink>();
  for (const link of input.links ?? []) byPair.set(`${link.from}\u0000${link.to}`, link);
  const cache = new Map<number, ResolvedLink>();
  const link = (from: number, to: number): ResolvedLink => {
    const key = from * 1_000_003 + to;
    let resolved = cache.get(key);
    if (!resolved) {
      const a = nodes[from]!.id;
      const b = nodes[to]!.id;
      // A pair measured in one direction only is taken as symmetric: links here are full duplex.
      const found = byPair.get(`${a}\u0000${b}`) ?? byPair.get(`${b}\u0000${a}`);
      resolved = found
        ? { rttMs: found.rttMs, bandwidthBytesPerSec: found.bandwidthBytesPerSec, measured: true }
        : { rttMs: DEFAULT_LINK_RTT_MS, bandwidthBytesPerSec: DEFAULT_LINK_BANDWIDTH_BYTES_PER_SEC, measured: false };
      cache.set(key, resolved);
    }
    return resolved;
  };

  return { manifest: input.manifest, requirement, cost: buildCostModel(input.manifest, requirement), nodes, link };
}
