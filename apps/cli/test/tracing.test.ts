// Observability end to end, with real processes: `baton up --shards 2` exporting spans over
// OTLP/HTTP to a test receiver. One request yields one trace: the gateway's request span, its KV
// admission and token spans, and under every token a forward span from each shard process (and
// their hops), every parent present in the trace. The gateway's /metrics reflects the request.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeRandomModel } from '@baton/gguf';
import { redisClient, startUp, stopUp, tempHome, waitFor, type UpStack } from '../../discovery/test/processes.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../../../libs/telemetry/test/otlp-receiver.js';

const home = tempHome();
const modelPath = join(home, 'traced.gguf');
const redis = redisClient();
const MAX_TOKENS = 6;
let receiver: OtlpReceiver;
let stack: UpStack | undefined;
let url = '';

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  await writeRandomModel({ out: modelPath, arch: 'llama', dim: 128, layers: 4, heads: 4, kvHeads: 2, ffn: 256, type: 'f32', context: 512, seed: 5, name: 'traced' });
  stack = await startUp(['--shards', '2', '--model', modelPath, '--kv-dtype', 'f32', '--context', '256', '--sequences', '4'], {
    BATON_HOME: home,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: '200',
    BATON_TRACE_SAMPLE: 'all',
  });
  url = stack.url;
}, 200_000);

afterAll(async () => {
  await stopUp(stack, redis);
  redis.disconnect();
  await receiver?.close();
  rmSync(home, { recursive: true, force: true });
}, 60_000);

describe('one traced request through a 2-shard pipeline', () => {
  it('gives one trace: request span → token spans → forward spans from each shard', async () => {
    const response = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'traced', prompt: 'Once upon a time', max_tokens: MAX_TOKENS, temperature: 0 }) });
    const body = (await response.json()) as { usage: { completion_tokens: number } };
    expect(response.status).toBe(200);
    const completion = body.usage.completion_tokens;
    expect(completion).toBeGreaterThan(0);

    const requestSpan = await waitFor(() => receiver.spans.find((s) => s.name === 'POST /v1/completions'), 20_000, 100);
    const inTrace = () => receiver.spans.filter((s) => s.traceId === requestSpan.traceId);
    // a token span for every token the last stage sampled (an end-of-generation token has one too)
    const tokens = () => inTrace().filter((s) => s.name === 'token');
    await waitFor(() => tokens().length >= completion && inTrace().filter((s) => s.name.startsWith('forward')).length >= 2 * tokens().length || undefined, 20_000, 100);
    await new Promise((resolve) => setTimeout(resolve, 600)); // a last export round of every process
    const spans = inTrace();

    expect(requestSpan).toMatchObject({ service: 'baton-gateway', parentSpanId: '', kind: 2, attributes: { 'gen_ai.request.model': 'traced', 'gen_ai.request.max_tokens': MAX_TOKENS, 'http.response.status_code': 200 } });
    expect(receiver.rejected).toEqual([]);
    expect(spans.filter((s) => s.parentSpanId === '')).toEqual([requestSpan]);

    const byId = new Map(spans.map((s) => [s.spanId, s]));
    expect(byId.size).toBe(spans.length);
    for (const span of spans) if (span !== requestSpan) expect(byId.has(span.parentSpanId), `parent of ${span.name} (${span.service})`).toBe(true);

    const tokenSpans = spans.filter((s) => s.name === 'token').sort((a, b) => Number(a.attributes['baton.token.index']) - Number(b.attributes['baton.token.index']));
    expect(tokenSpans.length === completion || tokenSpans.length === completion + 1).toBe(true);
    expect(tokenSpans.map((s) => s.attributes['baton.token.index'])).toEqual(tokenSpans.map((_, i) => i + 1));
    for (const token of tokenSpans) expect(token).toMatchObject({ service: 'baton-gateway', parentSpanId: requestSpan.spanId });
    expect(spans.find((s) => s.name === 'kv admission')?.parentSpanId).toBe(requestSpan.spanId);

    const shardPids = new Set<unknown>();
    for (const token of tokenSpans) {
      const forwards = spans.filter((s) => s.parentSpanId === token.spanId && s.name.startsWith('forward'));
      expect(forwards.map((f) => f.attributes['baton.stage']).sort()).toEqual([0, 1]);
      for (const forward of forwards) {
        expect(forward.service).toBe('baton-shard');
        expect(forward.attributes['baton.rows']).toBe(token.attributes['baton.token.index'] === 1 ? forward.attributes['baton.rows'] : 1);
        shardPids.add(forward.resource['process.pid']);
      }
      const forwardNodes = new Set(forwards.map((f) => f.attributes['baton.node']));
      expect(forwardNodes.size).toBe(2);
      // the hidden states from stage 0 to stage 1 and the token back to the gateway
      const hops = spans.filter((s) => s.parentSpanId === token.spanId && s.name.startsWith('hop'));
      expect(hops.map((h) => h.name)).toEqual(expect.arrayContaining(['hop stage 0 → stage 1', 'hop stage 1 → gateway']));
      expect(hops.find((h) => h.name === 'hop stage 0 → stage 1')!.attributes['baton.hop.bytes']).toBe(Number(forwards.find((f) => f.attributes['baton.stage'] === 0)!.attributes['baton.rows']) * 128 * 4);
    }
    expect(shardPids.size).toBe(2);
    // each forward lies within its process's view of the token: it starts after the request began
    for (const span of spans) expect(span.endNs >= span.startNs).toBe(true);
  });

  it('serves /metrics with the request, its tokens and the shards\' KV use', async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const line = (prefixText: string) => text.split('\n').find((l) => l.startsWith(prefixText));
    expect(line('baton_gateway_http_requests_total{method="POST",route="/v1/completions",status="200"} 1')).toBeDefined();
    expect(Number(line('baton_gateway_generated_tokens_total{model="traced"}')!.split(' ')[1])).toBeGreaterThan(0);
    expect(line('baton_gateway_time_to_first_token_seconds_count{model="traced"} 1')).toBeDefined();
    expect(text.split('\n').filter((l) => l.startsWith('baton_node_kv_blocks_total{'))).toHaveLength(2);
  });
});
