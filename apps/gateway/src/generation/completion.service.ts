// Chat and text completions: validate the request, resolve the model, render its chat template,
// tokenize, check the context, then drive the generation through the pipeline and turn token ids
// back into text (incremental UTF-8 decoding, stop strings cut out). Streaming and non-streaming
// responses both consume `run()`.
import { randomBytes, randomUUID } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import {
  ChatCompletionRequestDto, CompletionRequestDto, validateDto,
  type ChatMessageDto, type CompletionUsage, type OpenAIFinishReason, type SamplingRequestDto,
} from '@baton/contracts';
import type { ChatMessage } from '@baton/tokenizer';
import { PipelineClient, type GenerationEvent, type GenerationSampling, type ServedModel } from '../pipeline/pipeline-client.js';
import { OpenAIHttpError, toOpenAIError } from '../http/openai-error.js';
import { ModelsService } from '../models/models.service.js';
import { findLocalModel } from '../models/local-models.js';
import { ModelTextCache, type ModelText } from './model-text.js';
import { StopMatcher } from './stop-matcher.js';
import { GatewayTelemetry } from '../telemetry/gateway-telemetry.js';
import type { GenerationOutcome } from '../telemetry/gateway-metrics.js';

/** max_tokens when the request omits it and no context length is known for the model. */
export const FALLBACK_MAX_TOKENS = 2048;
/** How long to wait for the pipeline's final event after cancelling it for a stop string. */
const DRAIN_AFTER_STOP_MS = 2000;

export interface PreparedGeneration {
  /** chatcmpl-… or cmpl-… */
  id: string;
  kind: 'chat' | 'text';
  /** Unix seconds. */
  created: number;
  model: string;
  stream: boolean;
  includeUsage: boolean;
  promptTokens: number[];
  maxTokens: number;
  contextLength: number | null;
  sampling: GenerationSampling;
  stops: string[];
  text: ModelText;
}

export type TextEvent =
  | { type: 'text'; text: string }
  | { type: 'end'; finishReason: OpenAIFinishReason; usage: CompletionUsage };

/** Rewrites class-validator's wording for unknown fields. */
function problemText(problem: string): string {
  return problem.replace(/^(?:(\S+): )?property (\S+) should not exist$/, (_m, at: string | undefined, name: string) => `${at ?? name}: unknown field (remove it)`);
}

function paramOf(problem: string): string | null {
  const m = /^([A-Za-z0-9_.]+)[: ]/.exec(problem);
  return m ? m[1]! : null;
}

const TYPE_PROBLEM = /must be (?:a number|an integer|a boolean|a string|an array|an object)/;

/** Per field: a wrong type alone (its range checks would only repeat it), else every problem. */
function tidyProblems(problems: string[]): string[] {
  const texts = problems.map(problemText).map((p) => p.replace(/^(\S+): (?:each value in )?nested property \S+ must be either object or array$/, '$1 must be an object'));
  const byField = new Map<string, string[]>();
  for (const p of texts) {
    const field = paramOf(p) ?? '';
    byField.set(field, [...(byField.get(field) ?? []), p]);
  }
  return [...byField.values()].flatMap((list) => {
    const typed = list.filter((p) => TYPE_PROBLEM.test(p));
    return typed.length > 0 ? typed : list;
  });
}

export function validationError(problems: string[]): OpenAIHttpError {
  const texts = tidyProblems(problems);
  const message = texts.length === 1 ? `invalid request: ${texts[0]}` : `invalid request (${texts.length} problems): ${texts.join('; ')}`;
  return new OpenAIHttpError(400, message, 'invalid_request_error', paramOf(texts[0] ?? ''), 'invalid_request');
}

function contentText(content: ChatMessageDto['content']): string {
  return typeof content === 'string' ? content : content.map((p) => p.text).join('\n');
}

@Injectable()
export class CompletionService {
  private readonly logger = new Logger('Completions');

