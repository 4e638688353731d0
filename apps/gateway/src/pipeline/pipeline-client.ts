// The gateway's view of the data plane: start a generation on a model's current plan and get
// its token ids back as they are sampled. The HTTP layer (controllers, SSE, tokenizer, chat
// template) depends only on this abstract class; the real implementation (pipeline.client.ts,
// written by the lead) speaks frames over the native transport to the shards.
export type FinishReason = 'stop' | 'length' | 'cancelled' | 'error';

export interface GenerationSampling {
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  presencePenalty: number;
  frequencyPenalty: number;
  repetitionPenalty: number;
  seed: bigint;
}

export interface GenerateRequest {
  modelId: string;
  /** Prompt token ids exactly as they enter the model (BOS etc. already added). */
  promptTokens: number[];
  /** Generate at most this many tokens (≥ 1). */
  maxTokens: number;
  sampling: GenerationSampling;
  /** Aborting stops the sequence in every stage (STOP frame) and frees its KV. */
  signal?: AbortSignal;
  /** W3C trace context to carry in frame headers (optional). */
  traceparent?: string;
}

export type GenerationEvent =
  | { type: 'token'; tokenId: number }
  /** The last event. `stop` = an end-of-generation token was sampled (not yielded as a token). */
  | { type: 'done'; finishReason: FinishReason; promptTokens: number; completionTokens: number; cachedTokens: number; error?: string };

export interface ModelReadiness {
  ready: boolean;
  /** Why not, in words for a 503 body ("no plan: the cluster has no node with 2.1 GB free", "loading 40%"). */
  reason?: string;
}

export interface ServedModel {
  modelId: string;
  modelPath: string;
  contextLength: number;
  /** Plan version currently served. */
  planVersion: number;
}

export abstract class PipelineClient {
  /** Models with a current plan (ready or not). */
  abstract models(): ServedModel[];
  abstract readiness(modelId: string): ModelReadiness;
  /** Streams the generation's events; the iterator ends after the `done` event. */
  abstract generate(request: GenerateRequest): AsyncIterable<GenerationEvent>;
}
