import type { CommandSpec } from '../command.js';
import { CliError, EXIT_USAGE } from '../command.js';
import { flag, intOption, stringOption } from '../args.js';
import { formatTable } from '../table.js';
import { streamCompletion } from '../up/sse.js';

interface Run {
  shards: number;
  decodeTokensPerSec: number;
  ttftMs: number;
  predictedTokensPerSec: number;
  completionTokens: number;
}

/** One streamed completion: time to the first token and the decode rate after it. */
async function measure(url: string, model: string, maxTokens: number): Promise<{ ttftMs: number; decodeTokensPerSec: number; tokens: number }> {
  const started = performance.now();
  let first = 0;
  let last = 0;
  let tokens = 0;
  const prompt = 'The baton passes from one runner to the next, and the relay goes on through the night';
  for await (const chunk of streamCompletion(url, { model, prompt, max_tokens: maxTokens, temperature: 0 })) {
    if (chunk.choices.length > 0) {
      if (!first) first = chunk.at;
      last = chunk.at;
    }
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  const decodeTokensPerSec = tokens > 1 && last > first ? ((tokens - 1) * 1000) / (last - first) : 0;
  return { ttftMs: first - started, decodeTokensPerSec, tokens };
}

export const benchPipelineCommand: CommandSpec = {
  name: 'bench pipeline',
  summary: 'Decode rate and time to first token through 1, 2, 3 … shards, beside the planner\'s prediction',
  description:
    'For each shard count it starts a private cluster (`baton up --shards N --stages N`, its own key\n' +
    'namespace and port, every shard on the same thread count), waits for the shards to measure\n' +
    'their compute rate and links, asks the planner for its prediction on those measurements, then\n' +
    'streams greedy completions through the gateway. --delay-ms puts a userspace delay proxy in\n' +
    'front of every shard, so each hop costs that much one way (netem is not needed).',
  options: {
    model: { type: 'string', value: 'FILE', description: 'GGUF model (default: the demo model)' },
    shards: { type: 'string', value: 'LIST', description: 'Shard counts to measure', default: '1,2,3' },
    'delay-ms': { type: 'string', value: 'MS', description: 'One-way delay added to every hop', default: '0' },
    tokens: { type: 'string', value: 'N', description: 'Tokens generated per request', default: '64' },
    rounds: { type: 'string', value: 'N', description: 'Measured requests per shard count (the median is reported)', default: '3' },
    threads: { type: 'string', value: 'N', description: 'Engine threads of every shard', default: '1' },
    json: { type: 'boolean', description: 'Print {"runs": [{"shards", "decodeTokensPerSec", "ttftMs", "predictedTokensPerSec"}]}' },
  },
  examples: ['baton bench pipeline --model /tmp/m-q8_0.gguf', 'baton bench pipeline --shards 1,2 --delay-ms 5 --json'],
  async run(ctx) {
    const shardCounts = (stringOption(ctx, 'shards') ?? '1,2,3').split(',').map((s) => Number(s.trim()));
    if (shardCounts.some((n) => !Number.isInteger(n) || n < 1 || n > 16)) throw new CliError('--shards must be a comma-separated list of integers from 1 to 16, e.g. 1,2,3', EXIT_USAGE);
    const delayMs = intOption(ctx, 'delay-ms', { min: 0, max: 10_000 }) ?? 0;
    const maxTokens = intOption(ctx, 'tokens', { min: 2, max: 4096 }) ?? 64;
    const rounds = intOption(ctx, 'rounds', { min: 1, max: 100 }) ?? 3;
    const threads = intOption(ctx, 'threads', { min: 1, max: 256 }) ?? 1;
    const json = flag(ctx, 'json');
    const { startLocalStack, benchModelPath, median } = await import('../up/local-stack.js');
    const { RpcClient, resolveControlPlaneOptions } = await import('@baton/control-plane');
    const { readModelManifest } = await import('@baton/gguf');
    const modelPath = benchModelPath(stringOption(ctx, 'model'));
    const manifest = await readModelManifest(modelPath);
    const progress = (line: string) => process.stderr.write(`${line}\n`);
    const runs: Run[] = [];
    for (const shards of shardCounts) {
      const contextTokens = Math.min(manifest.contextLength, 1024);
      const requirement = { contextTokens, sequences: 1, kvDType: 'f16' as const, objective: 'latency' as const, stages: shards };
      progress(`bench pipeline: ${shards} shard(s)${delayMs ? `, ${delayMs} ms per hop` : ''} …`);
      const stack = await startLocalStack('pipeline', ['--shards', String(shards), '--stages', String(shards), '--threads', String(threads), '--model', modelPath,
        '--context', String(contextTokens), '--sequences', '1', '--objective', 'latency', '--delay-ms', String(delayMs)], 120_000);
      const { url } = stack;
      const rpc = new RpcClient(resolveControlPlaneOptions({ prefix: stack.prefix }));
      try {
        // Wait for what the prediction should use: measured compute rates and (with 2+ shards)
        // links probed after every shard settled (probes taken while the shards were loading and
        // measuring overstate the links; the shards probe again once their peers settle).
        const wantLinks = shards * (shards - 1);
        let settledAt: number | undefined;
        for (let i = 0; i < 150; i++) {
          const { nodes, links } = await rpc.send('discovery.nodes.list', {});
          if (settledAt === undefined && nodes.every((n) => n.computeBytesPerSec !== null && n.servingPlanId)) settledAt = Date.now();
          const fresh = links.filter((l) => settledAt !== undefined && l.measuredAtMs > settledAt).length;
          if (settledAt !== undefined && fresh >= wantLinks && (await fetch(`${url}/readyz`)).ok) break;
          await new Promise((r) => setTimeout(r, 300));
        }
        const prediction = await rpc.send('planner.preview', { modelPath, requirement });
        const model = (await rpc.send('planner.list', {})).plans[0]?.modelId ?? manifest.name;
        const samples = [];
        try {
          await measure(url, model, Math.min(8, maxTokens));
          for (let r = 0; r < rounds; r++) samples.push(await measure(url, model, maxTokens));
        } catch (error) {
          throw new CliError(`measuring ${shards} shard(s) failed: ${(error as Error).message}\nlast lines of baton up:\n${stack.output().split('\n').slice(-40).join('\n')}`);
        }
        const run: Run = {
          shards,
          decodeTokensPerSec: median(samples.map((s) => s.decodeTokensPerSec)),
          ttftMs: median(samples.map((s) => s.ttftMs)),
          predictedTokensPerSec: 1000 / prediction.predicted.msPerToken,
          completionTokens: median(samples.map((s) => s.tokens)),
        };
        runs.push(run);
        progress(`  ${run.decodeTokensPerSec.toFixed(1)} tok/s measured, ${run.predictedTokensPerSec.toFixed(1)} predicted, TTFT ${run.ttftMs.toFixed(0)} ms`);
      } finally {
        await rpc.close();
        await stack.stop();
      }
    }
    if (json) {
      console.log(JSON.stringify({ runs: runs.map(({ completionTokens: _c, ...r }) => r), model: modelPath, delayMs, threads, tokens: maxTokens }, null, 2));
      return 0;
    }
    const base = runs.find((r) => r.shards === 1);
    console.log(formatTable(
      ['SHARDS', 'DECODE tok/s', 'vs 1 SHARD', 'PREDICTED tok/s', 'MEASURED/PREDICTED', 'TTFT ms', 'TOKENS'],
      runs.map((r) => [r.shards, r.decodeTokensPerSec.toFixed(1), base ? `${(r.decodeTokensPerSec / base.decodeTokensPerSec).toFixed(2)}×` : '', r.predictedTokensPerSec.toFixed(1), `${(r.decodeTokensPerSec / r.predictedTokensPerSec).toFixed(2)}`, r.ttftMs.toFixed(0), r.completionTokens]),
    ));
    console.log(`\nmodel ${modelPath}, ${threads} thread(s) per shard, ${delayMs} ms one-way delay per hop, greedy, ${maxTokens} tokens, median of ${rounds}`);
    return 0;
  },
};
