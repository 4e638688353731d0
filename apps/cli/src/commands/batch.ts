// `baton batch submit|status|results|cancel|list`: a client for the gateway's /v1/batches.
// `submit` reads an OpenAI batch-input JSONL file ({custom_id, method, url, body} per line) and
// sends its lines inline; problems the gateway finds are shown with the file's line numbers.
import { readFile, writeFile } from 'node:fs/promises';
import type { OpenAIErrorBody } from '@baton/contracts';
import type { BatchObject, BatchResults } from '@baton/gateway';
import { CliError, EXIT_USAGE, type CommandContext, type CommandSpec, type OptionSpec } from '../command.js';
import { flag, stringOption } from '../args.js';
import { formatTable } from '../table.js';
import { DEFAULT_CHAT_URL } from './chat.js';

const POLL_MS = 500;

const COMMON_OPTIONS: Record<string, OptionSpec> = {
  url: { type: 'string', value: 'URL', description: 'Gateway URL', default: DEFAULT_CHAT_URL },
  'api-key': { type: 'string', value: 'KEY', description: 'API key if the gateway requires one (or $BATON_API_KEY)' },
};
const JSON_OPTION: Record<string, OptionSpec> = { json: { type: 'boolean', description: 'Print the batch object as JSON' } };
const ID_ARG = [{ name: 'id', description: 'A batch id (batch_…), as `baton batch submit` printed it', required: true }];

/** The gateway's /v1/batches over HTTP; every failure is a CliError worded for the user. */
class BatchClient {
  constructor(readonly url: string, private readonly apiKey: string | undefined) {}

  static from(ctx: CommandContext): BatchClient {
    const url = (stringOption(ctx, 'url') ?? DEFAULT_CHAT_URL).replace(/\/+$/, '');
    if (!/^https?:\/\/[^/]+/.test(url)) throw new CliError(`--url must be an http:// or https:// URL, got ${JSON.stringify(url)}`, EXIT_USAGE);
    return new BatchClient(url, stringOption(ctx, 'api-key') ?? process.env.BATON_API_KEY);
  }

  async call<T>(method: 'GET' | 'POST', path: string, body?: unknown, explain: (message: string) => string = (m) => m): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.url}${path}`, {
        method,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(`cannot reach the gateway at ${this.url} (${cause?.code ?? cause?.message ?? (error as Error).message}); start one with \`baton up\` or pass --url`);
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new CliError(`${response.status} ${response.statusText}: the gateway answered with something that is not JSON: ${text.slice(0, 300)}`);
    }
    if (!response.ok) {
      const message = (parsed as OpenAIErrorBody)?.error?.message ?? text.slice(0, 500);
      throw new CliError(`${response.status}: ${explain(message)}`);
    }
    return parsed as T;
  }
}

function checkId(id: string): string {
  if (!/^batch_[0-9a-f]{32}$/.test(id)) throw new CliError(`${JSON.stringify(id)} is not a batch id: they look like batch_ followed by 32 hex digits`, EXIT_USAGE);
  return id;
}

function describe(b: BatchObject): string {
  const { total, completed, failed } = b.request_counts;
  return `${b.id}  ${b.status}  ${completed + failed}/${total} done (${completed} completed, ${failed} failed)`;
}

function printBatch(ctx: CommandContext, batch: BatchObject): void {
  if (flag(ctx, 'json')) console.log(JSON.stringify(batch, null, 2));
  else console.log(describe(batch));
}

const FINAL = new Set(['completed', 'failed', 'cancelled']);

/** Exit code for a batch: 0 when it completed, 1 when it failed or was cancelled, 0 while running. */
const exitCodeOf = (b: BatchObject) => (b.status === 'failed' || b.status === 'cancelled' ? 1 : 0);

