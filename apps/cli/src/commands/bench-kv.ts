// `baton bench kv`: what prefix reuse buys a multi-turn conversation — time to first token of a
// follow-up turn whose history is cached (warm) against the same-sized prompt with nothing cached
// (cold), in one private cluster (issue 7).
import type { CommandSpec } from '../command.js';
import { CliError } from '../command.js';
import { flag, intOption, stringOption } from '../args.js';
import { formatTable } from '../table.js';
import { streamCompletion, type CompletionChunk } from '../up/sse.js';

const WORDS = ['the', 'model', 'runs', 'across', 'several', 'machines', 'and', 'each', 'stage', 'holds', 'its', 'layers', 'while', 'tokens', 'travel', 'round', 'ring', 'cache', 'keeps', 'history'];

/** Deterministic filler text of `words` words. */
function prose(seed: number, words: number): string {
  let x = seed * 7919 + 13;
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out.push(WORDS[x % WORDS.length]!);
  }
  return out.join(' ');
}

interface Turn { ttftMs: number; text: string; promptTokens: number; cachedTokens: number }

/** One streamed greedy completion: time to the first token, the text, and the usage numbers. */
async function turn(url: string, model: string, prompt: string, maxTokens: number): Promise<Turn> {
  const started = performance.now();
  let first = 0;
  let text = '';
  let usage: CompletionChunk['usage'];
  for await (const chunk of streamCompletion(url, { model, prompt, max_tokens: maxTokens, temperature: 0 })) {
    if (chunk.choices.length > 0) {
      if (!first) first = chunk.at;
      text += chunk.choices[0]!.text ?? '';
    }
    if (chunk.usage) usage = chunk.usage;
  }
  if (!usage) throw new CliError('the gateway sent no usage chunk; is it an older version?');
  return { ttftMs: (first || performance.now()) - started, text, promptTokens: usage.prompt_tokens, cachedTokens: usage.prompt_tokens_details?.cached_tokens ?? 0 };
}

export const benchKvCommand: CommandSpec = {
  name: 'bench kv',
  summary: 'Time to first token of a follow-up chat turn with its history cached (warm) against nothing cached (cold)',
  description:
    'Starts a private cluster (`baton up`, its own key namespace and port). Each round primes a\n' +
    'conversation (a history of about --history tokens, answered with a few tokens), then sends the\n' +
    'follow-up turn — history, answer and about --new fresh tokens — and times its first token (warm:\n' +
    'the KV-cache manager reuses the history\'s blocks and prefills only the new tokens). The cold\n' +
    'figure is a prompt of the same length that nothing in the cache shares. Medians of --rounds.',
  options: {
    model: { type: 'string', value: 'FILE', description: 'GGUF model (default: the demo model)' },
    shards: { type: 'string', value: 'N', description: 'Shards (pipeline stages)', default: '1' },
    history: { type: 'string', value: 'TOKENS', description: 'Approximate history length', default: '1000' },
    new: { type: 'string', value: 'TOKENS', description: 'Approximate length of the new turn', default: '20' },
    rounds: { type: 'string', value: 'N', description: 'Measured rounds (the median is reported)', default: '3' },
    threads: { type: 'string', value: 'N', description: 'Engine threads of every shard', default: '1' },
    json: { type: 'boolean', description: 'Print {"coldTtftMs", "warmTtftMs", "historyTokens", "newTokens"}' },
  },
  examples: ['baton bench kv --model /tmp/m-q8_0.gguf', 'baton bench kv --history 2000 --new 20 --json'],
  async run(ctx) {
    const shards = intOption(ctx, 'shards', { min: 1, max: 16 }) ?? 1;
    const historyTarget = intOption(ctx, 'history', { min: 32, max: 100_000 }) ?? 1000;
    const newTarget = intOption(ctx, 'new', { min: 1, max: 10_000 }) ?? 20;
    const rounds = intOption(ctx, 'rounds', { min: 1, max: 100 }) ?? 3;
    const threads = intOption(ctx, 'threads', { min: 1, max: 256 }) ?? 1;
    const json = flag(ctx, 'json');
    const { startLocalStack, benchModelPath, median } = await import('../up/local-stack.js');
    const { readModelManifest } = await import('@baton/gguf');
    const modelPath = benchModelPath(stringOption(ctx, 'model'));
    const manifest = await readModelManifest(modelPath);
    const answerTokens = 8;
    const contextTokens = Math.min(manifest.contextLength, Math.max(256, 2 ** Math.ceil(Math.log2(historyTarget + newTarget + 4 * answerTokens + 64))));
    if (historyTarget + newTarget + 2 * answerTokens + 16 > manifest.contextLength) {
      throw new CliError(`--history ${historyTarget} + --new ${newTarget} does not fit the model's context of ${manifest.contextLength} tokens; lower --history`);
    }
    const progress = (line: string) => process.stderr.write(`${line}\n`);
    progress(`bench kv: starting ${shards} shard(s), context ${contextTokens} …`);
    const stack = await startLocalStack('kv', ['--shards', String(shards), '--threads', String(threads), '--model', modelPath, '--context', String(contextTokens), '--sequences', '4']);
    const { url } = stack;
    try {
      const { data } = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
      const model = data[0]?.id;
      if (!model) throw new CliError('the gateway lists no model');
      // Calibrate words per token on this model's tokenizer.
      const probe = await turn(url, model, prose(999, 200), 1);
      const wordsPerToken = 200 / Math.max(1, probe.promptTokens);
      const historyWords = Math.max(8, Math.round(historyTarget * wordsPerToken));
      const newWords = Math.max(1, Math.round(newTarget * wordsPerToken));
      const cold: number[] = [];
      const warm: number[] = [];
      const history: number[] = [];
      const fresh: number[] = [];
      for (let r = 0; r < rounds; r++) {
        const first = await turn(url, model, prose(10 + r, historyWords), answerTokens);
        const followUp = `${prose(10 + r, historyWords)}${first.text} ${prose(500 + r, newWords)}`;
        const w = await turn(url, model, followUp, answerTokens);
        const c = await turn(url, model, `${prose(1000 + r, historyWords)}${first.text} ${prose(500 + r, newWords)}`, answerTokens);
        warm.push(w.ttftMs);
        cold.push(c.ttftMs);
        history.push(w.cachedTokens);
        fresh.push(w.promptTokens - w.cachedTokens);
        progress(`  round ${r + 1}: cold ${c.ttftMs.toFixed(1)} ms (${c.promptTokens} tokens, ${c.cachedTokens} cached), warm ${w.ttftMs.toFixed(1)} ms (${w.promptTokens} tokens, ${w.cachedTokens} cached)`);
      }
      const result = { coldTtftMs: median(cold), warmTtftMs: median(warm), historyTokens: median(history), newTokens: median(fresh) };
      if (json) {
        console.log(JSON.stringify(result));
        return 0;
      }
      console.log(formatTable(
        ['HISTORY tokens', 'NEW tokens', 'COLD TTFT ms', 'WARM TTFT ms', 'SPEED-UP'],
        [[result.historyTokens, result.newTokens, result.coldTtftMs.toFixed(1), result.warmTtftMs.toFixed(1), `${(result.coldTtftMs / result.warmTtftMs).toFixed(1)}×`]],
      ));
      console.log(`\nmodel ${modelPath}, ${shards} shard(s), ${threads} thread(s) each, greedy, median of ${rounds}`);
      return 0;
    } finally {
      await stack.stop();
    }
  },
};
