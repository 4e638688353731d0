// The engine on its own: chained layer ranges, several sequences per call, the KV pool
// operations, sampling, memory reports and argument checking.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, EngineError, LocalPipeline, parseSplit } from '../src/index.js';
import { ModelDir, PROMPT, maxAbsDiff, softmax } from './helpers.js';

let models: ModelDir;
let q8: string;
let f32: string;

beforeAll(async () => {
  models = new ModelDir();
  q8 = await models.model({ arch: 'qwen2', type: 'q8_0' });
  f32 = await models.model({ arch: 'llama', type: 'f32' });
});

afterAll(() => models?.remove());

/** Prefill PROMPT then `steps` greedy steps for two sequences in one call each time; all logits. */
async function run(p: LocalPipeline, steps: number): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  const a = PROMPT;
  const b = PROMPT.slice(0, 5).reverse();
  let r = await p.forward({
    sequences: [
      { sequenceId: 1, firstPosition: 0, tokenCount: a.length },
      { sequenceId: 2, firstPosition: 0, tokenCount: b.length },
    ],
    tokens: [...a, ...b],
    output: 'logits',
  });
  out.push(r.logits!.slice());
  const vocab = p.last.info.vocabSize;
  const pos = [a.length, b.length];
  for (let s = 0; s < steps; s++) {
    const next = [0, 1].map((i) => {
      let best = 0;
      for (let t = 1; t < vocab; t++) if (r.logits![i * vocab + t]! > r.logits![i * vocab + best]!) best = t;
      return best;
    });
    r = await p.forward({
      sequences: [
        { sequenceId: 1, firstPosition: pos[0]!, tokenCount: 1 },
        { sequenceId: 2, firstPosition: pos[1]!, tokenCount: 1 },
      ],
      tokens: next,
      output: 'logits',
    });
    pos[0]!++;
    pos[1]!++;
    out.push(r.logits!.slice());
  }
  return out;
}

describe('chained layer ranges', () => {
  it('[0,k) + [k,n) gives exactly the logits of [0,n)', async () => {
    const whole = await LocalPipeline.load({ model: q8 });
    const expected = await run(whole, 6);
    await whole.close();
    for (const split of ['0:1,1:3', '0:2,2:3', '0:1,1:2,2:3']) {
      const chained = await LocalPipeline.load({ model: q8 }, parseSplit(split, 3));
      const got = await run(chained, 6);
      await chained.close();
      for (let i = 0; i < expected.length; i++) expect(Array.from(got[i]!)).toEqual(Array.from(expected[i]!));
    }
  });

  it('later stages take hidden states and refuse token ids', async () => {
    const stage = await Engine.load({ model: q8, layerStart: 1, layerEnd: 3 });
    await expect(stage.forward({ sequences: [{ sequenceId: 0, firstPosition: 0, tokenCount: 1 }], tokens: [1] })).rejects.toThrow(/first stage/);
    const first = await Engine.load({ model: q8, layerStart: 0, layerEnd: 1 });
    await expect(first.forward({ sequences: [{ sequenceId: 0, firstPosition: 0, tokenCount: 1 }], tokens: [1], output: 'logits' })).rejects.toThrow(/last stage/);
    expect(first.info.layerEnd).toBe(1);
    await Promise.all([stage.close(), first.close()]);
  });

  it('parseSplit refuses gaps and wrong ends', () => {
    expect(parseSplit('0:5,5:12', 12)).toEqual([{ start: 0, end: 5 }, { start: 5, end: 12 }]);
    expect(() => parseSplit('0:5,6:12', 12)).toThrow(/contiguous/);
    expect(() => parseSplit('0:5', 12)).toThrow(/12 layers/);
    expect(() => parseSplit('a:b', 12)).toThrow(/START:END/);
  });
});

