// `baton bench engine`: Baton's engine and llama.cpp (node-llama-cpp in a child process) on the
// same file and thread count, in one run: prefill of a 512-token prompt and decode after it, plus
// this machine's read bandwidth (STREAM-style) and the roofline decode rate it allows.
import { CliError, type CommandSpec } from '../command.js';
import { flag, intOption, requiredString } from '../args.js';
import { formatTable } from '../table.js';

export interface EngineBenchJson {
  baton: { decodeTokensPerSec: number; prefillTokensPerSec: number };
  llamaCpp: { decodeTokensPerSec: number; prefillTokensPerSec: number };
  roofline: { bandwidthBytesPerSec: number; decodeTokensPerSec: number };
}

export const benchEngineCommand: CommandSpec = {
  name: 'bench engine',
  summary: "Baton's engine vs llama.cpp: prefill and decode tokens/s, memory bandwidth and the roofline",
  description: [
    'Both engines run the same GGUF file with the same thread count and an F16 KV cache: first a',
    '512-token prompt in one batch (prefill tokens/s = prompt tokens / time to the first token),',
    'then greedy decode steps after it (decode tokens/s). The bandwidth test reads a 256 MiB buffer',
    'with the same thread count; roofline decode = bandwidth / bytes of weights read per token.',
    'Other processes on the machine change every figure: compare the columns of one run.',
  ].join('\n'),
  options: {
    model: { type: 'string', short: 'm', value: 'FILE', description: 'GGUF model file (required)' },
    threads: { type: 'string', short: 't', value: 'T', description: 'Threads for both engines and the bandwidth test', default: '1' },
    'prompt-tokens': { type: 'string', value: 'N', description: 'Prompt length for prefill', default: '512' },
    'decode-tokens': { type: 'string', value: 'N', description: 'Decode steps measured', default: '64' },
    rounds: { type: 'string', value: 'N', description: 'Alternating rounds per engine; the best of each is kept', default: '2' },
    json: { type: 'boolean', description: 'Print {"baton", "llamaCpp", "roofline"} as JSON' },
  },
  examples: ['baton model make --out /tmp/m.gguf --dim 1024 --layers 16 --heads 16 --kv-heads 8 --ffn 3072 --type q8_0', 'baton bench engine --model /tmp/m.gguf --threads 1'],
  async run(ctx) {
    const model = requiredString(ctx, 'model');
    const threads = intOption(ctx, 'threads', { min: 1, max: 1024 }) ?? 1;
    const promptTokens = intOption(ctx, 'prompt-tokens', { min: 1, max: 65536 }) ?? 512;
    const decodeTokens = intOption(ctx, 'decode-tokens', { min: 1, max: 65536 }) ?? 64;
    const rounds = intOption(ctx, 'rounds', { min: 1, max: 100 }) ?? 2;
    const json = flag(ctx, 'json');
    const log = (line: string) => {
      if (!json) process.stderr.write(`${line}\n`);
    };

    const { Engine, measureReadBandwidth } = await import('@baton/engine');
    const { LlamaRef } = await import('@baton/llama-ref');

    // Baton, measured as llama-ref measures llama.cpp: warm-up, prompt in one batch, then decode.
    // Rounds alternate the two engines and keep each one's best, so a burst of load from other
    // processes does not land on one side only.
    log(`baton: loading ${model} (${threads} thread${threads === 1 ? '' : 's'}) …`);
    let engine;
    try {
      engine = await Engine.load({ model, threads, kvDType: 'f16', kvTokens: promptTokens + decodeTokens + 32, maxContext: promptTokens + decodeTokens + 32, maxBatchTokens: Math.min(promptTokens, 512) });
    } catch (error) {
      throw new CliError(`cannot load ${model}: ${(error as Error).message}`);
    }
    const loaded = engine;
    const vocab = engine.info.vocabSize;
    const prompt = Array.from({ length: promptTokens }, (_, i) => ((i * 7919 + 13) % 256) % vocab);
    const measureBaton = async (): Promise<EngineBenchJson['baton']> => {
      await loaded.forward({ sequences: [{ sequenceId: 1, firstPosition: 0, tokenCount: 8 }], tokens: prompt.slice(0, 8), output: 'sample' });
      await loaded.kv.free(1);
      let started = process.hrtime.bigint();
      let out = await loaded.forward({ sequences: [{ sequenceId: 0, firstPosition: 0, tokenCount: promptTokens }], tokens: prompt, output: 'sample' });
      const prefillSeconds = Number(process.hrtime.bigint() - started) / 1e9;
      started = process.hrtime.bigint();
      for (let i = 0; i < decodeTokens; i++) {
        out = await loaded.forward({ sequences: [{ sequenceId: 0, firstPosition: promptTokens + i, tokenCount: 1 }], tokens: [out.tokens![0]!], output: 'sample' });
      }
      const decodeSeconds = Number(process.hrtime.bigint() - started) / 1e9;
      await loaded.kv.free(0);
      return { decodeTokensPerSec: decodeTokens / decodeSeconds, prefillTokensPerSec: promptTokens / prefillSeconds };
    };
    let ref;
    try {
      ref = await LlamaRef.start({ threads });
    } catch (error) {
      await engine.close();
      throw new CliError(`llama.cpp (node-llama-cpp) did not start: ${(error as Error).message}`);
    }
    const baton = { decodeTokensPerSec: 0, prefillTokensPerSec: 0 };
    const llamaCpp = { decodeTokensPerSec: 0, prefillTokensPerSec: 0 };
    const best = (into: typeof baton, r: typeof baton) => {
      into.decodeTokensPerSec = Math.max(into.decodeTokensPerSec, r.decodeTokensPerSec);
      into.prefillTokensPerSec = Math.max(into.prefillTokensPerSec, r.prefillTokensPerSec);
    };
    try {
      for (let round = 1; round <= rounds; round++) {
        log(`round ${round}/${rounds}: baton prefill ${promptTokens} + decode ${decodeTokens} …`);
        best(baton, await measureBaton());
        log(`round ${round}/${rounds}: llama.cpp, same file and threads …`);
        const r = await ref.benchmark(model, { promptTokens, decodeTokens });
        best(llamaCpp, { decodeTokensPerSec: r.decodeTokensPerSec, prefillTokensPerSec: r.prefillTokensPerSec });
      }
    } catch (error) {
      throw new CliError(`benchmark failed: ${(error as Error).message}`);
    } finally {
      await engine.close();
      await ref.close();
    }

    log('bandwidth: reading 256 MiB …');
    const bandwidth = await measureReadBandwidth({ bytes: 256 * 1024 * 1024, passes: 5, threads });
    const bytesPerToken = engine.info.weightBytesPerToken;
    const result: EngineBenchJson = {
      baton,
      llamaCpp,
      roofline: { bandwidthBytesPerSec: bandwidth, decodeTokensPerSec: bandwidth / bytesPerToken },
    };
    if (json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    const f = (x: number) => x.toFixed(1);
    const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
    process.stdout.write(
      `${formatTable(
        ['', 'prefill tok/s', 'decode tok/s'],
        [
          ['baton', f(baton.prefillTokensPerSec), f(baton.decodeTokensPerSec)],
          ['llama.cpp', f(llamaCpp.prefillTokensPerSec), f(llamaCpp.decodeTokensPerSec)],
          ['baton / llama.cpp', ratio(baton.prefillTokensPerSec, llamaCpp.prefillTokensPerSec), ratio(baton.decodeTokensPerSec, llamaCpp.decodeTokensPerSec)],
          ['roofline', '', f(result.roofline.decodeTokensPerSec)],
        ],
      )}\n` +
        `model ${model}: ${(bytesPerToken / 1e6).toFixed(1)} MB of weights read per token; kernels ${engine.info.kernels}; ${threads} thread${threads === 1 ? '' : 's'}\n` +
        `read bandwidth ${(bandwidth / 1e9).toFixed(2)} GB/s → roofline decode ${f(result.roofline.decodeTokensPerSec)} tok/s (baton at ${((baton.decodeTokensPerSec / result.roofline.decodeTokensPerSec) * 100).toFixed(0)}%)\n`,
    );
  },
};