/** `metadata` entries from repeated --metadata KEY=VALUE. */
function metadataOption(ctx: CommandContext): Record<string, string> | undefined {
  const raw = ctx.values.metadata;
  const items = raw === undefined ? [] : Array.isArray(raw) ? raw : [String(raw)];
  if (items.length === 0) return undefined;
  const metadata: Record<string, string> = {};
  for (const item of items) {
    const at = item.indexOf('=');
    if (at <= 0) throw new CliError(`--metadata must be KEY=VALUE, got ${JSON.stringify(item)}`, EXIT_USAGE);
    metadata[item.slice(0, at)] = item.slice(at + 1);
  }
  return metadata;
}

export const batchSubmitCommand: CommandSpec = {
  name: 'batch submit',
  summary: 'Submit a JSONL file of chat/completion requests as a batch job',
  description:
    'FILE holds one request per line in OpenAI\'s batch-input format:\n' +
    '  {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "baton-demo", "messages": [...]}}\n' +
    'url is /v1/chat/completions or /v1/completions; body is what that endpoint takes (no "stream").\n' +
    'The gateway queues the requests and runs them a few at a time; follow with `baton batch status ID`\n' +
    'or pass --wait. "-" reads the file from stdin.',
  positionals: [{ name: 'file', description: 'The requests, one JSON object per line (- for stdin)', required: true }],
  options: {
    ...COMMON_OPTIONS,
    wait: { type: 'boolean', description: 'Wait until the batch ends, showing progress on stderr; exit 1 if it failed or was cancelled' },
    metadata: { type: 'string', value: 'KEY=VALUE', multiple: true, description: 'Attach metadata to the batch (repeatable)' },
    ...JSON_OPTION,
  },
  examples: [
    'baton batch submit questions.jsonl',
    'id=$(baton batch submit questions.jsonl --wait --json | jq -r .id) && baton batch results "$id" --out answers.jsonl',
  ],
  async run(ctx) {
    const { parseBatchJsonl, withLineNumbers, BatchInputError } = await import('@baton/gateway');
    const client = BatchClient.from(ctx);
    const file = ctx.positionals[0]!;
    const metadata = metadataOption(ctx);
    let text: string;
    try {
      text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
    } catch (error) {
      throw new CliError(`cannot read ${file}: ${(error as Error).message}`);
    }
    let parsed: ReturnType<typeof parseBatchJsonl>;
    try {
      parsed = parseBatchJsonl(text);
    } catch (error) {
      if (error instanceof BatchInputError) throw new CliError(`${file}: ${error.message}`);
      throw error;
    }
    const created = await client.call<BatchObject>('POST', '/v1/batches', { requests: parsed.requests, ...(metadata ? { metadata } : {}) }, (m) => `${file}: ${withLineNumbers(m, parsed.lines)}`);
    if (!flag(ctx, 'wait')) {
      if (flag(ctx, 'json')) printBatch(ctx, created);
      else console.log(`${created.id} ${created.status}: ${created.request_counts.total} requests. Follow it with \`baton batch status ${created.id}\`.`);
      return 0;
    }
    if (!flag(ctx, 'json')) console.error(`${created.id}: ${created.request_counts.total} requests submitted`);
    const final = await waitForEnd(client, created, (b) => console.error(describe(b)));
    printBatch(ctx, final);
    if (!flag(ctx, 'json') && final.status !== 'cancelled') console.log(`Results: baton batch results ${final.id} --out results.jsonl`);
    return exitCodeOf(final);
  },
};

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Polls the batch until it ends; `onChange` sees each new count. */
async function waitForEnd(client: BatchClient, start: BatchObject, onChange: (b: BatchObject) => void): Promise<BatchObject> {
  let batch = start;
  let last = '';
  for (;;) {
    const seen = `${batch.status} ${batch.request_counts.completed} ${batch.request_counts.failed}`;
    if (seen !== last) {
      last = seen;
      if (!FINAL.has(batch.status)) onChange(batch);
    }
    if (FINAL.has(batch.status)) return batch;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    batch = await client.call<BatchObject>('GET', `/v1/batches/${batch.id}`);
  }
}

