// The one typed map from RPC pattern to request and response types. Services register handlers
// for these names and clients call them through the control-plane library: no pattern string
// is written anywhere else.
import type { NodeRecord, LinkMeasurement } from './node.js';

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

export interface RpcMap {
  'discovery.nodes.list': { request: ListNodesRequest; response: ListNodesResponse };
  'discovery.ping': { request: Record<string, never>; response: PingResponse };
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
