// Redis keys and stream entry shapes of the KV-cache protocol (issue 7): shards append their
// numbered events and dumps to one stream; the kv-cache service appends commands to one stream
// per node; the service keeps its ledger snapshot per model so a restart resumes it.
export const KvKeys = {
  /** Stream of shard → manager entries: field `type` ('event' | 'dump'), field `data` (JSON). */
  events: (prefix: string) => `${prefix}kv-events`,
  /** Stream of manager → shard commands for one node: field `data` (JSON KvShardCommand). */
  commands: (prefix: string, nodeId: string) => `${prefix}kv-commands:${nodeId}`,
  /** String: the service's JSON ledger snapshot of one model. */
  snapshot: (prefix: string, modelId: string) => `${prefix}kv-snapshot:${modelId}`,
} as const;

/** Entries kept per KV stream (approximate trim). */
export const KV_STREAM_MAX_LENGTH = 100_000;

/** Payload of the CONTROL frame that ends a generation but keeps its KV cached (vs STOP, which frees it). */
export const KV_RELEASE_OP = 'release';
