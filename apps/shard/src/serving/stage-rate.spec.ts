// The stage's step timing: single-token forwards at growing positions on a scratch sequence, the
// input and output each role takes, the scratch sequence freed even when a forward fails. (A test
// double of the engine; the real engine runs it in apps/cli/test/pipeline.test.ts.)
import { describe, expect, it } from 'vitest';
import { SCRATCH_SEQUENCE_ID, measureStageStep, median, type RateEngine } from './stage-rate.js';

function engine(fail = false) {
  const calls: { position: number; rows: number; tokens: boolean; output: string }[] = [];
  const freed: number[] = [];
  const double = {
    info: { embeddingLength: 8 },
    forward: async (request: { sequences: { sequenceId: number; firstPosition: number; tokenCount: number }[]; tokens?: Int32Array; hidden?: Float32Array; output: string }) => {
      const [sequence] = request.sequences;
      expect(sequence!.sequenceId).toBe(SCRATCH_SEQUENCE_ID);
      calls.push({ position: sequence!.firstPosition, rows: sequence!.tokenCount, tokens: request.tokens !== undefined, output: request.output });
      if (request.hidden) expect(request.hidden.length).toBe(sequence!.tokenCount * 8);
      if (fail && calls.length === 3) throw new Error('engine closed');
      return {};
    },
    kv: { free: async (id: number) => void freed.push(id) },
  };
  return { calls, freed, engine: double as unknown as RateEngine };
}

describe('measureStageStep', () => {
  it('times single-token steps after a prompt, with the input and output of the role', async () => {
    const first = engine();
    expect(await measureStageStep(first.engine, { first: true, last: false }, 5)).toBeGreaterThanOrEqual(0);
    expect(first.calls.map((c) => c.position)).toEqual([0, 16, 17, 18, 19, 20]);
    expect(first.calls.every((c) => c.tokens && c.output === 'hidden')).toBe(true);
    expect(first.freed).toEqual([SCRATCH_SEQUENCE_ID]);
    const last = engine();
    await measureStageStep(last.engine, { first: false, last: true }, 2);
    expect(last.calls.map((c) => [c.rows, c.tokens, c.output])).toEqual([[16, false, 'sample'], [1, false, 'sample'], [1, false, 'sample']]);
  });

  it('frees the scratch sequence when a forward fails', async () => {
    const failing = engine(true);
    await expect(measureStageStep(failing.engine, { first: true, last: true }, 5)).rejects.toThrow('engine closed');
    expect(failing.freed).toEqual([SCRATCH_SEQUENCE_ID]);
  });

  it('takes the median', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(3);
  });
});