describe('batching and outputs', () => {
  it('two sequences in one call match each run alone', async () => {
    const engine = await Engine.load({ model: f32, kvDType: 'f32' });
    const a = PROMPT, b = PROMPT.slice(3);
    const both = await engine.forward({
      sequences: [
        { sequenceId: 1, firstPosition: 0, tokenCount: a.length },
        { sequenceId: 2, firstPosition: 0, tokenCount: b.length },
      ],
      tokens: [...a, ...b],
    });
    const alone = await engine.forward({ sequences: [{ sequenceId: 3, firstPosition: 0, tokenCount: b.length }], tokens: b });
    const vocab = engine.info.vocabSize;
    expect(maxAbsDiff(both.logits!.subarray(vocab), alone.logits!)).toBeLessThan(1e-4);
    await engine.close();
  });

  it('hidden output goes into a caller buffer view; all-logits has one row per token', async () => {
    const first = await Engine.load({ model: f32, layerEnd: 2 });
    const dim = first.info.embeddingLength;
    const backing = Buffer.alloc(16 + PROMPT.length * dim * 4);
    const view = new Float32Array(backing.buffer, backing.byteOffset + 16, PROMPT.length * dim);
    const r = await first.forward({ sequences: [{ sequenceId: 0, firstPosition: 0, tokenCount: PROMPT.length }], tokens: PROMPT, hiddenOut: view });
    expect(r.hidden).toBe(view);
    expect(view.some((x) => x !== 0)).toBe(true);
    const last = await Engine.load({ model: f32, layerStart: 2 });
    const all = await last.forward({ sequences: [{ sequenceId: 0, firstPosition: 0, tokenCount: PROMPT.length }], hidden: view, output: 'all-logits' });
    expect(all.logits!.length).toBe(PROMPT.length * last.info.vocabSize);
    await Promise.all([first.close(), last.close()]);
  });

  it('two threads give the same logits as one', async () => {
    const one = await Engine.load({ model: q8, threads: 1 });
    const two = await Engine.load({ model: q8, threads: 2 });
    const req = { sequences: [{ sequenceId: 0, firstPosition: 0, tokenCount: PROMPT.length }, { sequenceId: 1, firstPosition: 0, tokenCount: 3 }], tokens: [...PROMPT, 5, 6, 7] };
    const a = await one.forward(req);
    const b = await two.forward(req);
    expect(maxAbsDiff(a.logits!, b.logits!)).toBeLessThan(1e-5);
    await Promise.all([one.close(), two.close()]);
  });

  it('chunks inputs longer than maxBatchTokens with the same result', async () => {
    const small = await Engine.load({ model: f32, kvDType: 'f32', maxBatchTokens: 5 });
    const big = await Engine.load({ model: f32, kvDType: 'f32' });
    const req = { sequences: [{ sequenceId: 0, firstPosition: 0, tokenCount: PROMPT.length }], tokens: PROMPT };
    const a = await small.forward(req);
    const b = await big.forward(req);
    expect(maxAbsDiff(a.logits!, b.logits!)).toBeLessThan(1e-4);
    await Promise.all([small.close(), big.close()]);
  });
});

describe('KV pool', () => {
  it('allocate, extend, truncate, copyPrefix, free and stats', async () => {
    const engine = await Engine.load({ model: f32, kvDType: 'f32', kvTokens: 64 });
    await engine.kv.allocate(5, 20);
    let st = await engine.kv.stats();
    expect(st.blocksTotal).toBe(4);
    expect(st.blockTokens).toBe(16);
    expect(st.blocksUsed).toBe(2);
    expect(st.sequences).toEqual([{ sequenceId: 5, tokens: 0, capacity: 32, blocks: 2 }]);
    await expect(engine.kv.allocate(5, 1)).rejects.toThrow(/already exists/);
    await engine.kv.extend(5, 40);
    expect((await engine.kv.stats()).blocksUsed).toBe(3);
    await expect(engine.kv.extend(6, 64)).rejects.toThrow(/out of blocks/);
    await engine.kv.free(5);
    expect((await engine.kv.stats()).blocksUsed).toBe(0);
    await expect(engine.kv.free(5)).rejects.toThrow(/unknown sequence/);

    // Reference logits for PROMPT, then for PROMPT[0..8) + a different tail.
    const full = await engine.forward({ sequences: [{ sequenceId: 1, firstPosition: 0, tokenCount: PROMPT.length }], tokens: PROMPT });
    // truncate to 8 and re-run the tail: same logits as in one go.
    await engine.kv.truncate(1, 8);
    expect((await engine.kv.stats()).sequences[0]).toMatchObject({ sequenceId: 1, tokens: 8, blocks: 1 });
    const tail = await engine.forward({ sequences: [{ sequenceId: 1, firstPosition: 8, tokenCount: PROMPT.length - 8 }], tokens: PROMPT.slice(8) });
    expect(maxAbsDiff(tail.logits!, full.logits!)).toBeLessThan(1e-5);
    // copyPrefix: sequence 2 reuses 8 positions of sequence 1 and prefills only the rest.
    await engine.kv.copyPrefix(2, 1, 8);
    const reused = await engine.forward({ sequences: [{ sequenceId: 2, firstPosition: 8, tokenCount: PROMPT.length - 8 }], tokens: PROMPT.slice(8) });
    expect(maxAbsDiff(reused.logits!, full.logits!)).toBeLessThan(1e-5);
    await expect(engine.kv.copyPrefix(3, 1, 99)).rejects.toThrow(/holds 12/);
    // A position past the sequence's length is refused; so is running out of blocks in a forward.
    await expect(engine.forward({ sequences: [{ sequenceId: 2, firstPosition: 20, tokenCount: 1 }], tokens: [1] })).rejects.toThrow(/at most 12/);
    await expect(engine.forward({ sequences: [{ sequenceId: 9, firstPosition: 0, tokenCount: 60 }], tokens: new Array(60).fill(1) })).rejects.toThrow(/out of blocks/);
    const mem = await engine.memory();
    expect(mem.kvPoolBytes).toBe((await engine.kv.stats()).poolBytes);
    expect(mem.weightsMappedBytes).toBeGreaterThan(0);
    expect(mem.weightsResidentBytes).toBeLessThanOrEqual(mem.weightsMappedBytes);
    expect(mem.scratchBytes).toBeGreaterThan(0);
    await engine.close();
  });

  // Random-weight models are sensitive: llama.cpp's own next-token probabilities move by ~0.02
  // between its f32 and f16 KV caches on these files. The bounds are a few times that.
  it.each(['f16', 'q8_0'] as const)('a %s KV cache stays close to f32', async (kvDType) => {
    const path = await models.model({ arch: 'llama', type: 'q4_k' });
    const exact = await Engine.load({ model: path, kvDType: 'f32' });
    const other = await Engine.load({ model: path, kvDType });
    const req = { sequences: [{ sequenceId: 0, firstPosition: 0, tokenCount: PROMPT.length }], tokens: PROMPT };
    const a = await exact.forward(req);
    const b = await other.forward(req);
    const diff = maxAbsDiff(softmax(a.logits!), softmax(b.logits!));
    expect(diff).toBeGreaterThan(0);
    expect(diff).toBeLessThan(kvDType === 'f16' ? 0.05 : 0.1);
    expect((await other.kv.stats()).dtype).toBe(kvDType);
    await Promise.all([exact.close(), other.close()]);
  });

  it('a q8_0 KV cache needs head sizes that are multiples of 32', async () => {
    await expect(Engine.load({ model: f32, kvDType: 'q8_0' })).rejects.toThrow(/multiple of 32/);
  });
});

