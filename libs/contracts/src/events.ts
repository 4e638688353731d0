// Events on the cluster event stream (Redis Streams): one typed map from event type to payload.
import type { NodeId } from './ids.js';
import type { LinkMeasurement, NodeRecord } from './node.js';

export interface EventMap {
  'node.joined': { node: NodeRecord };
  'node.updated': { node: NodeRecord; changed: string[] };
  'node.left': { nodeId: NodeId; name: string; reason: 'goodbye' | 'expired' };
  'link.measured': { link: LinkMeasurement };
  /** A plan for a model, versioned; payload shape defined in plan.ts. */
  'plan.published': { plan: import('./plan.js').Plan };
  'plan.withdrawn': { modelId: string; reason: string };
}

export type EventType = keyof EventMap;
export const EVENT_TYPES: readonly EventType[] = ['node.joined', 'node.updated', 'node.left', 'link.measured', 'plan.published', 'plan.withdrawn'];

/** An event as read back from the stream. `id` is the Redis stream id ("1700000000000-0"). */
export interface ClusterEvent<T extends EventType = EventType> {
  id: string;
  type: T;
  atMs: number;
  data: EventMap[T];
}

/** Streams and key names under a namespace prefix (default "baton:"). */
export const Keys = {
  node: (prefix: string, id: string) => `${prefix}node:${id}`,
  nodePattern: (prefix: string) => `${prefix}node:*`,
  events: (prefix: string) => `${prefix}events`,
  hints: (prefix: string) => `${prefix}hints`,
} as const;

export const DEFAULT_PREFIX = 'baton:';

/** Lease timing (ARCHITECTURE §3): a node refreshes every second; expiry means gone. */
export const LEASE_TTL_MS = 3000;
export const LEASE_REFRESH_MS = 1000;
