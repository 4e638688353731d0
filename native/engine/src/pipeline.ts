// Several engines in one process, one per contiguous layer range, chained: what `baton generate
// --split` and the chained-range tests run. Each call flows stage by stage (the hidden states of
// one stage are the next one's input); KV operations go to every stage.
import { Engine, EngineError, type EngineOptions, type ForwardRequest, type ForwardResult } from './engine.js';

export interface LayerRange {
  start: number;
  end: number;
}

/** Parses "0:5,5:12" into ranges; they must tile [0, layers) in order. */
export function parseSplit(text: string, layers: number): LayerRange[] {
  const ranges = text.split(',').map((part) => {
    const m = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(part);
    if (!m) throw new EngineError(`split part "${part}" is not START:END (e.g. 0:5,5:12)`);
    return { start: Number(m[1]), end: Number(m[2]) };
  });
  let next = 0;
  for (const r of ranges) {
    if (r.start !== next) throw new EngineError(`split ranges must be contiguous from 0: expected a range starting at ${next}, got ${r.start}:${r.end}`);
    if (r.end <= r.start) throw new EngineError(`split range ${r.start}:${r.end} is empty`);
    next = r.end;
  }
  if (next !== layers) throw new EngineError(`split ranges end at layer ${next} but the model has ${layers} layers`);
  return ranges;
}

export class LocalPipeline {
  private constructor(readonly stages: Engine[]) {}

  /** Loads one engine per range (all layers in one engine when `ranges` is omitted). */
  static async load(options: EngineOptions, ranges?: LayerRange[]): Promise<LocalPipeline> {
    const stages: Engine[] = [];
    try {
      if (!ranges || ranges.length === 0) {
        stages.push(await Engine.load(options));
      } else {
        for (const r of ranges) stages.push(await Engine.load({ ...options, layerStart: r.start, layerEnd: r.end }));
      }
    } catch (error) {
      await Promise.all(stages.map((s) => s.close()));
      throw error;
    }
    return new LocalPipeline(stages);
  }

  get first(): Engine {
    return this.stages[0]!;
  }

  get last(): Engine {
    return this.stages[this.stages.length - 1]!;
  }

  /** Token ids in, the last stage's output out (request.output applies to the last stage). */
  async forward(request: ForwardRequest): Promise<ForwardResult> {
    if (this.stages.length === 1) return this.first.forward(request);
    let hidden = (await this.first.forward({ sequences: request.sequences, tokens: request.tokens, hidden: request.hidden, output: 'hidden' })).hidden!;
    for (let i = 1; i < this.stages.length - 1; i++) {
      hidden = (await this.stages[i]!.forward({ sequences: request.sequences, hidden, output: 'hidden' })).hidden!;
    }
    return this.last.forward({
      sequences: request.sequences,
      hidden,
      history: request.history ?? request.tokens,
      output: request.output,
      hiddenOut: request.hiddenOut,
      logitsOut: request.logitsOut,
    });
  }

  async freeSequence(sequenceId: number): Promise<void> {
    await Promise.all(this.stages.map((s) => s.kv.free(sequenceId)));
  }

  async close(): Promise<void> {
    await Promise.all(this.stages.map((s) => s.close()));
  }
}
