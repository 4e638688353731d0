// A generation's token spans from the frames the last stage sends back (every:2): token 1's span
// is the one the prompt frames name; later sampled tokens get spans under the ids the frames
// carry; unsampled tokens and frames of another trace get none.
import { describe, expect, it } from 'vitest';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { TokenFinish } from '@baton/contracts';
import { Tracing, nextTokenTrace, toHex, type FrameTrace } from '@baton/telemetry';
import { GenerationTrace } from './generation-trace.js';

describe('GenerationTrace', () => {
  it('records token 1 from the prompt and every sampled later token under the frame\'s span id', () => {
    const exporter = new InMemorySpanExporter();
    const tracing = new Tracing({ serviceName: 'baton-gateway', sample: { kind: 'every', n: 2 }, processor: new SimpleSpanProcessor(exporter) });
    const request = tracing.startSpan('request');
    const trace = new GenerationTrace(tracing, request.spanContext(), 2);
    trace.admission()();
    let frame: FrameTrace = trace.prompt(10, 4);
    expect(toHex(frame.traceId)).toBe(request.spanContext().traceId);
    const frames = [frame];
    for (let generated = 1; generated < 5; generated++) frames.push((frame = nextTokenTrace(frame, generated)));
    frames.forEach((f, i) => trace.tokenOut(f, 100 + i, i === 4 ? TokenFinish.LENGTH : TokenFinish.CONTINUE));
    trace.tokenOut({ ...nextTokenTrace(frame, 6), traceId: new Uint8Array(16).fill(9) }, 1, TokenFinish.CONTINUE);
    trace.end('length');

    const spans = exporter.getFinishedSpans();
    const tokens = spans.filter((s) => s.name === 'token');
    expect(tokens.map((s) => s.attributes['baton.token.index'])).toEqual([1, 3, 5]);
    expect(tokens.map((s) => s.spanContext().spanId)).toEqual([0, 2, 4].map((k) => toHex(frames[k]!.spanId)));
    expect(tokens.every((s) => s.parentSpanContext?.spanId === request.spanContext().spanId)).toBe(true);
    expect(tokens[0]!.attributes).toMatchObject({ 'baton.token.phase': 'prefill', 'baton.prompt_tokens': 10, 'baton.prompt_tokens_sent': 6, 'baton.token.id': 100 });
    expect(tokens[2]!.attributes).toMatchObject({ 'baton.token.phase': 'decode', 'baton.token.id': 104, 'baton.token.finish': 'LENGTH' });
    expect(spans.find((s) => s.name === 'kv admission')?.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
  });

  it('ends token 1\'s span with the reason when no token came', () => {
    const exporter = new InMemorySpanExporter();
    const tracing = new Tracing({ serviceName: 'baton-gateway', sample: { kind: 'all' }, processor: new SimpleSpanProcessor(exporter) });
    const trace = new GenerationTrace(tracing, tracing.startSpan('request').spanContext(), 1);
    trace.prompt(3, 0);
    trace.end('cancelled');
    const [token] = exporter.getFinishedSpans();
    expect(token!.status).toMatchObject({ code: 2, message: 'no token: cancelled' });
  });
});