export const batchStatusCommand: CommandSpec = {
  name: 'batch status',
  summary: 'Show a batch job\'s status and progress',
  positionals: ID_ARG,
  options: { ...COMMON_OPTIONS, ...JSON_OPTION },
  examples: ['baton batch status batch_0123456789abcdef0123456789abcdef'],
  async run(ctx) {
    const batch = await BatchClient.from(ctx).call<BatchObject>('GET', `/v1/batches/${checkId(ctx.positionals[0]!)}`);
    printBatch(ctx, batch);
    return 0;
  },
};

export const batchResultsCommand: CommandSpec = {
  name: 'batch results',
  summary: 'Write a batch job\'s results as JSONL (one line per request, OpenAI\'s batch-output format)',
  description:
    'Each line is {"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}; body is what the\n' +
    'synchronous endpoint would have answered (an error body for a failed request). While the batch runs,\n' +
    'the results so far are written and a note goes to stderr.',
  positionals: ID_ARG,
  options: { ...COMMON_OPTIONS, out: { type: 'string', value: 'FILE', description: 'Write to FILE instead of stdout' } },
  examples: ['baton batch results batch_0123456789abcdef0123456789abcdef --out answers.jsonl'],
  async run(ctx) {
    const results = await BatchClient.from(ctx).call<BatchResults>('GET', `/v1/batches/${checkId(ctx.positionals[0]!)}/results`);
    const jsonl = results.data.map((line) => JSON.stringify(line)).join('\n') + (results.data.length > 0 ? '\n' : '');
    const out = stringOption(ctx, 'out');
    if (out) {
      try {
        await writeFile(out, jsonl);
      } catch (error) {
        throw new CliError(`cannot write ${out}: ${(error as Error).message}`);
      }
      console.error(`wrote ${results.data.length} results to ${out}`);
    } else {
      process.stdout.write(jsonl);
    }
    if (!FINAL.has(results.status)) console.error(`note: the batch is ${results.status}; these are the ${results.data.length} results so far`);
    return 0;
  },
};

export const batchCancelCommand: CommandSpec = {
  name: 'batch cancel',
  summary: 'Cancel a batch job: running requests stop, waiting ones never start',
  positionals: ID_ARG,
  options: { ...COMMON_OPTIONS, ...JSON_OPTION },
  examples: ['baton batch cancel batch_0123456789abcdef0123456789abcdef'],
  async run(ctx) {
    const batch = await BatchClient.from(ctx).call<BatchObject>('POST', `/v1/batches/${checkId(ctx.positionals[0]!)}/cancel`);
    printBatch(ctx, batch);
    return 0;
  },
};

export const batchListCommand: CommandSpec = {
  name: 'batch list',
  summary: 'List recent batch jobs, newest first',
  options: { ...COMMON_OPTIONS, limit: { type: 'string', value: 'N', description: 'How many (1-100)', default: '20' }, json: { type: 'boolean', description: 'Print the list as JSON' } },
  examples: ['baton batch list', 'baton batch list --json | jq -r \'.data[] | select(.status == "completed") | .id\''],
  async run(ctx) {
    const limit = stringOption(ctx, 'limit') ?? '20';
    const list = await BatchClient.from(ctx).call<{ data: BatchObject[] }>('GET', `/v1/batches?limit=${encodeURIComponent(limit)}`);
    if (flag(ctx, 'json')) {
      console.log(JSON.stringify(list, null, 2));
      return 0;
    }
    if (list.data.length === 0) {
      console.log('No batches. Submit one with `baton batch submit FILE.jsonl`.');
      return 0;
    }
    console.log(formatTable(
      ['ID', 'STATUS', 'TOTAL', 'COMPLETED', 'FAILED', 'CREATED'],
      list.data.map((b) => [b.id, b.status, b.request_counts.total, b.request_counts.completed, b.request_counts.failed, new Date(b.created_at * 1000).toISOString()]),
    ));
    return 0;
  },
};

export const batchCommands: CommandSpec[] = [batchSubmitCommand, batchStatusCommand, batchResultsCommand, batchCancelCommand, batchListCommand];
