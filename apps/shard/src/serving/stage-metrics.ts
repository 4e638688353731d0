// A stage's Prometheus metrics, when the shard serves /metrics (`--metrics-port`): forwards
// (time, rows, batch size), the frame queue, and what each hop sends (bytes, time in send()).
// One set per registry: a new runner (a new plan) keeps counting into the same series.
import { LATENCY_BUCKETS_SECONDS, processMetrics, type MetricsRegistry } from '@baton/telemetry';

const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64];
const SEND_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05];

export class StageMetrics {
  private static readonly byRegistry = new WeakMap<MetricsRegistry, StageMetrics>();

  /** This process's stage metrics; undefined when it serves no /metrics. */
  static current(): StageMetrics | undefined {
    const registry = processMetrics();
    if (!registry) return undefined;
    let metrics = StageMetrics.byRegistry.get(registry);
    if (!metrics) StageMetrics.byRegistry.set(registry, (metrics = new StageMetrics(registry)));
    return metrics;
  }

  readonly forwardSeconds;
  readonly forwardRows;
  readonly batchSequences;
  readonly queueDepth;
  readonly hopBytes;
  readonly hopFrames;
  readonly hopSendSeconds;
  readonly sampledTokens;
  private readonly hops = new Map<string, { bytes: { inc(by?: number): void }; frames: { inc(by?: number): void }; send: { observe(value: number): void } }>();

  /** The hop series of one stage and frame kind, bound once (sends are per token). */
  hop(stage: number, kind: string): { bytes: { inc(by?: number): void }; frames: { inc(by?: number): void }; send: { observe(value: number): void } } {
    const key = `${stage}:${kind}`;
    let series = this.hops.get(key);
    if (!series) {
      const labels = { stage: String(stage), kind };
      series = { bytes: this.hopBytes.bind(labels), frames: this.hopFrames.bind(labels), send: this.hopSendSeconds.bind(labels) };
      this.hops.set(key, series);
    }
    return series;
  }

  private constructor(registry: MetricsRegistry) {
    this.forwardSeconds = registry.histogram('baton_stage_forward_seconds', 'Time of one engine forward of this stage (a batch of sequences).', ['stage'], LATENCY_BUCKETS_SECONDS);
    this.forwardRows = registry.counter('baton_stage_forward_rows_total', 'Token rows this stage has forwarded (prompt chunks and decode tokens).', ['stage']);
    this.batchSequences = registry.histogram('baton_stage_batch_sequences', 'Sequences per forward (batching of concurrent requests).', ['stage'], BATCH_BUCKETS);
    this.queueDepth = registry.gauge('baton_stage_queue_depth', 'Frames waiting for the engine on this stage.', ['stage']);
    this.hopBytes = registry.counter('baton_stage_hop_bytes_total', 'Payload bytes this stage sent on, by frame kind (HIDDEN to the next stage, TOKENS round the ring, TOKEN_OUT to the gateway).', ['stage', 'kind']);
    this.hopFrames = registry.counter('baton_stage_hop_frames_total', 'Frames this stage sent on, by frame kind.', ['stage', 'kind']);
    this.hopSendSeconds = registry.histogram('baton_stage_hop_send_seconds', 'Time in the transport\'s send() per frame (written or queued; the wire time is the link\'s RTT).', ['stage', 'kind'], SEND_BUCKETS);
    this.sampledTokens = registry.counter('baton_stage_sampled_tokens_total', 'Tokens sampled by this stage (the last stage).', ['stage']);
  }
}
