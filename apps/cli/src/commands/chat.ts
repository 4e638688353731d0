// `baton chat`: a terminal chat client for the gateway's /v1/chat/completions. Streams the
// answer as it is generated, keeps the conversation, `/reset` clears it; Ctrl-C interrupts an
// answer (at the prompt it exits, as does Ctrl-D). Server errors are printed as the server says them.
import type { Readable, Writable } from 'node:stream';
import type { ChatCompletionChunk, ModelList, OpenAIErrorBody } from '@baton/contracts';
import type { CommandSpec } from '../command.js';
import { CliError, EXIT_USAGE } from '../command.js';
import { intOption, numberOption, stringOption } from '../args.js';

export const DEFAULT_CHAT_URL = 'http://127.0.0.1:8080';

export interface ChatOptions {
  url: string;
  model?: string;
  system?: string;
  maxTokens?: number;
  temperature?: number;
  apiKey?: string;
}

interface Message {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** An error to show the user as is (no stack). */
class ChatError extends Error {}

function describeFetchError(url: string, error: unknown): ChatError {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (error as Error).message;
  return new ChatError(`cannot reach the gateway at ${url} (${why}); start one with \`baton up\` or pass --url`);
}

async function errorFromResponse(response: Response): Promise<ChatError> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as OpenAIErrorBody;
    if (body?.error?.message) return new ChatError(`${response.status}: ${body.error.message}`);
  } catch {
    // not JSON: show the text
  }
  return new ChatError(`${response.status} ${response.statusText}${text ? `: ${text.slice(0, 500)}` : ''}`);
}

/** One conversation with a gateway. */
export class ChatSession {
  readonly history: Message[] = [];

  constructor(readonly options: ChatOptions & { model: string }) {
    this.reset();
  }

  reset(): void {
    this.history.length = 0;
    if (this.options.system) this.history.push({ role: 'system', content: this.options.system });
  }

  private headers(): Record<string, string> {
    return { 'content-type': 'application/json', ...(this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {}) };
  }

  /**
   * Sends a user turn and streams the answer to `onText`. The turn and the answer join the
   * history only when the answer completes; an interrupted answer is kept as far as it got.
   */
  async send(text: string, onText: (delta: string) => void, signal?: AbortSignal): Promise<{ content: string; finishReason: string | null; interrupted: boolean }> {
    const messages = [...this.history, { role: 'user' as const, content: text }];
    const body = {
      model: this.options.model,
      messages,
      stream: true,
      ...(this.options.maxTokens !== undefined ? { max_tokens: this.options.maxTokens } : {}),
      ...(this.options.temperature !== undefined ? { temperature: this.options.temperature } : {}),
    };
    let response: Response;
    try {
      response = await fetch(`${this.options.url}/v1/chat/completions`, { method: 'POST', headers: this.headers(), body: JSON.stringify(body), signal });
    } catch (error) {
      if (signal?.aborted) return { content: '', finishReason: null, interrupted: true };
      throw describeFetchError(this.options.url, error);
    }
    if (!response.ok) throw await errorFromResponse(response);
    let content = '';
    let finishReason: string | null = null;
    let interrupted = false;
    try {
      for await (const data of sseData(response)) {
        if (data === '[DONE]') break;
        const event = JSON.parse(data) as ChatCompletionChunk | OpenAIErrorBody;
        if ('error' in event) throw new ChatError(event.error.message);
        const choice = event.choices[0];
        if (!choice) continue;
        if (choice.delta.content) {
          content += choice.delta.content;
          onText(choice.delta.content);
        }
        if (choice.finish_reason) finishReason = choice.finish_reason;
      }
    } catch (error) {
      if (!signal?.aborted) throw error instanceof ChatError ? error : new ChatError(`the stream broke off: ${(error as Error).message}`);
      interrupted = true;
    }
    this.history.push({ role: 'user', content: text }, { role: 'assistant', content });
    return { content, finishReason, interrupted };
  }
}

/** The `data:` payloads of a Server-Sent Events response. */
async function* sseData(response: Response): AsyncGenerator<string> {
  if (!response.body) return;
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const bytes of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(bytes, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, ''))
        .join('\n');
      if (data !== '') yield data;
    }
  }
}

/** The model to talk to: the one asked for, else the first ready one the gateway serves. */
export async function pickModel(options: ChatOptions): Promise<string> {
  if (options.model) return options.model;
  let response: Response;
  try {
    response = await fetch(`${options.url}/v1/models`, { headers: options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {} });
  } catch (error) {
    throw describeFetchError(options.url, error);
  }
  if (!response.ok) throw await errorFromResponse(response);
  const list = (await response.json()) as ModelList;
  const ready = list.data.find((m) => m.baton?.status === 'ready') ?? list.data.find((m) => m.baton === undefined);
  if (ready) return ready.id;
  const planned = list.data.filter((m) => m.baton?.status === 'not_ready');
  if (planned.length > 0) throw new ChatError(`no model is ready yet: ${planned.map((m) => `${m.id} (${m.baton.reason ?? 'not ready'})`).join(', ')}; try again in a moment`);
  throw new ChatError('the gateway serves no model: start one with `baton up --model FILE`, or pass --model');
}

