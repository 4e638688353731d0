// `baton generate`: a whole model in one process through the engine's layer-range API
// (--split chains several ranges in-process, exactly as pipeline stages would), printing the
// generated text as it comes, or one JSON object with --json.
import { CliError, EXIT_USAGE, type CommandSpec } from '../command.js';
import { flag, intOption, numberOption, requiredString, stringOption } from '../args.js';

export interface GenerateJson {
  promptTokens: number[];
  tokens: number[];
  text: string;
  timings: { prefillTokensPerSec: number; decodeTokensPerSec: number };
}

function parseTokenList(raw: string): number[] {
  const parts = raw.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => !/^[0-9]+$/.test(p))) {
    throw new CliError(`--tokens must be comma-separated token ids like 1,2,3; got ${JSON.stringify(raw)}`, EXIT_USAGE);
  }
  return parts.map(Number);
}

export const generateCommand: CommandSpec = {
  name: 'generate',
  summary: 'Generate tokens from a GGUF model in this process (the layer-range engine, optionally split)',
  description: [
    'Runs the whole model through the native engine: --split 0:5,5:12 loads one engine per range and',
    'chains them in-process, as pipeline stages on separate machines would. --prompt is tokenized with',
    'the model\'s own vocabulary (BOS added when the model asks for it); --tokens are used exactly as',
    'given. Generation stops after -n tokens or at an end-of-generation token (unless --ignore-eos).',
    'Sampling is greedy by default; --temperature T > 0 samples with the given filters and --seed.',
  ].join('\n'),
  options: {
    model: { type: 'string', short: 'm', value: 'FILE', description: 'GGUF model file (required)' },
    prompt: { type: 'string', short: 'p', value: 'TEXT', description: 'Prompt text' },
    tokens: { type: 'string', value: 'IDS', description: 'Prompt token ids, comma-separated (used as given)' },
    n: { type: 'string', short: 'n', value: 'N', description: 'Tokens to generate', default: '32' },
    greedy: { type: 'boolean', description: 'Greedy decoding (the default; overrides --temperature)' },
    temperature: { type: 'string', value: 'T', description: 'Sampling temperature (0 = greedy)' },
    'top-k': { type: 'string', value: 'K', description: 'Keep the K most likely tokens (0 = off)' },
    'top-p': { type: 'string', value: 'P', description: 'Nucleus sampling mass (1 = off)' },
    'min-p': { type: 'string', value: 'P', description: 'Drop tokens below P × the top probability (0 = off)' },
    'repeat-penalty': { type: 'string', value: 'X', description: 'Repetition penalty (1 = off)' },
    'presence-penalty': { type: 'string', value: 'X', description: 'Presence penalty (0 = off)' },
    'frequency-penalty': { type: 'string', value: 'X', description: 'Frequency penalty (0 = off)' },
    'penalty-last-n': { type: 'string', value: 'N', description: 'Tokens the penalties look back over (-1 = all)', default: '64' },
    seed: { type: 'string', value: 'S', description: 'Random seed (same seed, same tokens)', default: '0' },
    threads: { type: 'string', short: 't', value: 'T', description: 'Compute threads per engine', default: '1' },
    split: { type: 'string', value: 'RANGES', description: 'Layer ranges chained in-process, e.g. 0:5,5:12' },
    'kv-type': { type: 'string', value: 'TYPE', description: 'KV cache type: f16, f32 or q8_0', default: 'f16' },
    'ignore-eos': { type: 'boolean', description: 'Keep generating past end-of-generation tokens' },
    json: { type: 'boolean', description: 'Print one JSON object: promptTokens, tokens, text, timings' },
  },
  examples: [
    'baton generate --model demo.gguf --prompt "Once upon a time" -n 64',
    'baton generate --model demo.gguf --tokens 1,2,3 -n 16 --split 0:2,2:4 --json',
    'baton generate --model demo.gguf --prompt "Hello" --temperature 0.8 --top-p 0.95 --seed 7',
  ],
  async run(ctx) {
    const model = requiredString(ctx, 'model');
    const promptText = stringOption(ctx, 'prompt');
    const tokenText = stringOption(ctx, 'tokens');
    if ((promptText === undefined) === (tokenText === undefined)) throw new CliError('give exactly one of --prompt TEXT or --tokens 1,2,3', EXIT_USAGE);
    const n = intOption(ctx, 'n', { min: 0, max: 1_000_000 }) ?? 32;
    const threads = intOption(ctx, 'threads', { min: 1, max: 1024 }) ?? 1;
    const kvType = stringOption(ctx, 'kv-type') ?? 'f16';
    if (!['f16', 'f32', 'q8_0'].includes(kvType)) throw new CliError(`--kv-type must be f16, f32 or q8_0; got ${JSON.stringify(kvType)}`, EXIT_USAGE);
    const greedy = flag(ctx, 'greedy');
    const seedText = stringOption(ctx, 'seed') ?? '0';
    if (!/^[0-9]+$/.test(seedText) || BigInt(seedText) > 0xffffffffffffffffn) throw new CliError(`--seed must be an integer in [0, 2^64); got ${JSON.stringify(seedText)}`, EXIT_USAGE);
    const sampling = {
      temperature: greedy ? 0 : (numberOption(ctx, 'temperature', { min: 0, max: 100 }) ?? 0),
      topK: intOption(ctx, 'top-k', { min: 0 }) ?? 0,
      topP: numberOption(ctx, 'top-p', { min: 0, max: 1 }) ?? 1,
      minP: numberOption(ctx, 'min-p', { min: 0, max: 1 }) ?? 0,
      repetitionPenalty: numberOption(ctx, 'repeat-penalty', { min: 0.01, max: 100 }) ?? 1,
      presencePenalty: numberOption(ctx, 'presence-penalty', { min: -100, max: 100 }) ?? 0,
      frequencyPenalty: numberOption(ctx, 'frequency-penalty', { min: -100, max: 100 }) ?? 0,
      penaltyLastN: intOption(ctx, 'penalty-last-n', { min: -1 }) ?? 64,
      seed: BigInt(seedText),
    };
    const json = flag(ctx, 'json');

    const { LocalPipeline, parseSplit, readGgufInfo, EngineError } = await import('@baton/engine');
    const { Tokenizer } = await import('@baton/tokenizer');
    let info;
    try {
      info = await readGgufInfo(model);
    } catch (error) {
      throw new CliError(`cannot read ${model}: ${(error as Error).message}`);
    }
    const arch = String(info.metadata['general.architecture'] ?? '');
    const layers = Number(info.metadata[`${arch}.block_count`] ?? 0);
    let tokenizer: InstanceType<typeof Tokenizer> | undefined;
    try {
      tokenizer = Tokenizer.fromGguf(info.metadata);
    } catch (error) {
      if (promptText !== undefined) throw new CliError(`cannot tokenize --prompt: ${(error as Error).message}; pass --tokens instead`);
    }
    const promptTokens = tokenText !== undefined ? parseTokenList(tokenText) : tokenizer!.encode(promptText!, { addSpecial: true });
    if (promptTokens.length === 0) throw new CliError('the prompt is empty: give some text or at least one token id', EXIT_USAGE);

    let ranges;
    try {
      ranges = ctx.values.split !== undefined ? parseSplit(stringOption(ctx, 'split')!, layers) : undefined;
    } catch (error) {
      throw new CliError(`--split: ${(error as Error).message}`, EXIT_USAGE);
    }
    const contextNeeded = promptTokens.length + n;
    let pipeline;
    try {
      pipeline = await LocalPipeline.load({ model, threads, kvDType: kvType as 'f16' | 'f32' | 'q8_0', kvTokens: Math.max(16, contextNeeded), maxContext: Math.max(16, contextNeeded) }, ranges);
    } catch (error) {
      throw new CliError(error instanceof EngineError ? error.message : String(error));
    }
    const vocab = pipeline.first.info.vocabSize;
    const bad = promptTokens.find((t) => t >= vocab);
    if (bad !== undefined) {
      await pipeline.close();
      throw new CliError(`token id ${bad} is outside the model's vocabulary [0, ${vocab})`, EXIT_USAGE);
    }
    if (contextNeeded > pipeline.first.info.contextLength && !json) {
      process.stderr.write(`warning: ${contextNeeded} tokens exceed the model's trained context of ${pipeline.first.info.contextLength}\n`);
    }

    const decoder = tokenizer?.decoder();
    const generated: number[] = [];
    let text = '';
    const emit = (id: number) => {
      const piece = decoder ? decoder.push(id) : '';
      text += piece;
      if (!json && piece) process.stdout.write(piece);
    };
    const ignoreEos = flag(ctx, 'ignore-eos');
    let prefillSeconds = 0;
    let decodeSeconds = 0;
    try {
      let input = promptTokens;
      let position = 0;
      for (let i = 0; i < n; i++) {
        const started = process.hrtime.bigint();
        const out = await pipeline.forward({ sequences: [{ sequenceId: 0, firstPosition: position, tokenCount: input.length, sampling }], tokens: input, output: 'sample' });
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        if (i === 0) prefillSeconds = seconds;
        else decodeSeconds += seconds;
        position += input.length;
        const token = out.tokens![0]!;
        generated.push(token);
        emit(token);
        if (!ignoreEos && tokenizer?.isEog(token)) break;
        input = [token];
      }
    } catch (error) {
      throw new CliError(`generation failed: ${(error as Error).message}`);
    } finally {
      await pipeline.close();
    }
    if (decoder) {
      const rest = decoder.flush();
      text += rest;
      if (!json && rest) process.stdout.write(rest);
    }
    // Prefill = the prompt pass (which also yields the first token); decode = every later step.
    const timings = {
      prefillTokensPerSec: prefillSeconds > 0 ? promptTokens.length / prefillSeconds : 0,
      decodeTokensPerSec: decodeSeconds > 0 ? (generated.length - 1) / decodeSeconds : 0,
    };
    if (json) {
      const result: GenerateJson = { promptTokens, tokens: generated, text, timings };
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } else {
      process.stdout.write('\n');
      process.stderr.write(
        `${promptTokens.length} prompt tokens at ${timings.prefillTokensPerSec.toFixed(1)} tok/s, ${generated.length} generated at ${timings.decodeTokensPerSec.toFixed(1)} tok/s` +
          `${ranges ? ` (split ${ranges.map((r) => `${r.start}:${r.end}`).join(',')})` : ''}\n`,
      );
    }
  },
};