describe('sampling', () => {
  async function generate(engine: Engine, sampling: Record<string, number>, n = 12): Promise<number[]> {
    const seq = Math.floor(Math.random() * 1e6);
    const tokens: number[] = [];
    let input = PROMPT;
    let pos = 0;
    for (let i = 0; i < n; i++) {
      const r = await engine.forward({ sequences: [{ sequenceId: seq, firstPosition: pos, tokenCount: input.length, sampling }], tokens: input, output: 'sample' });
      pos += input.length;
      input = [r.tokens![0]!];
      tokens.push(r.tokens![0]!);
    }
    await engine.kv.free(seq);
    return tokens;
  }

  it('repeats exactly per seed and varies across seeds', async () => {
    const engine = await Engine.load({ model: f32 });
    const params = { temperature: 1.5, topK: 50, topP: 0.95, minP: 0.01, seed: 42 };
    const a = await generate(engine, params);
    const b = await generate(engine, params);
    expect(a).toEqual(b);
    const c = await generate(engine, { ...params, seed: 43 });
    expect(c).not.toEqual(a);
    await engine.close();
  });

  it('top-k 1 and a tiny top-p are greedy; penalties exclude seen tokens', async () => {
    const engine = await Engine.load({ model: f32 });
    const greedy = await generate(engine, {});
    expect(await generate(engine, { temperature: 2, topK: 1, seed: 3 })).toEqual(greedy);
    expect(await generate(engine, { temperature: 2, topP: 1e-6, seed: 3 })).toEqual(greedy);
    // A huge presence penalty forbids every token already in the sequence (prompt included).
    const penalized = await generate(engine, { presencePenalty: 100 });
    const seen = new Set(PROMPT);
    for (const t of penalized) {
      expect(seen.has(t)).toBe(false);
      seen.add(t);
    }
    // With penaltyLastN 0 the penalties look at nothing: greedy again.
    expect(await generate(engine, { presencePenalty: 100, repetitionPenalty: 5, penaltyLastN: 0 })).toEqual(greedy);
    await engine.close();
  });
});

describe('argument checks', () => {
  it('refuses bad options with EngineError messages', async () => {
    await expect(Engine.load({ model: '/nonexistent.gguf' })).rejects.toThrow(/cannot open/);
    await expect(Engine.load({ model: f32, layerStart: 2, layerEnd: 9 })).rejects.toThrow(/not inside the model's 3 layers/);
    await expect(Engine.load({ model: f32, kvDType: 'q4' as never })).rejects.toThrow(EngineError);
    const engine = await Engine.load({ model: f32 });
    await expect(engine.forward({ sequences: [] })).rejects.toThrow(/at least one sequence/);
    await expect(engine.forward({ sequences: [{ sequenceId: 0, firstPosition: 0, tokenCount: 2 }], tokens: [1] })).rejects.toThrow(/holds 1 ids/);
    await expect(engine.forward({ sequences: [{ sequenceId: 0, firstPosition: 0, tokenCount: 1 }], tokens: [99999] })).rejects.toThrow(/outside the vocabulary/);
    await expect(
      engine.forward({
        sequences: [
          { sequenceId: 0, firstPosition: 0, tokenCount: 1 },
          { sequenceId: 0, firstPosition: 0, tokenCount: 1 },
        ],
        tokens: [1, 2],
      }),
    ).rejects.toThrow(/twice/);
    await expect(engine.forward({ sequences: [{ sequenceId: 0, firstPosition: 0, tokenCount: 1 }], hidden: new Float32Array(3) })).rejects.toThrow(/hidden holds 3 floats/);
    const rate = await engine.measureComputeRate(2);
    expect(rate.bytesPerSec).toBeGreaterThan(0);
    expect(engine.computeBytesPerSec).toBe(rate.bytesPerSec);
    expect((await engine.kv.stats()).sequences).toEqual([]);
    await engine.close();
    await expect(engine.kv.stats()).rejects.toThrow(/closed/);
  });
});
