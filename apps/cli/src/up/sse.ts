// Reading a streamed OpenAI completion from the gateway (SSE), for the benchmark commands.
import { CliError } from '../command.js';

export interface CompletionChunk {
  /** performance.now() when the chunk arrived. */
  at: number;
  choices: { text?: string }[];
  usage?: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens: number } } | null;
}

/** POSTs a streaming /v1/completions request and yields its SSE chunks as they arrive. */
export async function* streamCompletion(url: string, body: Record<string, unknown>): AsyncGenerator<CompletionChunk> {
  const response = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  if (!response.ok || !response.body) throw new CliError(`the gateway answered ${response.status}: ${await response.text()}`);
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const bytes of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(bytes, { stream: true });
    let at;
    while ((at = buffered.indexOf('\n\n')) >= 0) {
      const event = buffered.slice(0, at);
      buffered = buffered.slice(at + 2);
      if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
      yield { ...(JSON.parse(event.slice(6)) as Omit<CompletionChunk, 'at'>), at: performance.now() };
    }
  }
}
