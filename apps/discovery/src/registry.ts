// The registry's logic as pure functions: validate what the leases hold, compare it with what
// discovery knew, and say which node events follow. No Redis here.
import {
  BATON_VERSION, FRAME_VERSION, MAX_ANNOUNCEMENT_BYTES, NodeLeaseValueDto, validateDto,
  type EventMap, type NodeAnnouncement, type NodeId, type NodeRecord,
} from '@baton/contracts';

export type LeaseParse = { ok: true; announcement: NodeAnnouncement; heartbeatAtMs: number } | { ok: false; problems: string[] };

/** Parses and validates one lease value. Oversized, non-JSON or invalid values are refused with reasons. */
export function parseLease(key: string, raw: string): LeaseParse {
  if (Buffer.byteLength(raw) > MAX_ANNOUNCEMENT_BYTES) {
    return { ok: false, problems: [`announcement is ${Buffer.byteLength(raw)} bytes, over the ${MAX_ANNOUNCEMENT_BYTES}-byte limit`] };
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, problems: ['announcement is not JSON'] };
  }
  const checked = validateDto(NodeLeaseValueDto, json);
  if (!checked.ok) return { ok: false, problems: checked.problems };
  const { announcement, heartbeatAtMs } = json as { announcement: NodeAnnouncement; heartbeatAtMs: number };
  if (!key.endsWith(`node:${announcement.id}`)) {
    return { ok: false, problems: [`announcement id ${announcement.id} does not match its key ${key}`] };
  }
  if (announcement.memory.availableBytes > announcement.memory.totalBytes) {
    return { ok: false, problems: ['memory.availableBytes is larger than memory.totalBytes'] };
  }
  return { ok: true, announcement, heartbeatAtMs };
}

export function isVersionMismatch(node: Pick<NodeAnnouncement, 'version' | 'protocolVersion'>, version = BATON_VERSION): boolean {
  return node.version !== version || node.protocolVersion !== FRAME_VERSION;
}

/** Top-level announcement fields that differ (heartbeat-like fields never count). */
export function changedFields(before: NodeAnnouncement, after: NodeAnnouncement): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]) as Set<keyof NodeAnnouncement>;
  return [...keys].filter((key) => JSON.stringify(before[key]) !== JSON.stringify(after[key])).sort();
}

export interface Observed {
  announcement: NodeAnnouncement;
  heartbeatAtMs: number;
}

export type NodeEvent = { [T in 'node.joined' | 'node.updated' | 'node.left']: { type: T; data: EventMap[T] } }['node.joined' | 'node.updated' | 'node.left'];

/**
 * One reconciliation step. `observed` is every valid lease now in Redis; `goodbyes` the nodes
 * that said goodbye since the last step. Returns the new registry and the events, in order.
 */
export function reconcile(
  known: ReadonlyMap<NodeId, NodeRecord>,
  observed: ReadonlyMap<NodeId, Observed>,
  goodbyes: ReadonlySet<NodeId>,
  nowMs: number,
  version = BATON_VERSION,
): { registry: Map<NodeId, NodeRecord>; events: NodeEvent[] } {
  const registry = new Map<NodeId, NodeRecord>();
  const events: NodeEvent[] = [];
  for (const [id, seen] of observed) {
    const before = known.get(id);
    // lastSeenMs: when the node last refreshed its lease (its own clock), never later than now.
    const lastSeenMs = Math.min(seen.heartbeatAtMs, nowMs);
    const record: NodeRecord = { ...seen.announcement, lastSeenMs, versionMismatch: isVersionMismatch(seen.announcement, version) };
    registry.set(id, record);
    if (!before) {
      events.push({ type: 'node.joined', data: { node: record } });
    } else {
      const { lastSeenMs: _a, versionMismatch: _b, ...prev } = before;
      const changed = changedFields(prev, seen.announcement);
      if (changed.length > 0) events.push({ type: 'node.updated', data: { node: record, changed } });
    }
  }
  for (const [id, before] of known) {
    if (!observed.has(id)) {
      events.push({ type: 'node.left', data: { nodeId: id, name: before.name, reason: goodbyes.has(id) ? 'goodbye' : 'expired' } });
    }
  }
  return { registry, events };
}
