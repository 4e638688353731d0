// A stage's decode speed as the pipeline runs it: single-token forwards issued from JS through
// the engine's async API (the worker-thread hand-off and the attention over a growing context
// included), on a scratch sequence that is freed afterwards. The native measurement
// (`Engine.measureComputeRate`) times only the kernels at position 0; on this project's test
// machine the pipeline's steps took 5–10% longer, and the planner's predictions were that much
// too optimistic.
import type { Engine } from '@baton/engine';

/** A sequence id no gateway or KV manager hands out (they count up from small numbers). */
export const SCRATCH_SEQUENCE_ID = 0xfffffff0;

export type RateEngine = Pick<Engine, 'info' | 'forward' | 'kv'>;

/**
 * Seconds of one decode step of this stage over `steps` steps after a 16-token prompt: the median,
 * or the fastest (when other processes may be slowing some steps down).
 */
export async function measureStageStep(engine: RateEngine, role: { first: boolean; last: boolean }, steps = 24, pick: 'median' | 'fastest' = 'median'): Promise<number> {
  const width = engine.info.embeddingLength;
  const output = role.last ? 'sample' : 'hidden';
  const sampling = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, seed: 0n };
  const input = (rows: number) => (role.first ? { tokens: new Int32Array(rows).fill(1) } : { hidden: new Float32Array(rows * width).fill(0.01) });
  const prompt = 16;
  const times: number[] = [];
  try {
    await engine.forward({ sequences: [{ sequenceId: SCRATCH_SEQUENCE_ID, firstPosition: 0, tokenCount: prompt, sampling }], ...input(prompt), output });
    for (let i = 0; i < steps; i++) {
      const started = performance.now();
      await engine.forward({ sequences: [{ sequenceId: SCRATCH_SEQUENCE_ID, firstPosition: prompt + i, tokenCount: 1, sampling }], ...input(1), output });
      times.push((performance.now() - started) / 1000);
    }
  } finally {
    await engine.kv.free(SCRATCH_SEQUENCE_ID).catch(() => undefined);
  }
  return pick === 'fastest' ? Math.min(...times) : median(times);
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}