  constructor(
    private readonly pipeline: PipelineClient,
    private readonly texts: ModelTextCache,
    private readonly localModels: ModelsService,
    readonly telemetry: GatewayTelemetry,
  ) {}

  async prepareChat(body: unknown): Promise<PreparedGeneration> {
    const checked = validateDto(ChatCompletionRequestDto, body);
    if (!checked.ok) throw validationError(checked.problems);
    const request = checked.value;
    const served = await this.findModel(request.model);
    const text = await this.modelText(served);
    if ('error' in text.chatTemplate) throw new OpenAIHttpError(400, text.chatTemplate.error, 'invalid_request_error', 'messages', 'no_chat_template');
    const messages: ChatMessage[] = request.messages.map((m) => ({ role: m.role === 'developer' ? 'system' : m.role, content: contentText(m.content) }));
    let prompt: string;
    try {
      prompt = text.chatTemplate.render(messages, { addGenerationPrompt: true });
    } catch (error) {
      throw new OpenAIHttpError(400, (error as Error).message, 'invalid_request_error', 'messages', 'chat_template_error');
    }
    const promptTokens = text.tokenizer.encodePrompt(prompt);
    return this.finish('chat', request, request.max_completion_tokens ?? request.max_tokens ?? null, served, text, promptTokens);
  }

  async prepareText(body: unknown): Promise<PreparedGeneration> {
    const checked = validateDto(CompletionRequestDto, body);
    if (!checked.ok) throw validationError(checked.problems);
    const request = checked.value;
    const served = await this.findModel(request.model);
    const text = await this.modelText(served);
    const promptTokens = text.tokenizer.encodePrompt(request.prompt);
    if (promptTokens.length === 0) throw new OpenAIHttpError(400, 'prompt is empty: give at least one character of text', 'invalid_request_error', 'prompt', 'invalid_request');
    return this.finish('text', request, request.max_tokens ?? null, served, text, promptTokens);
  }

