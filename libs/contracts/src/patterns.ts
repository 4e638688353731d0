// The one typed map from RPC pattern to request and response types. Services register handlers
// for these names and clients call them through the control-plane library: no pattern string
// is written anywhere else.
import type { NodeRecord, LinkMeasurement } from './node.js';
import type { Placement, Plan, PlanRequirement } from './plan.js';
import type { KvRpcMap } from './kv.js';

export interface ListNodesRequest {
  /** Include nodes whose version differs from discovery's (default true). */
  includeMismatched?: boolean;
}
export interface ListNodesResponse {
  nodes: NodeRecord[];
  links: LinkMeasurement[];
  discoveryVersion: string;
}

export interface PingResponse {
  service: string;
  version: string;
  pid: number;
  uptimeMs: number;
}

export interface PlanPreviewRequest {
  /** GGUF file, readable by the planner (its manifest is read from the header). */
  modelPath: string;
  requirement: PlanRequirement;
}

export interface PlanApplyRequest extends PlanPreviewRequest {
  /** Served model name; default: the file's general.name or base name. */
  modelId?: string;
}

export interface PlanCurrentRequest {
  modelId: string;
}

export interface PlanListResponse {
  plans: Plan[];
  /** Models applied but without a feasible plan right now, with the reason. */
  unplaced: { modelId: string; modelPath: string; reason: string }[];
}

export interface RpcMap extends KvRpcMap {
  'discovery.nodes.list': { request: ListNodesRequest; response: ListNodesResponse };
  'discovery.ping': { request: Record<string, never>; response: PingResponse };
  /** A plan for the live cluster without applying it. */
  'planner.preview': { request: PlanPreviewRequest; response: Placement };
  /** Keep this model placed: plan it now, publish it, and replan on topology changes. */
  'planner.apply': { request: PlanApplyRequest; response: Plan };
  'planner.current': { request: PlanCurrentRequest; response: Plan | null };
  'planner.list': { request: Record<string, never>; response: PlanListResponse };
  'planner.ping': { request: Record<string, never>; response: PingResponse };
  'kv.ping': { request: Record<string, never>; response: PingResponse };
}

export type RpcPattern = keyof RpcMap;
export type RpcRequest<P extends RpcPattern> = RpcMap[P]['request'];
export type RpcResponse<P extends RpcPattern> = RpcMap[P]['response'];

/** Default RPC timeout (ms). */
export const RPC_TIMEOUT_MS = 5000;

/**
 * Fire-and-forget hints (pub/sub through the Nest transport's emit): a lost hint only delays
 * something that a poll would catch anyway. Anything that must not be lost goes on the event stream.
 */
export interface HintMap {
  /** A node has written or removed its lease: look now instead of at the next poll. */
  'node.changed': { nodeId: string; goodbye: boolean };
}
export type HintPattern = keyof HintMap;
