// The one place a process's spans are made and exported: an OpenTelemetry tracer provider with a
// batching OTLP/HTTP (JSON) exporter, started by the process entry (main.ts) when tracing is
// configured, else never created — callers hold `Tracing | undefined` and skip every span when it
// is undefined, so the token path costs nothing when tracing is off.
//
// Started by hand rather than by the `node --import` preload of the auto-instrumentation SDK:
// Baton makes all its spans itself (request, token, forward, hop), and automatic http/ioredis
// spans would mostly record the control plane's constant Redis polling. Parents are passed
// explicitly (the frame header, the request's span), so no global context manager or propagator
// is registered and nothing else in the process is patched.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span, type TimeInput } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, RandomIdGenerator, type IdGenerator, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { resolveTracingConfig, sampleInterval, TelemetryConfigError, type TraceSample } from './config.js';
import type { HexSpanContext } from './frame-trace.js';

export { SpanKind, SpanStatusCode, type Attributes, type Span };

/**
 * Random ids, except that the next span id can be given in advance: the gateway records a decode
 * token's span under the id the last stage already derived and used as the stages' parent (see
 * frame-trace.ts). The SDK asks for the id synchronously inside startSpan, so a preset is always
 * consumed by the span it was set for.
 */
class PresetIdGenerator implements IdGenerator {
  private readonly random = new RandomIdGenerator();
  preset: string | undefined;

  generateTraceId(): string {
    return this.random.generateTraceId();
  }

  generateSpanId(): string {
    const id = this.preset;
    if (id === undefined) return this.random.generateSpanId();
    this.preset = undefined;
    return id;
  }
}

export interface StartSpanOptions {
  /** The parent (a frame's context, a request span's); none = a new trace. */
  parent?: HexSpanContext;
  attributes?: Attributes;
  /** Epoch milliseconds (see epochMs) or any OpenTelemetry TimeInput; default now. */
  startTime?: TimeInput;
  kind?: SpanKind;
  /** This span's id (16 lowercase hex digits) instead of a random one. */
  spanId?: string;
}

export interface TracingOptions {
  /** service.name of the spans (baton-gateway, baton-shard). */
  serviceName: string;
  sample: TraceSample;
  /** OTLP/HTTP traces URL; ignored when `processor` is given. */
  tracesUrl?: string;
  /** Extra resource attributes (service.instance.id, …). */
  resource?: Attributes;
  /** Where spans go instead of OTLP (tests: an in-memory exporter). */
  processor?: SpanProcessor;
  /** BatchSpanProcessor export delay (default OTEL_BSP_SCHEDULE_DELAY, else 2000 ms). */
  exportDelayMs?: number;
}

/** Wall-clock epoch milliseconds with sub-millisecond precision, for span start and end times. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

function scheduleDelay(env: NodeJS.ProcessEnv): number {
  const text = env.OTEL_BSP_SCHEDULE_DELAY?.trim();
  if (!text) return 2000;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0 || value > 600_000) throw new TelemetryConfigError(`OTEL_BSP_SCHEDULE_DELAY=${text} is not a number of milliseconds from 0 to 600000`);
  return value;
}

export class Tracing {
  readonly sample: TraceSample;
  /** 1 = every token traced, N = every Nth, 0 = none (request spans only). */
  readonly tokenInterval: number;
  private readonly provider: BasicTracerProvider;
  private readonly ids = new PresetIdGenerator();
  private readonly tracer;

  constructor(options: TracingOptions) {
    this.sample = options.sample;
    this.tokenInterval = sampleInterval(options.sample);
    const processor = options.processor ?? new BatchSpanProcessor(new OTLPTraceExporter({ url: options.tracesUrl }), {
      scheduledDelayMillis: options.exportDelayMs ?? scheduleDelay(process.env),
      // per-token spans come in bursts (a token, a forward and a hop per stage): keep more than
      // the SDK's 2048 so a few busy seconds are not dropped
      maxQueueSize: 16_384,
      maxExportBatchSize: 1024,
    });
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': options.serviceName, ...options.resource }),
      idGenerator: this.ids,
      spanProcessors: [processor],
    });
    this.tracer = this.provider.getTracer('@baton/telemetry');
  }

  startSpan(name: string, options: StartSpanOptions = {}): Span {
    const context = options.parent ? trace.setSpanContext(ROOT_CONTEXT, { ...options.parent, isRemote: true }) : ROOT_CONTEXT;
    if (options.spanId !== undefined) this.ids.preset = options.spanId;
    try {
      return this.tracer.startSpan(name, {
        kind: options.kind ?? SpanKind.INTERNAL,
        ...(options.attributes ? { attributes: options.attributes } : {}),
        ...(options.startTime !== undefined ? { startTime: options.startTime } : {}),
        ...(options.parent ? {} : { root: true }),
      }, context);
    } finally {
      this.ids.preset = undefined;
    }
  }

  /** Exports what is buffered (tests, and before a planned stop). */
  async flush(): Promise<void> {
    await this.provider.forceFlush();
  }

  /** Exports what is buffered and stops; later spans are dropped. */
  async shutdown(): Promise<void> {
    await this.provider.shutdown();
  }
}

let current: Tracing | undefined;

/**
 * Starts this process's tracing when the environment asks for it (see config.ts) and returns it,
 * else undefined. Throws TelemetryConfigError for a bad variable. Code that cannot be handed the
 * instance (a stage runner built deep inside a service) finds it with processTracing().
 */
export function startTracing(serviceName: string, options: { env?: NodeJS.ProcessEnv; resource?: Attributes } = {}): Tracing | undefined {
  const env = options.env ?? process.env;
  const config = resolveTracingConfig(env);
  if (!config.enabled) return undefined;
  current = new Tracing({ serviceName, sample: config.sample, tracesUrl: config.tracesUrl, exportDelayMs: scheduleDelay(env), ...(options.resource ? { resource: options.resource } : {}) });
  return current;
}

/** The tracing this process started, if any. */
export function processTracing(): Tracing | undefined {
  return current;
}

/** How long a stopping process waits for its last spans to be exported. */
const SHUTDOWN_WAIT_MS = 3000;

/**
 * Stops the process's tracing, flushing its spans for at most 3 s (a collector that does not
 * answer must not hold up a stop); safe to call when none was started.
 */
export async function stopTracing(): Promise<void> {
  const tracing = current;
  current = undefined;
  if (!tracing) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    tracing.shutdown().catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, SHUTDOWN_WAIT_MS);
      timer.unref();
    }),
  ]);
  clearTimeout(timer);
}
