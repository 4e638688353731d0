// The gateway's observability, behind one injectable class: Prometheus metrics (always on; served
// at GET /metrics) and, when the process started tracing, a span per completion request (SERVER,
// continuing the client's traceparent if any) under which the pipeline client records a
// generation's admission and token spans. With tracing off no span object is ever created.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SpanKind, SpanStatusCode, formatTraceparent, parseTraceparent, type Attributes, type Span, type Tracing } from '@baton/telemetry';
import { GatewayMetrics, type GenerationOutcome } from './gateway-metrics.js';
import { GenerationTrace } from './generation-trace.js';

/** Routes that get a request span: the ones that run generations. */
const TRACED_ROUTES = new Set(['POST /v1/chat/completions', 'POST /v1/completions']);

/** One generation's metrics, from its start to its end (see CompletionService.run). */
export class GenerationMeter {
  private readonly startedAt = performance.now();
  private firstAt: number | undefined;
  private lastAt = 0;
  private tokens = 0;
  private ended = false;
  // the per-token series, looked up once per generation
  private readonly interToken;
  private readonly generated;

  constructor(
    private readonly metrics: GatewayMetrics,
    private readonly model: string,
    private readonly span: Span | undefined,
  ) {
    metrics.activeGenerations.inc({ model });
    this.interToken = metrics.interTokenLatency.bind({ model });
    this.generated = metrics.generatedTokens.bind({ model });
  }

  /** A completion token reached the client side of the pipeline. */
  token(): void {
    const now = performance.now();
    if (this.firstAt === undefined) {
      this.firstAt = now;
      this.metrics.timeToFirstToken.observe({ model: this.model }, (now - this.startedAt) / 1000);
    } else {
      this.interToken.observe((now - this.lastAt) / 1000);
    }
    this.lastAt = now;
    this.tokens++;
    this.generated.inc();
  }

  end(outcome: GenerationOutcome, promptTokens: number, cachedTokens: number): void {
    if (this.ended) return;
    this.ended = true;
    const labels = { model: this.model };
    this.metrics.activeGenerations.dec(labels);
    this.metrics.generations.inc({ model: this.model, outcome });
    this.metrics.promptTokens.inc(labels, promptTokens);
    this.metrics.cachedPromptTokens.inc(labels, cachedTokens);
    const rate = this.tokens > 1 && this.lastAt > this.firstAt! ? ((this.tokens - 1) * 1000) / (this.lastAt - this.firstAt!) : undefined;
    if (rate !== undefined) this.metrics.generationRate.observe(labels, rate);
    this.span?.setAttributes({
      'baton.outcome': outcome,
      'gen_ai.usage.input_tokens': promptTokens,
      'gen_ai.usage.output_tokens': this.tokens,
      'baton.cached_prompt_tokens': cachedTokens,
      ...(this.firstAt !== undefined ? { 'baton.ttft_ms': Math.round(this.firstAt - this.startedAt) } : {}),
      ...(rate !== undefined ? { 'baton.tokens_per_second': Math.round(rate * 10) / 10 } : {}),
    });
  }
}

export class GatewayTelemetry {
  readonly metrics = new GatewayMetrics();
  private readonly byRequest = new WeakMap<IncomingMessage, Span>();
  private readonly bySpanId = new Map<string, Span>();

  constructor(readonly tracing?: Tracing) {}

  /**
   * Every HTTP request (a Fastify onRequest hook): counted by route and status when its response
   * closes; a completion request also gets its span, ended then with the status code.
   */
  httpRequest(raw: IncomingMessage, response: ServerResponse, route: string | undefined): void {
    const method = raw.method ?? 'GET';
    let span: Span | undefined;
    if (this.tracing && route !== undefined && TRACED_ROUTES.has(`${method} ${route}`)) {
      const header = raw.headers.traceparent;
      const parent = parseTraceparent(typeof header === 'string' ? header : undefined);
      span = this.tracing.startSpan(`${method} ${route}`, {
        kind: SpanKind.SERVER,
        ...(parent ? { parent } : {}),
        attributes: { 'http.request.method': method, 'http.route': route, 'url.path': route },
      });
      const spanId = span.spanContext().spanId;
      this.byRequest.set(raw, span);
      this.bySpanId.set(spanId, span);
    }
    response.once('close', () => {
      const status = response.statusCode;
      this.metrics.httpRequests.inc({ method, route: route ?? 'unmatched', status });
      if (!span) return;
      span.setAttribute('http.response.status_code', status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${status}` });
      if (!response.writableFinished) span.setAttribute('baton.client_disconnected', true);
      span.end();
      this.bySpanId.delete(span.spanContext().spanId);
    });
  }

  /**
   * The trace context a completion request hands the pipeline: its span's (with the prepared
   * request's attributes added), else the client's traceparent as it came.
   */
  requestTraceparent(raw: IncomingMessage, attributes: Attributes, clientTraceparent: string | undefined): string | undefined {
    const span = this.byRequest.get(raw);
    if (!span) return clientTraceparent;
    span.setAttributes(attributes);
    return formatTraceparent(span.spanContext());
  }

  /** Starts a generation's metrics (and names its request span, when traced, for the totals). */
  generation(model: string, traceparent: string | undefined): GenerationMeter {
    const spanId = traceparent ? parseTraceparent(traceparent)?.spanId : undefined;
    return new GenerationMeter(this.metrics, model, spanId ? this.bySpanId.get(spanId) : undefined);
  }

  /** The token spans of a generation under `traceparent`; undefined (no work at all) when tracing is off, sampling is `none` or the parent is not sampled. */
  generationTrace(traceparent: string | undefined): GenerationTrace | undefined {
    if (!this.tracing || this.tracing.tokenInterval === 0 || traceparent === undefined) return undefined;
    const parent = parseTraceparent(traceparent);
    if (!parent || (parent.traceFlags & 1) === 0) return undefined;
    return new GenerationTrace(this.tracing, parent, this.tracing.tokenInterval);
  }

  /** A request now waits for KV admission; call the result when it is over. */
  admissionStarted(model: string): () => void {
    this.metrics.admissionQueue.inc({ model });
    return () => this.metrics.admissionQueue.dec({ model });
  }
}
