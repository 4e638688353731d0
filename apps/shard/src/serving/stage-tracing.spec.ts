// Spans of two stage runners wired into a ring with connection doubles and engine doubles: every
// sampled token's frames get a forward span per stage and hop spans, parented to the token span
// named in the frame; the last stage derives the next token's span id and sampling (every:2 here)
// and the TOKEN_OUT frames carry them; untraced frames make no spans and stay untraced. With a
// metrics endpoint, the stages count forwards, rows and hops.
import { describe, expect, it } from 'vitest';
import { FrameFlags, FrameKind, PayloadDType, emptyFrameHeader, type FrameHeader, type Plan } from '@baton/contracts';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Tracing, frameTraceOf, isSampledFrame, nextTokenSpanId, startMetricsServer, toHex, fromHex } from '@baton/telemetry';
import { StageRunner, type StageEngine } from './stage-runner.js';
import type { StageRole } from './frames.js';

const WIDTH = 4;

function engine(last: boolean): StageEngine {
  return {
    info: { embeddingLength: WIDTH, maxBatchTokens: 512, maxContext: 1024 },
    forward: async (request: { sequences: { tokenCount: number }[] }) => {
      const rows = request.sequences.reduce((n, s) => n + s.tokenCount, 0);
      return last ? { tokens: Int32Array.from(request.sequences.map(() => 7)) } : { hidden: new Float32Array(rows * WIDTH) };
    },
    kv: { free: async () => undefined },
  } as unknown as StageEngine;
}

const stages = [{ nodeId: 'a', layerStart: 0, layerEnd: 2 }, { nodeId: 'b', layerStart: 2, layerEnd: 4 }];
const plan = { planId: 'p', version: 1, modelId: 'm', stages } as unknown as Plan;
const roles: StageRole[] = [
  { index: 0, stage: stages[0] as never, first: true, last: false, next: stages[1] as never },
  { index: 1, stage: stages[1] as never, first: false, last: true, next: stages[0] as never },
];

function ring(tracing: Tracing | undefined) {
  const s0 = new StageRunner(plan, roles[0]!, engine(false), new Set());
  const s1 = new StageRunner(plan, roles[1]!, engine(true), new Set());
  s0.tracing = tracing;
  s1.tracing = tracing;
  const copy = (payload: ArrayBufferView) => Buffer.from(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength));
  s0.next = { send: (h: FrameHeader, p: ArrayBufferView) => (s1.accept(undefined, h, copy(p)), true) } as never;
  s1.next = { send: (h: FrameHeader, p: ArrayBufferView) => (s0.accept(undefined, h, copy(p)), true) } as never;
  const out: FrameHeader[] = [];
  const gateway = { send: (h: FrameHeader) => (out.push(h), true), once: () => undefined } as never;
  const subscribe = Buffer.from(JSON.stringify({ op: 'subscribe' }));
  s1.accept(gateway, { ...emptyFrameHeader(FrameKind.CONTROL), dtype: PayloadDType.U8, width: 1, tokenCount: subscribe.length, payloadLength: subscribe.length }, subscribe);
  return { s0, out };
}

function prompt(trace: Partial<FrameHeader>): [FrameHeader, Buffer] {
  const payload = Buffer.from(Int32Array.of(1, 2, 3).buffer);
  return [{ ...emptyFrameHeader(FrameKind.TOKENS), ...trace, sequenceId: 9, tokenCount: 3, dtype: PayloadDType.I32, width: 1, payloadLength: 12, maxTokens: 5, flags: FrameFlags.LAST_CHUNK }, payload];
}

