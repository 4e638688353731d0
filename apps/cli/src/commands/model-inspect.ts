// `baton model inspect`: a GGUF file's model manifest (what placement needs) and tensor summary.
import { formatBytes } from '@baton/contracts';
import { CliError, type CommandSpec } from '../command.js';
import { flag } from '../args.js';
import { formatTable } from '../table.js';

export const modelInspectCommand: CommandSpec = {
  name: 'model inspect',
  summary: 'Show a GGUF model\'s architecture, sizes per layer and KV bytes per token',
  description: 'Reads only the file\'s header. Works on any GGUF file, Ollama blobs included\n(~/.ollama/models/blobs/sha256-…). --json prints the ModelManifest the planner uses.',
  positionals: [{ name: 'file', description: 'A GGUF model file', required: true }],
  options: {
    json: { type: 'boolean', description: 'Print the model manifest as JSON' },
    tensors: { type: 'boolean', description: 'Also list every tensor (name, type, shape, bytes)' },
  },
  examples: ['baton model inspect demo.gguf', 'baton model inspect ~/.ollama/models/blobs/sha256-… --json'],
  async run(ctx) {
    const path = ctx.positionals[0]!;
    const { readGguf, manifestFromGguf, metaString, metaArrayLength, SUPPORTED_ARCHS, GgufError } = await import('@baton/gguf');
    let file;
    let manifest;
    try {
      file = await readGguf(path);
      manifest = manifestFromGguf(file);
    } catch (error) {
      if (error instanceof GgufError) throw new CliError(error.message);
      throw error;
    }
    if (flag(ctx, 'json')) {
      console.log(JSON.stringify(manifest, null, 2));
      return;
    }
    const layerTotal = manifest.layerBytes.reduce((a, b) => a + b, 0);
    const minLayer = Math.min(...manifest.layerBytes);
    const maxLayer = Math.max(...manifest.layerBytes);
    const typeCounts = new Map<string, number>();
    for (const t of file.tensors) typeCounts.set(t.typeName, (typeCounts.get(t.typeName) ?? 0) + 1);
    const template = metaString(file.metadata, 'tokenizer.chat_template');
    const lines = [
      `${manifest.name}  (${path})`,
      `  architecture     ${manifest.arch}${SUPPORTED_ARCHS.includes(manifest.arch) ? '' : '  (not one Baton\'s engine runs: llama, qwen2, qwen3)'}`,
      `  file type        ${manifest.fileType}  (tensors: ${[...typeCounts].map(([t, n]) => `${n} ${t}`).join(', ')})`,
      `  file size        ${formatBytes(manifest.fileBytes)}  (GGUF v${file.version}, ${file.tensors.length} tensors, alignment ${file.alignment})`,
      `  layers           ${manifest.layers}  (${formatBytes(layerTotal)}; per layer ${minLayer === maxLayer ? formatBytes(minLayer) : `${formatBytes(minLayer)} – ${formatBytes(maxLayer)}`})`,
      `  embedding        ${manifest.embeddingLength}  (token_embd ${formatBytes(manifest.embedBytes)})`,
      `  head             ${formatBytes(manifest.headBytes)}${manifest.tiedEmbeddings ? '  (tied: reuses token_embd)' : ''}`,
      `  feed-forward     ${manifest.feedForwardLength}`,
      `  attention        ${manifest.headCount} heads, ${manifest.headCountKv} KV heads, head dim ${manifest.headDim}`,
      `  context length   ${manifest.contextLength}`,
      `  vocabulary       ${manifest.vocabSize}  (${metaString(file.metadata, 'tokenizer.ggml.model') ?? 'no tokenizer'}${metaArrayLength(file.metadata, 'tokenizer.ggml.merges') !== undefined ? `, ${metaArrayLength(file.metadata, 'tokenizer.ggml.merges')} merges` : ''}${template ? ', chat template' : ''})`,
      `  KV per token     f32 ${formatBytes(manifest.kvBytesPerToken.f32)}, f16 ${formatBytes(manifest.kvBytesPerToken.f16)}, q8_0 ${formatBytes(manifest.kvBytesPerToken.q8_0)}  (all layers)`,
      `  activation       ${formatBytes(manifest.activationBytesPerToken)} per token between stages`,
    ];
    console.log(lines.join('\n'));
    if (flag(ctx, 'tensors')) {
      console.log('\n' + formatTable(['TENSOR', 'TYPE', 'SHAPE', 'BYTES'], file.tensors.map((t) => [t.name, t.typeName, t.dims.join(' × '), t.bytes])));
    }
  },
};
