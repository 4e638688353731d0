// Sends a prepared generation to the client: one JSON body, or Server-Sent Events in OpenAI's
// chunk format ending with `data: [DONE]`. The generation is aborted as soon as the client's
// connection closes (the pipeline then stops the sequence and frees its KV).
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { CompletionService, PreparedGeneration } from '../generation/completion.service.js';
import { chatCompletion, streamChunks, textCompletion } from '../generation/openai-shapes.js';
import { logIfInternal, OpenAIHttpError, toOpenAIError } from './openai-error.js';

/** An AbortSignal that fires when the client goes away before the response is complete. */
function disconnectSignal(reply: FastifyReply): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const raw = reply.raw;
  const onClose = () => {
    if (!raw.writableFinished) controller.abort(new Error('the client disconnected'));
  };
  raw.on('close', onClose);
  if (raw.destroyed) onClose();
  return { signal: controller.signal, dispose: () => raw.off('close', onClose) };
}

function traceparentOf(request: FastifyRequest): string | undefined {
  const value = request.headers.traceparent;
  return typeof value === 'string' && /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/.test(value) ? value : undefined;
}

export async function sendCompletion(service: CompletionService, prepared: PreparedGeneration, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const { signal, dispose } = disconnectSignal(reply);
  // the request's span (when tracing) parents the generation's spans
  const traceparent = service.telemetry.requestTraceparent(request.raw, {
    'gen_ai.request.model': prepared.model,
    'gen_ai.request.max_tokens': prepared.maxTokens,
    'baton.prompt_tokens': prepared.promptTokens.length,
    'baton.stream': prepared.stream,
    'baton.completion_id': prepared.id,
  }, traceparentOf(request));
  try {
    if (prepared.stream) await stream(service, prepared, signal, traceparent, reply);
    else {
      const result = await service.collect(prepared, signal, traceparent);
      if (result === null) {
        // the client is gone: nothing to send
        reply.hijack();
        reply.raw.destroy();
        return;
      }
      const body = prepared.kind === 'chat'
        ? chatCompletion(prepared, result.text, result.finishReason, result.usage)
        : textCompletion(prepared, result.text, result.finishReason, result.usage);
      await reply.code(200).header('content-type', 'application/json; charset=utf-8').send(body);
    }
  } finally {
    dispose();
  }
}

async function stream(service: CompletionService, prepared: PreparedGeneration, signal: AbortSignal, traceparent: string | undefined, reply: FastifyReply): Promise<void> {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  raw.socket?.setNoDelay(true);
  const send = async (data: object | string | null): Promise<void> => {
    if (data === null || signal.aborted) return;
    const ok = raw.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
    if (!ok && !signal.aborted) {
      // a slow reader: wait for the socket to drain (or the client to go away)
      await new Promise<void>((resolve) => {
        const done = () => {
          raw.off('drain', done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        raw.on('drain', done);
        signal.addEventListener('abort', done, { once: true });
      });
    }
  };
  try {
    await send(streamChunks.opening(prepared));
    for await (const event of service.run(prepared, signal, traceparent)) {
      if (event.type === 'text') await send(streamChunks.text(prepared, event.text));
      else {
        await send(streamChunks.finish(prepared, event.finishReason));
        await send(streamChunks.usage(prepared, event.usage));
      }
      if (signal.aborted) break;
    }
    await send('[DONE]');
  } catch (cause) {
    const error = cause instanceof OpenAIHttpError ? cause : toOpenAIError(cause, 0);
    logIfInternal(error, cause);
    await send(error.toBody());
    await send('[DONE]');
  } finally {
    if (!raw.destroyed) raw.end();
  }
}