async function until(fn: () => boolean): Promise<void> {
  while (!fn()) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('stage spans', () => {
  it('parents forward and hop spans to the sampled tokens\' spans, deriving them round the ring', async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = new Tracing({ serviceName: 'baton-shard', sample: { kind: 'every', n: 2 }, processor: new SimpleSpanProcessor(exporter) });
    const { s0, out } = ring(tracing);
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const token1 = 'b7ad6b7169203331';
    s0.accept(undefined, ...prompt(frameTraceOf({ traceId, spanId: token1, traceFlags: 1 }, true, 2)));
    await until(() => out.length === 5);

    // TOKEN_OUT k names token k's span: a hash chain from token 1's; tokens 1, 3, 5 sampled
    const expected = [fromHex(token1, 8)];
    for (let k = 1; k < 5; k++) expected.push(nextTokenSpanId(fromHex(traceId, 16), expected[k - 1]!));
    expect(out.map((h) => toHex(h.spanId))).toEqual(expected.map(toHex));
    expect(out.map((h) => toHex(h.traceId))).toEqual(Array(5).fill(traceId));
    expect(out.map((h) => isSampledFrame(h))).toEqual([true, false, true, false, true]);

    const spans = exporter.getFinishedSpans();
    const sampledIds = [0, 2, 4].map((k) => toHex(expected[k]!));
    for (const id of sampledIds) {
      const children = spans.filter((s) => s.parentSpanContext?.spanId === id);
      expect(children.every((s) => s.spanContext().traceId === traceId)).toBe(true);
      const names = children.map((s) => s.name).sort();
      expect(names).toContain('forward stage 0');
      expect(names).toContain('forward stage 1');
      expect(names).toContain('hop stage 0 → stage 1');
      expect(names).toContain('hop stage 1 → gateway');
    }
    // unsampled tokens (2, 4) have no spans; the ring hops carrying tokens 3 and 5 belong to them
    for (const k of [1, 3]) expect(spans.filter((s) => s.parentSpanContext?.spanId === toHex(expected[k]!))).toEqual([]);
    expect(spans.filter((s) => s.name === 'hop stage 1 → stage 0').map((s) => s.parentSpanContext?.spanId)).toEqual([sampledIds[1], sampledIds[2]]);
    const forward = spans.find((s) => s.name === 'forward stage 1' && s.parentSpanContext?.spanId === sampledIds[0])!;
    expect(forward.attributes).toMatchObject({ 'baton.node': 'b', 'baton.stage': 1, 'baton.layer_start': 2, 'baton.layer_end': 4, 'baton.rows': 3, 'baton.batch.sequences': 1, 'baton.position': 0 });
    const hop = spans.find((s) => s.name === 'hop stage 0 → stage 1' && s.parentSpanContext?.spanId === sampledIds[0])!;
    expect(hop.attributes).toMatchObject({ 'baton.hop.bytes': 3 * WIDTH * 4, 'baton.hop.kind': 'HIDDEN', 'baton.hop.receivers': 1 });
    expect(spans.filter((s) => s.name.startsWith('forward'))).toHaveLength(6);
  });

  it('makes no spans for untraced frames, and they stay untraced round the ring', async () => {
    const exporter = new InMemorySpanExporter();
    const { s0, out } = ring(new Tracing({ serviceName: 'baton-shard', sample: { kind: 'all' }, processor: new SimpleSpanProcessor(exporter) }));
    s0.accept(undefined, ...prompt({}));
    await until(() => out.length === 5);
    expect(exporter.getFinishedSpans()).toEqual([]);
    expect(out.every((h) => h.traceFlags === 0 && h.spanId.every((b) => b === 0))).toBe(true);
  });

  it('carries the trace round the ring even where this process does not trace', async () => {
    const { s0, out } = ring(undefined);
    s0.accept(undefined, ...prompt(frameTraceOf({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 }, true, 1)));
    await until(() => out.length === 5);
    expect(new Set(out.map((h) => toHex(h.spanId))).size).toBe(5);
    expect(out.every((h) => isSampledFrame(h))).toBe(true);
  });
});

describe('stage metrics', () => {
  it('count forwards, rows, sampled tokens and hops per stage when the shard serves /metrics', async () => {
    const server = await startMetricsServer({ port: 0, host: '127.0.0.1' });
    try {
      const { s0, out } = ring(undefined);
      s0.accept(undefined, ...prompt({}));
      await until(() => out.length === 5);
      const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
      const value = (series: string) => Number(text.split('\n').find((l) => l.startsWith(`${series} `))?.split(' ')[1]);
      // 3 prompt rows, then 4 decode tokens fed back round the ring
      expect(value('baton_stage_forward_rows_total{stage="0"}')).toBe(7);
      expect(value('baton_stage_forward_rows_total{stage="1"}')).toBe(7);
      expect(value('baton_stage_forward_seconds_count{stage="1"}')).toBe(5);
      expect(value('baton_stage_sampled_tokens_total{stage="1"}')).toBe(5);
      expect(value('baton_stage_hop_bytes_total{stage="0",kind="HIDDEN"}')).toBe(7 * WIDTH * 4);
      expect(value('baton_stage_hop_frames_total{stage="1",kind="TOKEN_OUT"}')).toBe(5);
      expect(value('baton_stage_hop_frames_total{stage="1",kind="TOKENS"}')).toBe(4);
      expect(value('baton_stage_queue_depth{stage="0"}')).toBe(0);
    } finally {
      await server.close();
    }
  });
});
