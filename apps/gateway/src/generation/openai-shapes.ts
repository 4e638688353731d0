// OpenAI's response objects, built field for field as api.openai.com sends them.
import { BATON_VERSION, type ChatCompletion, type ChatCompletionChunk, type CompletionUsage, type OpenAIFinishReason, type TextCompletion } from '@baton/contracts';
import type { PreparedGeneration } from './completion.service.js';

export const SYSTEM_FINGERPRINT = `baton-${BATON_VERSION}`;

export function chatCompletion(p: PreparedGeneration, content: string, finishReason: OpenAIFinishReason, usage: CompletionUsage): ChatCompletion {
  return {
    id: p.id,
    object: 'chat.completion',
    created: p.created,
    model: p.model,
    system_fingerprint: SYSTEM_FINGERPRINT,
    choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: finishReason }],
    usage,
  };
}

export function textCompletion(p: PreparedGeneration, text: string, finishReason: OpenAIFinishReason, usage: CompletionUsage): TextCompletion {
  return {
    id: p.id,
    object: 'text_completion',
    created: p.created,
    model: p.model,
    system_fingerprint: SYSTEM_FINGERPRINT,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason }],
    usage,
  };
}

function chatChunk(p: PreparedGeneration, choices: ChatCompletionChunk['choices'], usage?: CompletionUsage): ChatCompletionChunk {
  const chunk: ChatCompletionChunk = { id: p.id, object: 'chat.completion.chunk', created: p.created, model: p.model, system_fingerprint: SYSTEM_FINGERPRINT, choices };
  if (p.includeUsage) chunk.usage = usage ?? null;
  return chunk;
}

function textChunk(p: PreparedGeneration, choices: TextCompletion['choices'], usage?: CompletionUsage): TextCompletion {
  const chunk: TextCompletion = { id: p.id, object: 'text_completion', created: p.created, model: p.model, system_fingerprint: SYSTEM_FINGERPRINT, choices };
  if (p.includeUsage) chunk.usage = usage ?? null;
  return chunk;
}

/** The streamed chunks of one generation, in order (each becomes one `data:` line). */
export const streamChunks = {
  /** Chat: the first chunk carries the role; text completions have no opening chunk. */
  opening(p: PreparedGeneration): object | null {
    return p.kind === 'chat' ? chatChunk(p, [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }]) : null;
  },
  text(p: PreparedGeneration, text: string): object {
    return p.kind === 'chat'
      ? chatChunk(p, [{ index: 0, delta: { content: text }, logprobs: null, finish_reason: null }])
      : textChunk(p, [{ index: 0, text, logprobs: null, finish_reason: null }]);
  },
  finish(p: PreparedGeneration, finishReason: OpenAIFinishReason): object {
    return p.kind === 'chat'
      ? chatChunk(p, [{ index: 0, delta: {}, logprobs: null, finish_reason: finishReason }])
      : textChunk(p, [{ index: 0, text: '', logprobs: null, finish_reason: finishReason }]);
  },
  /** Only with stream_options.include_usage: no choices, the totals. */
  usage(p: PreparedGeneration, usage: CompletionUsage): object | null {
    if (!p.includeUsage) return null;
    return p.kind === 'chat' ? chatChunk(p, [], usage) : textChunk(p, [], usage);
  },
};
