// The gateway's metrics and request spans over real HTTP: GET /metrics in Prometheus's text
// format counting requests, tokens, time to first token and inter-token latency; with tracing on,
// a SERVER span per completion request (continuing the client's traceparent) exported over OTLP
// to a test receiver, whose context is what the pipeline receives.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { readGguf, writeRandomModel } from '@baton/gguf';
import { Tokenizer } from '@baton/tokenizer';
import { Tracing, parseTraceparent } from '@baton/telemetry';
import { createGatewayApp, gatewayUrl } from '../src/index.js';
import { GatewayTelemetry } from '../src/telemetry/gateway-telemetry.js';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.js';
import type { LinkMeasurement, NodeRecord } from '@baton/contracts';
import { FakePipeline } from './fake-pipeline.js';
import { startOtlpReceiver, type OtlpReceiver } from '../../../libs/telemetry/test/otlp-receiver.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

let home: string;
let pipeline: FakePipeline;
let app: NestFastifyApplication;
let url: string;
let receiver: OtlpReceiver;
let tracing: Tracing;

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

/** The value of one sample line of the exposition, or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'baton-gateway-telemetry-'));
  const modelPath = join(home, 'tiny.gguf');
  await writeRandomModel({ out: modelPath, arch: 'llama', dim: 32, layers: 1, heads: 2, kvHeads: 1, ffn: 64, type: 'f32', context: 256, seed: 7 });
  const tokenizer = Tokenizer.fromGguf((await readGguf(modelPath)).metadata);
  pipeline = new FakePipeline([{ modelId: 'tiny', modelPath, contextLength: 256, planVersion: 1, ready: true }], tokenizer);
  receiver = await startOtlpReceiver();
  tracing = new Tracing({ serviceName: 'baton-gateway', sample: { kind: 'all' }, tracesUrl: `${receiver.url}/v1/traces`, exportDelayMs: 50 });
  app = await createGatewayApp({
    port: 0,
    pipeline,
    controlPlane: { redisUrl: REDIS_URL, prefix: `test-gw-telemetry-${randomBytes(4).toString('hex')}:` },
    localModels: { batonHome: home, ollamaModels: null },
    logger: false,
    telemetry: new GatewayTelemetry(tracing),
  });
  url = gatewayUrl(app);
});

afterAll(async () => {
  await app?.close();
  await tracing?.shutdown();
  await receiver?.close();
  await rm(home, { recursive: true, force: true });
});

describe('GET /metrics', () => {
  it('serves Prometheus text with requests by status, tokens, TTFT and inter-token latency', async () => {
    expect((await post('/v1/completions', { model: 'tiny', prompt: 'say:abcd;', max_tokens: 20 })).status).toBe(200);
    const streamed = await post('/v1/completions', { model: 'tiny', prompt: 'say:xyz;', max_tokens: 20, stream: true });
    await streamed.text();
    expect((await post('/v1/completions', { model: 'nope', prompt: 'x' })).status).toBe(404);
    expect((await post('/v1/completions', { model: 'tiny', prompt: 'x', max_tokens: -1 })).status).toBe(400);
    expect((await fetch(`${url}/no/such/route`)).status).toBe(404);

    const response = await fetch(`${url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await response.text();
    expect(text).toContain('# TYPE baton_gateway_time_to_first_token_seconds histogram');
    expect(sample(text, 'baton_gateway_http_requests_total{method="POST",route="/v1/completions",status="200"}')).toBe(2);
    expect(sample(text, 'baton_gateway_http_requests_total{method="POST",route="/v1/completions",status="404"}')).toBe(1);
    expect(sample(text, 'baton_gateway_http_requests_total{method="POST",route="/v1/completions",status="400"}')).toBe(1);
    expect(sample(text, 'baton_gateway_http_requests_total{method="GET",route="unmatched",status="404"}')).toBe(1);
    expect(sample(text, 'baton_gateway_generated_tokens_total{model="tiny"}')).toBe(7);
    expect(sample(text, 'baton_gateway_time_to_first_token_seconds_count{model="tiny"}')).toBe(2);
    expect(sample(text, 'baton_gateway_inter_token_latency_seconds_count{model="tiny"}')).toBe(5);
    expect(sample(text, 'baton_gateway_time_to_first_token_seconds_bucket{model="tiny",le="+Inf"}')).toBe(2);
    expect(sample(text, 'baton_gateway_generations_total{model="tiny",outcome="stop"}')).toBe(2);
    expect(sample(text, 'baton_gateway_prompt_tokens_total{model="tiny"}')).toBeGreaterThan(0);
    expect(sample(text, 'baton_gateway_active_generations{model="tiny"}')).toBe(0);
    for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) expect(line).toMatch(/^[a-z_:]+(\{[^}]*\})? (-?[0-9.e+-]+|\+Inf|NaN)$/);
  });
});

describe('request spans', () => {
  it('records a SERVER span per completion request under the client\'s traceparent and hands its context to the pipeline', async () => {
    const clientTrace = randomBytes(16).toString('hex');
    const clientSpan = randomBytes(8).toString('hex');
    const response = await post('/v1/chat/completions', { model: 'tiny', messages: [{ role: 'user', content: 'say:hi;' }], max_tokens: 9 }, { traceparent: `00-${clientTrace}-${clientSpan}-01` });
    expect(response.status).toBe(200);
    const handed = parseTraceparent(pipeline.requests.at(-1)!.traceparent);
    expect(handed?.traceId).toBe(clientTrace);
    await tracing.flush();
    const span = receiver.spans.find((s) => s.traceId === clientTrace)!;
    expect(span).toMatchObject({
      service: 'baton-gateway',
      name: 'POST /v1/chat/completions',
      kind: 2,
      parentSpanId: clientSpan,
      spanId: handed!.spanId,
      attributes: { 'gen_ai.request.model': 'tiny', 'gen_ai.request.max_tokens': 9, 'http.response.status_code': 200, 'baton.outcome': 'stop', 'gen_ai.usage.output_tokens': 2 },
    });
    expect(span.attributes['baton.prompt_tokens']).toBeGreaterThan(0);
  });

  it('gives other routes no span', async () => {
    await fetch(`${url}/healthz`);
    await fetch(`${url}/v1/models`);
    await tracing.flush();
    expect(receiver.spans.filter((s) => !s.name.startsWith('POST /v1/'))).toEqual([]);
  });
});

describe('cluster gauges', () => {
  it('mirror the nodes\' announced KV use and the probed links at every scrape', () => {
    const metrics = new GatewayMetrics();
    let nodes = [{ id: 'n1', name: 'mac', kv: { blocksTotal: 100, blocksUsed: 40, blockTokens: 16, sequences: 2 } }, { id: 'n2', name: 'mini' }] as unknown as NodeRecord[];
    const links: LinkMeasurement[] = [{ from: 'n1', to: 'n2', rttP50Ms: 0.5, rttP99Ms: 2, bandwidthBytesPerSec: 1e9, measuredAtMs: 1 } as LinkMeasurement];
    metrics.followNodes(() => nodes, () => links);
    let text = metrics.render();
    expect(sample(text, 'baton_node_kv_blocks_used{node="n1",name="mac"}')).toBe(40);
    expect(sample(text, 'baton_node_kv_blocks_total{node="n1",name="mac"}')).toBe(100);
    expect(sample(text, 'baton_node_kv_sequences{node="n1",name="mac"}')).toBe(2);
    expect(text).not.toContain('node="n2"');
    expect(sample(text, 'baton_link_rtt_p50_seconds{from="n1",to="n2"}')).toBe(0.0005);
    expect(sample(text, 'baton_link_rtt_p99_seconds{from="n1",to="n2"}')).toBe(0.002);
    expect(sample(text, 'baton_link_bandwidth_bytes_per_second{from="n1",to="n2"}')).toBe(1e9);
    nodes = [];
    text = metrics.render();
    expect(text).not.toContain('baton_node_kv_blocks_used{');
  });
});
