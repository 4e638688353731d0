// Tracing against a real OTLP/HTTP receiver: spans leave the process as OTLP JSON with their
// parents, preset span ids and attributes; nothing is started when tracing is not configured.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpanKind, Tracing, processTracing, startTracing, stopTracing } from '../src/index.js';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver.js';

let receiver: OtlpReceiver;
beforeAll(async () => {
  receiver = await startOtlpReceiver();
});
afterAll(() => receiver.close());

describe('Tracing', () => {
  it('exports spans over OTLP/HTTP JSON with parents, preset ids and attributes', async () => {
    const tracing = new Tracing({ serviceName: 'baton-test', sample: { kind: 'all' }, tracesUrl: `${receiver.url}/v1/traces`, resource: { 'service.instance.id': 'n1' } });
    const root = tracing.startSpan('request', { kind: SpanKind.SERVER, attributes: { 'gen_ai.request.model': 'm' } });
    const child = tracing.startSpan('token', { parent: root.spanContext(), spanId: '0123456789abcdef', attributes: { 'baton.token.index': 2 } });
    child.end();
    root.end();
    await tracing.shutdown();
    const spans = receiver.spans.filter((s) => s.traceId === root.spanContext().traceId);
    expect(receiver.rejected).toEqual([]);
    expect(spans).toHaveLength(2);
    const r = spans.find((s) => s.name === 'request')!;
    const t = spans.find((s) => s.name === 'token')!;
    expect(r).toMatchObject({ service: 'baton-test', parentSpanId: '', kind: 2, attributes: { 'gen_ai.request.model': 'm' } });
    expect(r.resource['service.instance.id']).toBe('n1');
    expect(t).toMatchObject({ spanId: '0123456789abcdef', parentSpanId: r.spanId, attributes: { 'baton.token.index': 2 } });
  });

  it('starts nothing unless configured, and names a bad setting', async () => {
    expect(startTracing('x', { env: {} })).toBeUndefined();
    expect(processTracing()).toBeUndefined();
    expect(() => startTracing('x', { env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, BATON_TRACE_SAMPLE: 'every:0' } })).toThrow('BATON_TRACE_SAMPLE=every:0');
    const started = startTracing('x', { env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, BATON_TRACE_SAMPLE: 'every:4' } });
    expect(started?.tokenInterval).toBe(4);
    expect(processTracing()).toBe(started);
    await stopTracing();
    expect(processTracing()).toBeUndefined();
  });
});
