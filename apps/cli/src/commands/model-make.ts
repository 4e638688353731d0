// `baton model make`: writes a random-weight GGUF model (llama / qwen2 / qwen3) with a byte-level
// BPE tokenizer and a ChatML template — the fixtures for tests and the demo model.
import { formatBytes } from '@baton/contracts';
import { CliError, EXIT_USAGE, type CommandSpec } from '../command.js';
import { choiceOption, flag, intOption, requiredString } from '../args.js';

const ARCHS = ['llama', 'qwen2', 'qwen3'] as const;
const TYPES = ['f32', 'f16', 'q8_0', 'q4_0', 'q4_k'] as const;
const D = { arch: 'llama', dim: 256, layers: 4, heads: 8, kvHeads: 4, ffn: 768, type: 'q8_0', context: 4096, seed: 1 };

export const modelMakeCommand: CommandSpec = {
  name: 'model make',
  summary: 'Write a random-weight GGUF model of real shape (tests, benchmarks, demo)',
  description: [
    'Tensors and metadata follow llama.cpp\'s layout for the architecture: token_embd, blk.N.{attn_norm,',
    'attn_q,attn_k,attn_v,attn_output,ffn_norm,ffn_gate,ffn_up,ffn_down} (+ Q/K/V biases for qwen2, Q/K',
    'norms for qwen3), output_norm and output. Norms and biases are F32; q4_k files are Q4_K_M-like',
    '(Q6_K for the output head and some attn_v / ffn_down); q4_0 files keep the head at Q6_K.',
    'Same options and seed → identical bytes. Quantized types need --dim, --ffn and heads × head-dim',
    'to be multiples of 32 (q8_0, q4_0) or 256 (q4_k).',
    'The vocabulary is 256 byte tokens + ~500 merges learned from a built-in English text + 3 specials',
    '(<|endoftext|>, <|im_start|>, <|im_end|>); --vocab N pads it with reserved control tokens.',
  ].join('\n'),
  options: {
    out: { type: 'string', short: 'o', value: 'FILE', description: 'Output file (required)' },
    arch: { type: 'string', value: 'ARCH', description: `Architecture: ${ARCHS.join(', ')}`, default: D.arch },
    dim: { type: 'string', value: 'N', description: 'Embedding length', default: String(D.dim) },
    layers: { type: 'string', value: 'N', description: 'Transformer layers', default: String(D.layers) },
    heads: { type: 'string', value: 'N', description: 'Attention heads', default: String(D.heads) },
    'kv-heads': { type: 'string', value: 'N', description: 'KV heads (grouped-query attention)', default: String(D.kvHeads) },
    'head-dim': { type: 'string', value: 'N', description: 'Per-head dimension (default dim / heads)' },
    ffn: { type: 'string', value: 'N', description: 'Feed-forward length', default: String(D.ffn) },
    type: { type: 'string', value: 'TYPE', description: `Weight type: ${TYPES.join(', ')}`, default: D.type },
    context: { type: 'string', value: 'N', description: 'Context length written in the metadata', default: String(D.context) },
    seed: { type: 'string', value: 'N', description: 'Random seed', default: String(D.seed) },
    vocab: { type: 'string', value: 'N', description: 'Vocabulary size (at least 259; default ~759)' },
    'tied-embeddings': { type: 'boolean', description: 'Omit output.weight (the head reuses token_embd)' },
    quiet: { type: 'boolean', short: 'q', description: 'No progress output' },
  },
  examples: [
    'baton model make --out demo.gguf',
    'baton model make --out m.gguf --arch qwen3 --dim 1024 --layers 16 --heads 16 --kv-heads 8 --head-dim 128 --ffn 3072 --type q4_k',
  ],
  async run(ctx) {
    const out = requiredString(ctx, 'out');
    const options = {
      out,
      arch: choiceOption(ctx, 'arch', ARCHS) ?? (D.arch as (typeof ARCHS)[number]),
      dim: intOption(ctx, 'dim', { min: 1 }) ?? D.dim,
      layers: intOption(ctx, 'layers', { min: 1, max: 4096 }) ?? D.layers,
      heads: intOption(ctx, 'heads', { min: 1 }) ?? D.heads,
      kvHeads: intOption(ctx, 'kv-heads', { min: 1 }) ?? D.kvHeads,
      headDim: intOption(ctx, 'head-dim', { min: 2 }),
      ffn: intOption(ctx, 'ffn', { min: 1 }) ?? D.ffn,
      type: choiceOption(ctx, 'type', TYPES) ?? (D.type as (typeof TYPES)[number]),
      context: intOption(ctx, 'context', { min: 1, max: 0xffffffff }) ?? D.context,
      seed: intOption(ctx, 'seed', { min: 0, max: Number.MAX_SAFE_INTEGER }) ?? D.seed,
      vocab: intOption(ctx, 'vocab', { min: 259, max: 0xffffffff }),
      tiedEmbeddings: flag(ctx, 'tied-embeddings'),
    };
    const { writeRandomModel, GgufError } = await import('@baton/gguf');
    const quiet = flag(ctx, 'quiet') || !process.stderr.isTTY;
    const started = Date.now();
    let lastPrint = 0;
    let result;
    try {
      result = await writeRandomModel(options, (p) => {
        const now = Date.now();
        if (quiet || now - lastPrint < 250) return;
        lastPrint = now;
        const elapsed = (now - started) / 1000;
        const eta = p.bytesWritten > 0 ? (elapsed * (p.totalBytes - p.bytesWritten)) / p.bytesWritten : 0;
        const pct = ((100 * p.bytesWritten) / p.totalBytes).toFixed(0).padStart(3);
        process.stderr.write(`\r${pct}%  ${formatBytes(p.bytesWritten)} / ${formatBytes(p.totalBytes)}  ETA ${eta.toFixed(1)} s  ${p.tensor.padEnd(28)}`);
      });
    } catch (error) {
      if (error instanceof GgufError) throw new CliError(error.message, EXIT_USAGE);
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new CliError(`cannot write ${out}: its directory does not exist`);
      if (code === 'EACCES' || code === 'EROFS') throw new CliError(`cannot write ${out}: permission denied`);
      if (code === 'ENOSPC') throw new CliError(`cannot write ${out}: the disk is full`);
      throw new CliError(`cannot write ${out}: ${(error as Error).message}`);
    } finally {
      if (!quiet && lastPrint > 0) process.stderr.write('\r\x1b[K');
    }
    const seconds = (Date.now() - started) / 1000;
    const headDim = options.headDim ?? options.dim / options.heads;
    console.log(
      `wrote ${out}: ${options.arch} ${options.type}, dim ${options.dim} × ${options.layers} layers, ${options.heads} heads ` +
        `(${options.kvHeads} KV, head dim ${headDim}), ffn ${options.ffn}, vocab ${result.vocabSize}, context ${options.context}, ` +
        `seed ${options.seed}: ${result.tensorCount} tensors, ${formatBytes(result.fileBytes)} in ${seconds.toFixed(1)} s`,
    );
  },
};
