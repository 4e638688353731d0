import { describe, expect, it } from 'vitest';
import { MAX_TRACE_EVERY, parseTraceSample, resolveTracingConfig, sampleInterval } from './config.js';

describe('BATON_TRACE_SAMPLE', () => {
  it.each([
    [undefined, { kind: 'all' }],
    ['', { kind: 'all' }],
    ['all', { kind: 'all' }],
    [' ALL ', { kind: 'all' }],
    ['none', { kind: 'none' }],
    ['every:1', { kind: 'all' }],
    ['every:10', { kind: 'every', n: 10 }],
    [`every:${MAX_TRACE_EVERY}`, { kind: 'every', n: MAX_TRACE_EVERY }],
  ])('%j → %j', (value, expected) => {
    expect(parseTraceSample(value)).toEqual(expected);
  });

  it.each([
    ['some', /BATON_TRACE_SAMPLE=some is not valid: use all, every:N/],
    ['every:0', /BATON_TRACE_SAMPLE=every:0: N must be an integer from 1 to 128/],
    ['every:129', /BATON_TRACE_SAMPLE=every:129: N must be/],
    ['every:-3', /BATON_TRACE_SAMPLE=every:-3 is not valid/],
    ['every:2.5', /BATON_TRACE_SAMPLE=every:2.5 is not valid/],
    ['every', /BATON_TRACE_SAMPLE=every is not valid/],
  ])('rejects %j, naming the value', (value, message) => {
    expect(() => parseTraceSample(value)).toThrow(message);
  });

  it('gives the interval: 1 for all, N for every:N, 0 for none', () => {
    expect(sampleInterval({ kind: 'all' })).toBe(1);
    expect(sampleInterval({ kind: 'every', n: 7 })).toBe(7);
    expect(sampleInterval({ kind: 'none' })).toBe(0);
  });
});

describe('tracing configuration', () => {
  it('is off without an endpoint or BATON_TRACE', () => {
    expect(resolveTracingConfig({}).enabled).toBe(false);
  });

  it('is on with OTEL_EXPORTER_OTLP_ENDPOINT, posting to <base>/v1/traces', () => {
    expect(resolveTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318/' })).toEqual({ enabled: true, tracesUrl: 'http://jaeger:4318/v1/traces', sample: { kind: 'all' } });
  });

  it('takes OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is', () => {
    expect(resolveTracingConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:1234/custom' }).tracesUrl).toBe('http://c:1234/custom');
  });

  it('BATON_TRACE=on alone exports to localhost:4318; off wins over an endpoint; OTEL_SDK_DISABLED wins over all', () => {
    expect(resolveTracingConfig({ BATON_TRACE: 'on' })).toMatchObject({ enabled: true, tracesUrl: 'http://localhost:4318/v1/traces' });
    expect(resolveTracingConfig({ BATON_TRACE: 'off', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x:4318' }).enabled).toBe(false);
    expect(resolveTracingConfig({ BATON_TRACE: '1', OTEL_SDK_DISABLED: 'true' }).enabled).toBe(false);
  });

  it('rejects bad values with the variable and the value', () => {
    expect(() => resolveTracingConfig({ BATON_TRACE: 'maybe' })).toThrow('BATON_TRACE=maybe is not valid: use on or off');
    expect(() => resolveTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'jaeger:4318' })).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT=jaeger:4318: only http and https/);
    expect(() => resolveTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' })).toThrow('OTEL_EXPORTER_OTLP_ENDPOINT=not a url is not a URL');
    expect(() => resolveTracingConfig({ BATON_TRACE_SAMPLE: 'half' })).toThrow('BATON_TRACE_SAMPLE=half');
  });
});
