// A test double of PipelineClient: deterministic token ids instead of a model. The prompt is
// decoded and the text after the last "say:" (up to ";") is what the "model" answers, one byte
// token per UTF-8 byte (so multi-byte characters always span several tokens), then an
// end-of-generation stop. "forever" answers "x" until aborted or max_tokens.
import { byteToUnicode } from '@baton/gguf';
import type { Tokenizer } from '@baton/tokenizer';
import { PipelineClient, type GenerateRequest, type GenerationEvent, type ModelReadiness, type ServedModel } from '../src/pipeline/pipeline-client.js';

export interface FakeModel extends ServedModel {
  ready: boolean;
  reason?: string;
}

export class FakePipeline extends PipelineClient {
  readonly requests: GenerateRequest[] = [];
  /** Generations whose signal was aborted, with the number of tokens sent before. */
  readonly aborted: { request: GenerateRequest; tokensSent: number }[] = [];
  active = 0;
  /** Delay between tokens (ms). */
  tokenDelayMs = 1;
  private readonly byteTokens: number[];

  constructor(
    private readonly served: FakeModel[],
    private readonly tokenizer: Tokenizer,
  ) {
    super();
    const table = byteToUnicode();
    this.byteTokens = table.map((ch, b) => {
      const id = tokenizer.tokenId(ch);
      if (id === undefined) throw new Error(`no byte token for ${b}`);
      return id;
    });
  }

  models(): ServedModel[] {
    return this.served.map(({ modelId, modelPath, contextLength, planVersion }) => ({ modelId, modelPath, contextLength, planVersion }));
  }

  readiness(modelId: string): ModelReadiness {
    const m = this.served.find((s) => s.modelId === modelId);
    if (!m) return { ready: false, reason: 'unknown model' };
    return m.ready ? { ready: true } : { ready: false, reason: m.reason ?? 'loading' };
  }

  /** The answer script for a prompt. */
  script(promptTokens: number[]): { bytes: number[]; forever: boolean } {
    const prompt = this.tokenizer.decode(promptTokens, { special: true });
    if (prompt.includes('forever')) return { bytes: [], forever: true };
    const at = prompt.lastIndexOf('say:');
    const said = at < 0 ? 'hello' : prompt.slice(at + 4).split(';')[0]!;
    return { bytes: [...Buffer.from(said, 'utf8')], forever: false };
  }

  async *generate(request: GenerateRequest): AsyncIterable<GenerationEvent> {
    this.requests.push(request);
    this.active++;
    const { bytes, forever } = this.script(request.promptTokens);
    let sent = 0;
    const done = (finishReason: 'stop' | 'length' | 'cancelled'): GenerationEvent => ({
      type: 'done', finishReason, promptTokens: request.promptTokens.length, completionTokens: sent, cachedTokens: 3,
    });
    try {
      for (;;) {
        await new Promise((r) => setTimeout(r, this.tokenDelayMs));
        if (request.signal?.aborted) {
          this.aborted.push({ request, tokensSent: sent });
          yield done('cancelled');
          return;
        }
        if (!forever && sent >= bytes.length) {
          yield done('stop');
          return;
        }
        if (sent >= request.maxTokens) {
          yield done('length');
          return;
        }
        const id = forever ? this.byteTokens[0x78]! : this.byteTokens[bytes[sent]!]!;
        sent++;
        yield { type: 'token', tokenId: id };
      }
    } finally {
      this.active--;
    }
  }
}
