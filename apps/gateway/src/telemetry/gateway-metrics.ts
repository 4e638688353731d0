// The gateway's Prometheus metrics (GET /metrics). Latencies are measured where the client sees
// them: from the start of a generation (request validated and tokenized) to each token leaving
// the pipeline client, so KV admission waits count towards time to first token.
import type { LinkMeasurement, NodeRecord } from '@baton/contracts';
import { LATENCY_BUCKETS_SECONDS, MetricsRegistry, registerProcessMetrics } from '@baton/telemetry';

/** How a generation ended, as counted in baton_gateway_generations_total. */
export type GenerationOutcome = 'stop' | 'length' | 'error' | 'cancelled' | 'client_disconnected';

const RATE_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

export class GatewayMetrics {
  readonly registry = new MetricsRegistry();
  readonly httpRequests = this.registry.counter('baton_gateway_http_requests_total', 'HTTP requests by method, route and status code (streams count the status they started with).', ['method', 'route', 'status']);
  readonly timeToFirstToken = this.registry.histogram('baton_gateway_time_to_first_token_seconds', 'Time from the start of a generation (after tokenizing) to its first token, including any wait for KV admission.', ['model']);
  readonly interTokenLatency = this.registry.histogram('baton_gateway_inter_token_latency_seconds', 'Time between consecutive tokens of a generation.', ['model']);
  readonly generatedTokens = this.registry.counter('baton_gateway_generated_tokens_total', 'Completion tokens produced; rate() of it is the cluster\'s tokens per second.', ['model']);
  readonly promptTokens = this.registry.counter('baton_gateway_prompt_tokens_total', 'Prompt tokens of finished generations.', ['model']);
  readonly cachedPromptTokens = this.registry.counter('baton_gateway_cached_prompt_tokens_total', 'Prompt tokens served from the KV cache (prefix reuse) instead of prefilled.', ['model']);
  readonly generationRate = this.registry.histogram('baton_gateway_generation_tokens_per_second', 'Decode rate of each generation with two tokens or more: tokens after the first per second after the first.', ['model'], RATE_BUCKETS);
  readonly generations = this.registry.counter('baton_gateway_generations_total', 'Generations by how they ended: stop, length, error, cancelled (by the cluster), client_disconnected.', ['model', 'outcome']);
  readonly activeGenerations = this.registry.gauge('baton_gateway_active_generations', 'Generations running now (admitted or waiting for admission).', ['model']);
  readonly admissionQueue = this.registry.gauge('baton_gateway_admission_queue_depth', 'Requests waiting now for the KV-cache manager to admit them (KV room).', ['model']);
  readonly kvBlocksUsed = this.registry.gauge('baton_node_kv_blocks_used', 'KV blocks of running sequences on each node, as the node announced it.', ['node', 'name']);
  readonly kvBlocksTotal = this.registry.gauge('baton_node_kv_blocks_total', 'KV blocks of each node\'s pool, as the node announced it.', ['node', 'name']);
  readonly kvSequences = this.registry.gauge('baton_node_kv_sequences', 'Running sequences holding KV on each node, as the node announced it.', ['node', 'name']);
  readonly linkRttP50 = this.registry.gauge('baton_link_rtt_p50_seconds', 'Round trip of the data-plane link between two nodes (median of the last probe), a hop\'s latency on the wire.', ['from', 'to']);
  readonly linkRttP99 = this.registry.gauge('baton_link_rtt_p99_seconds', 'Round trip of the data-plane link between two nodes (99th percentile of the last probe).', ['from', 'to']);
  readonly linkBandwidth = this.registry.gauge('baton_link_bandwidth_bytes_per_second', 'Bandwidth of the data-plane link between two nodes (last probe).', ['from', 'to']);
  readonly latencyBuckets = LATENCY_BUCKETS_SECONDS;

  /**
   * Refreshes the per-node KV gauges and the per-link probe gauges at every scrape from the
   * cluster as the gateway last saw it (discovery's node list, refreshed every second; the links
   * are probed by the nodes every 30 s).
   */
  followNodes(nodes: () => Iterable<NodeRecord>, links: () => Iterable<LinkMeasurement> = () => []): void {
    this.registry.collect(() => {
      this.kvBlocksUsed.reset();
      this.kvBlocksTotal.reset();
      this.kvSequences.reset();
      for (const node of nodes()) {
        if (!node.kv) continue;
        const labels = { node: node.id, name: node.name };
        this.kvBlocksUsed.set(labels, node.kv.blocksUsed);
        this.kvBlocksTotal.set(labels, node.kv.blocksTotal);
        this.kvSequences.set(labels, node.kv.sequences);
      }
    });
    this.registry.collect(() => {
      this.linkRttP50.reset();
      this.linkRttP99.reset();
      this.linkBandwidth.reset();
      for (const link of links()) {
        const labels = { from: link.from, to: link.to };
        this.linkRttP50.set(labels, link.rttP50Ms / 1000);
        this.linkRttP99.set(labels, link.rttP99Ms / 1000);
        this.linkBandwidth.set(labels, link.bandwidthBytesPerSec);
      }
    });
  }

  constructor() {
    registerProcessMetrics(this.registry);
  }

  render(): string {
    return this.registry.render();
  }
}
