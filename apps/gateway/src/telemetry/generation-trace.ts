// The spans of one generation inside its request span: KV admission, then one span per traced
// token. Token 1's span starts when the prompt is sent (it covers prefill: time to first token);
// every later token's span runs from the previous token's arrival to its own (inter-token latency).
// The stages parent their forward and hop spans to the token span named in each frame; for decode
// tokens the last stage derives that id (see @baton/telemetry frame-trace), so the gateway records
// the token's span under the id the TOKEN_OUT frame brings back.
import { TokenFinish } from '@baton/contracts';
import {
  SpanStatusCode, epochMs, frameTraceOf, isSampledFrame, toHex,
  type FrameTrace, type HexSpanContext, type Span, type Tracing,
} from '@baton/telemetry';

export class GenerationTrace {
  private first: Span | undefined;
  private firstSpanId = '';
  private lastAt = 0;
  private tokens = 0;

  constructor(
    private readonly tracing: Tracing,
    /** The request's span. */
    private readonly parent: HexSpanContext,
    /** Trace one token in this many (≥ 1). */
    private readonly interval: number,
  ) {}

  /** A span around the KV admission; call the result when admission is over. */
  admission(): (error?: string) => void {
    const span = this.tracing.startSpan('kv admission', { parent: this.parent });
    return (error) => {
      if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
      span.end();
    };
  }

  /**
   * Starts the span of the token the prompt will yield (token 1; after a resume on a new plan,
   * the next one, whose prompt is the original prompt + the tokens so far); its context goes into
   * the prompt's TOKENS frames.
   */
  prompt(promptTokens: number, cachedTokens: number): FrameTrace {
    this.lastAt = epochMs();
    this.first = this.tracing.startSpan('token', {
      parent: this.parent,
      startTime: this.lastAt,
      attributes: {
        'baton.token.index': this.tokens + 1,
        'baton.token.phase': 'prefill',
        'baton.prompt_tokens': promptTokens,
        'baton.prompt_tokens_sent': promptTokens - Math.min(cachedTokens, promptTokens - 1),
        ...(this.tokens > 0 ? { 'baton.resumed': true } : {}),
      },
    });
    const context = this.first.spanContext();
    this.firstSpanId = context.spanId;
    return frameTraceOf(context, true, this.interval);
  }

  /** A TOKEN_OUT frame arrived: ends (token 1) or records (later tokens) the token's span. */
  tokenOut(header: FrameTrace, token: number, finish: TokenFinish): void {
    const now = epochMs();
    const index = ++this.tokens;
    const attributes = { 'baton.token.index': index, 'baton.token.id': token, 'baton.token.finish': TokenFinish[finish] ?? String(finish) };
    if (this.first) {
      this.first.setAttributes(attributes);
      this.first.end(now);
      this.first = undefined;
    } else if (isSampledFrame(header) && toHex(header.traceId) === this.parent.traceId) {
      const spanId = toHex(header.spanId);
      if (spanId !== this.firstSpanId) {
        this.tracing.startSpan('token', { parent: this.parent, spanId, startTime: this.lastAt, attributes: { ...attributes, 'baton.token.phase': 'decode' } }).end(now);
      }
    }
    this.lastAt = now;
  }

  /** The generation is over; a first token that never came ends its span with the reason. */
  end(outcome: string): void {
    if (!this.first) return;
    this.first.setStatus({ code: SpanStatusCode.ERROR, message: `no token: ${outcome}` });
    this.first.end();
    this.first = undefined;
  }
}