export interface ChatIo {
  input: Readable;
  output: Writable;
  /** Interactive terminal: show a prompt and handle Ctrl-C. */
  terminal: boolean;
}

/** Runs the chat loop until end of input (Ctrl-D), /exit, or Ctrl-C at the prompt. Returns the exit code. */
export async function runChat(options: ChatOptions, io: ChatIo): Promise<number> {
  const { createInterface } = await import('node:readline');
  const out = (s: string) => io.output.write(s);
  let session: ChatSession;
  try {
    session = new ChatSession({ ...options, model: await pickModel(options) });
  } catch (error) {
    if (error instanceof ChatError) {
      out(`error: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  if (io.terminal) out(`Chatting with ${session.options.model} at ${options.url}. /reset clears the conversation; Ctrl-D or /exit quits.\n`);
  const rl = createInterface({ input: io.input, output: io.terminal ? io.output : undefined, terminal: io.terminal, prompt: '> ' });
  let current: AbortController | null = null;
  rl.on('SIGINT', () => {
    if (current) current.abort();
    else {
      out('\n');
      rl.close();
    }
  });
  if (io.terminal) rl.prompt();
  try {
    for await (const raw of rl) {
      const line = raw.trim();
      if (line === '/exit' || line === '/quit') break;
      if (line === '/reset') {
        session.reset();
        out('(conversation cleared)\n');
      } else if (line !== '') {
        current = new AbortController();
        try {
          const result = await session.send(line, out, current.signal);
          out(result.interrupted ? ' [interrupted]\n' : result.finishReason === 'length' ? ' [max tokens reached]\n' : '\n');
        } catch (error) {
          if (!(error instanceof ChatError)) throw error;
          out(`error: ${error.message}\n`);
        } finally {
          current = null;
        }
      }
      if (io.terminal) rl.prompt();
    }
  } finally {
    rl.close();
  }
  return 0;
}

export const chatCommand: CommandSpec = {
  name: 'chat',
  summary: 'Chat with a model served by the gateway, streaming its answers',
  description:
    'A terminal client for the gateway\'s OpenAI-compatible /v1/chat/completions. The conversation is kept\n' +
    'and sent with each turn; type /reset to clear it. Ctrl-C interrupts an answer; at the prompt\n' +
    'Ctrl-C, Ctrl-D or /exit quits. Lines piped on stdin are sent one turn each.',
  options: {
    url: { type: 'string', value: 'URL', description: 'Gateway URL', default: DEFAULT_CHAT_URL },
    model: { type: 'string', value: 'ID', description: 'Model id (default: the first ready model in GET /v1/models)' },
    system: { type: 'string', value: 'TEXT', description: 'System prompt at the start of the conversation' },
    'max-tokens': { type: 'string', value: 'N', description: 'Longest answer in tokens (default: the room left in the context)' },
    temperature: { type: 'string', value: 'T', description: 'Sampling temperature, 0 = greedy (default: the server\'s, 1)' },
    'api-key': { type: 'string', value: 'KEY', description: 'API key if the gateway requires one (or $BATON_API_KEY)' },
  },
  examples: ['baton chat', 'baton chat --model baton-demo --system "Answer in one sentence." --temperature 0', 'echo "Hello" | baton chat --max-tokens 32'],
  async run(ctx) {
    const url = (stringOption(ctx, 'url') ?? DEFAULT_CHAT_URL).replace(/\/+$/, '');
    if (!/^https?:\/\/[^/]+/.test(url)) throw new CliError(`--url must be an http:// or https:// URL, got ${JSON.stringify(url)}`, EXIT_USAGE);
    const maxTokens = intOption(ctx, 'max-tokens', { min: 1 });
    const temperature = numberOption(ctx, 'temperature', { min: 0, max: 2 });
    const model = stringOption(ctx, 'model');
    const system = stringOption(ctx, 'system');
    const apiKey = stringOption(ctx, 'api-key') ?? process.env.BATON_API_KEY;
    return runChat(
      {
        url,
        ...(model ? { model } : {}),
        ...(system ? { system } : {}),
        ...(maxTokens !== undefined ? { maxTokens } : {}),
        ...(temperature !== undefined ? { temperature } : {}),
        ...(apiKey ? { apiKey } : {}),
      },
      { input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY === true && process.stdout.isTTY === true },
    );
  },
};