  /**
   * Runs a prepared generation: text deltas, then one `end` event. Returns without `end` when
   * `signal` aborts (the client went away); throws an OpenAIHttpError when the pipeline fails.
   */
  async *run(prepared: PreparedGeneration, signal: AbortSignal, traceparent?: string): AsyncGenerator<TextEvent> {
    const { tokenizer } = prepared.text;
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal.reason);
    if (signal.aborted) return;
    signal.addEventListener('abort', onAbort, { once: true });
    const decoder = tokenizer.decoder();
    const matcher = new StopMatcher(prepared.stops);
    let completionTokens = 0;
    let cachedTokens = 0;
    let finishReason: OpenAIFinishReason | null = null;
    let ended = false;
    let outcome = 'client disconnected';
    const startedAt = performance.now();
    let firstTokenAt: number | null = null;
    const meter = this.telemetry.generation(prepared.model, traceparent);
    let measured: GenerationOutcome = 'client_disconnected';
    const iterator = this.pipeline
      .generate({
        modelId: prepared.model,
        promptTokens: prepared.promptTokens,
        maxTokens: prepared.maxTokens,
        sampling: prepared.sampling,
        signal: controller.signal,
        ...(traceparent ? { traceparent } : {}),
      })
      [Symbol.asyncIterator]();
    try {
      for (;;) {
        let next: IteratorResult<GenerationEvent>;
        try {
          next = await iterator.next();
        } catch (error) {
          if (signal.aborted) return;
          throw toOpenAIError(error, 0);
        }
        if (signal.aborted) return;
        if (next.done) throw new OpenAIHttpError(502, 'the pipeline ended the generation without a final event', 'server_error', null, 'pipeline_error');
        const event = next.value;
        if (event.type === 'done') {
          ended = true;
          cachedTokens = event.cachedTokens;
          if (event.finishReason === 'stop' || event.finishReason === 'length') {
            finishReason = event.finishReason;
            break;
          }
          if (event.finishReason === 'cancelled') {
            throw new OpenAIHttpError(503, `the generation was cancelled by the cluster${event.error ? `: ${event.error}` : ''}; retry the request`, 'server_error', null, 'generation_cancelled');
          }
          throw new OpenAIHttpError(502, `the generation failed: ${event.error ?? 'unknown error in the pipeline'}`, 'server_error', null, 'pipeline_error');
        }
        if (tokenizer.isEog(event.tokenId)) {
          // the pipeline should end on an end-of-generation token itself; end here if it did not
          finishReason = 'stop';
          break;
        }
        completionTokens++;
        meter.token();
        firstTokenAt ??= performance.now();
        const piece = matcher.push(decoder.push(event.tokenId));
        if (piece.text) yield { type: 'text', text: piece.text };
        if (piece.stopped) {
          finishReason = 'stop';
          controller.abort(new Error('stop string'));
          cachedTokens = (await drain(iterator)) ?? cachedTokens;
          ended = true;
          break;
        }
        if (completionTokens >= prepared.maxTokens) {
          // the pipeline reports `length` next (with the cache figures); if it does not, it is
          // stopped when this generator ends
          finishReason = 'length';
          const done = await drain(iterator);
          if (done !== undefined) {
            cachedTokens = done;
            ended = true;
          }
          break;
        }
      }
      if (!matcher.stopped) {
        const tail = matcher.push(decoder.flush());
        const text = tail.text + matcher.flush();
        if (text) yield { type: 'text', text };
      }
      const promptCount = prepared.promptTokens.length;
      outcome = finishReason!;
      measured = finishReason === 'length' ? 'length' : 'stop';
      yield {
        type: 'end',
        finishReason: finishReason!,
        usage: {
          prompt_tokens: promptCount,
          completion_tokens: completionTokens,
          total_tokens: promptCount + completionTokens,
          prompt_tokens_details: { cached_tokens: cachedTokens },
        },
      };
    } catch (error) {
      outcome = `failed: ${(error as Error).message}`;
      measured = error instanceof OpenAIHttpError && error.code === 'generation_cancelled' ? 'cancelled' : 'error';
      throw error;
    } finally {
      this.logRequest(prepared, outcome, completionTokens, startedAt, firstTokenAt);
      meter.end(measured, prepared.promptTokens.length, cachedTokens);
      signal.removeEventListener('abort', onAbort);
      if (!ended) controller.abort(signal.aborted ? signal.reason : new Error('generation ended by the gateway'));
      void Promise.resolve(iterator.return?.()).catch(() => undefined);
    }
  }

  /** Runs to the end and returns the whole text (non-streaming responses). */
  async collect(prepared: PreparedGeneration, signal: AbortSignal, traceparent?: string): Promise<{ text: string; finishReason: OpenAIFinishReason; usage: CompletionUsage } | null> {
    let text = '';
    for await (const event of this.run(prepared, signal, traceparent)) {
      if (event.type === 'text') text += event.text;
      else return { text, finishReason: event.finishReason, usage: event.usage };
    }
    return null;
  }

  /** One line per generation: tokens, outcome, time to first token and decode rate. */
  private logRequest(p: PreparedGeneration, outcome: string, completionTokens: number, startedAt: number, firstTokenAt: number | null): void {
    const now = performance.now();
    const ttft = firstTokenAt === null ? 'no tokens' : `TTFT ${(firstTokenAt - startedAt).toFixed(0)} ms`;
    const rate = firstTokenAt !== null && completionTokens > 1 && now > firstTokenAt ? `, ${(((completionTokens - 1) * 1000) / (now - firstTokenAt)).toFixed(1)} tokens/s` : '';
    this.logger.log(`${p.id} ${p.model}: ${p.promptTokens.length} prompt + ${completionTokens} completion tokens, ${outcome}, ${ttft}${rate}`);
  }

  // ---- preparation --------------------------------------------------------------------------

  private async findModel(model: string): Promise<ServedModel> {
    const models = this.pipeline.models();
    const served = models.find((m) => m.modelId === model);
    if (served) return served;
    const names = models.map((m) => m.modelId);
    const local = findLocalModel(await this.localModels.localModels().catch(() => []), model);
    const hint = local ? `; ${local.path} is on this machine but not served: serve it with \`baton up --model ${local.path}\`` : '';
    throw new OpenAIHttpError(
      404,
      names.length === 0
        ? `model '${model}' not found: no model is served yet${hint || ' (start one with `baton up --model FILE`)'}`
        : `model '${model}' not found; served models: ${names.join(', ')}${hint}`,
      'invalid_request_error',
      'model',
      'model_not_found',
    );
  }

  private async modelText(served: ServedModel): Promise<ModelText> {
    try {
      return await this.texts.get(served.modelPath);
    } catch (error) {
      throw new OpenAIHttpError(503, `model '${served.modelId}' cannot be used: ${(error as Error).message}`, 'server_error', 'model', 'model_unusable');
    }
  }

  private finish(
    kind: 'chat' | 'text',
    request: SamplingRequestDto,
    requestedMax: number | null,
    served: ServedModel,
    text: ModelText,
    promptTokens: number[],
  ): PreparedGeneration {
    const contextLength = served.contextLength > 0 ? served.contextLength : text.contextLength > 0 ? text.contextLength : null;
    const n = promptTokens.length;
    let maxTokens: number;
    if (contextLength !== null) {
      const m = requestedMax ?? Math.max(1, contextLength - n);
      if (n + m > contextLength) {
        throw new OpenAIHttpError(
          400,
          `context length exceeded: prompt ${n} + max_tokens ${m} > ${contextLength}; shorten the ${kind === 'chat' ? 'messages' : 'prompt'} or lower max_tokens`,
          'invalid_request_error',
          requestedMax === null ? (kind === 'chat' ? 'messages' : 'prompt') : 'max_tokens',
          'context_length_exceeded',
        );
      }
      maxTokens = m;
    } else {
      maxTokens = requestedMax ?? FALLBACK_MAX_TOKENS;
    }
    const readiness = this.pipeline.readiness(served.modelId);
    if (!readiness.ready) {
      throw new OpenAIHttpError(503, `model '${served.modelId}' is not ready: ${readiness.reason ?? 'no ready plan'}`, 'server_error', 'model', 'model_not_ready');
    }
    const stop = request.stop ?? [];
    return {
      id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`,
      kind,
      created: Math.floor(Date.now() / 1000),
      model: served.modelId,
      stream: request.stream === true,
      includeUsage: request.stream === true && request.stream_options?.include_usage === true,
      promptTokens,
      maxTokens,
      contextLength,
      sampling: {
        temperature: request.temperature ?? 1,
        topP: request.top_p ?? 1,
        topK: request.top_k ?? 0,
        minP: request.min_p ?? 0,
        presencePenalty: request.presence_penalty ?? 0,
        frequencyPenalty: request.frequency_penalty ?? 0,
        repetitionPenalty: request.repetition_penalty ?? 1,
        seed: request.seed === undefined || request.seed === null ? randomBytes(8).readBigUInt64LE() : BigInt.asUintN(64, BigInt(request.seed)),
      },
      stops: typeof stop === 'string' ? [stop] : stop,
      text,
    };
  }
}

/** Reads the pipeline's remaining events (ignoring tokens) until its final one; its cached-token count, or undefined if it does not come. */
async function drain(iterator: AsyncIterator<GenerationEvent>): Promise<number | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), DRAIN_AFTER_STOP_MS);
  });
  try {
    for (;;) {
      const next = await Promise.race([iterator.next(), timeout]);
      if (next === 'timeout' || next.done) return undefined;
      if (next.value.type === 'done') return next.value.cachedTokens;
    }
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
