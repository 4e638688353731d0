// The stage runner's KV side with an engine double: every forward reports what each sequence now
// holds, STOP frees and reports it, and a CONTROL `release` ends the sequence but keeps its KV
// (idle — not active — until a frame uses it again), passed on to the next stage.
import { describe, expect, it } from 'vitest';
import { FrameFlags, FrameKind, KV_RELEASE_OP, PayloadDType, emptyFrameHeader, type FrameHeader, type Plan } from '@baton/contracts';
import { StageRunner, type StageEngine } from './stage-runner.js';
import type { StageRole } from './frames.js';

const WIDTH = 4;

function engineDouble() {
  const freed: number[] = [];
  const engine = {
    info: { embeddingLength: WIDTH, maxBatchTokens: 512, maxContext: 1024 },
    forward: async (request: { sequences: { tokenCount: number }[] }) => {
      const rows = request.sequences.reduce((n, s) => n + s.tokenCount, 0);
      return { hidden: new Float32Array(rows * WIDTH) };
    },
    kv: { free: async (id: number) => void freed.push(id) },
  } as unknown as StageEngine;
  return { engine, freed };
}

const stage = { nodeId: 'n1', layerStart: 0, layerEnd: 2 };
const role: StageRole = { index: 0, stage: stage as never, first: true, last: false, next: { ...stage, nodeId: 'n2' } as never };
const plan = { planId: 'p', version: 1, modelId: 'm', stages: [stage, { ...stage, nodeId: 'n2' }] } as unknown as Plan;

function tokens(sequenceId: number, firstPosition: number, ids: number[]): [FrameHeader, Buffer] {
  const payload = Buffer.from(Int32Array.from(ids).buffer);
  return [{ ...emptyFrameHeader(FrameKind.TOKENS), sequenceId, firstPosition, tokenCount: ids.length, dtype: PayloadDType.I32, width: 1, payloadLength: payload.length, flags: FrameFlags.LAST_CHUNK }, payload];
}

function control(sequenceId: number, op: string): [FrameHeader, Buffer] {
  const payload = Buffer.from(JSON.stringify({ op }));
  return [{ ...emptyFrameHeader(FrameKind.CONTROL), sequenceId, dtype: PayloadDType.U8, width: 1, tokenCount: payload.length, payloadLength: payload.length }, payload];
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

describe('StageRunner KV events', () => {
  it('reports stored after forwards, keeps KV on release, frees and reports on STOP', async () => {
    const { engine, freed } = engineDouble();
    const runner = new StageRunner(plan, role, engine, new Set());
    const events: string[] = [];
    runner.kvEvents = { stored: (id, n) => void events.push(`stored ${id} ${n}`), freed: (id) => void events.push(`freed ${id}`) };
    const sent: { header: FrameHeader; payload: Buffer | Float32Array }[] = [];
    runner.next = { send: (header: FrameHeader, payload: Buffer) => void sent.push({ header, payload }) } as never;

    runner.accept(undefined, ...tokens(3, 0, [1, 2, 3, 4, 5]));
    expect([...runner.activeSequences()]).toEqual([3]);
    await settle();
    runner.accept(undefined, ...tokens(3, 5, [6]));
    await settle();
    expect(events).toEqual(['stored 3 5', 'stored 3 6']);

    runner.accept(undefined, ...control(3, KV_RELEASE_OP));
    expect(freed).toEqual([]);
    expect([...runner.activeSequences()]).toEqual([]);
    expect(JSON.parse(Buffer.from(sent.at(-1)!.payload as Buffer).toString())).toEqual({ op: KV_RELEASE_OP });
    expect(sent.at(-1)!.header.sequenceId).toBe(3);

    // Reused in place: a frame for it makes it busy again.
    runner.accept(undefined, ...tokens(3, 4, [9, 9]));
    await settle();
    expect([...runner.activeSequences()]).toEqual([3]);
    expect(events.at(-1)).toBe('stored 3 6');

    runner.accept(undefined, { ...emptyFrameHeader(FrameKind.CONTROL), sequenceId: 3, flags: FrameFlags.STOP }, Buffer.alloc(0));
    await settle();
    expect(freed).toEqual([3]);
    expect([...runner.activeSequences()]).toEqual([]);
    expect(events.at(-1)).toBe('freed 3');
    expect(sent.at(-1)!.header.flags & FrameFlags.STOP).toBeTruthy();
  });
});
