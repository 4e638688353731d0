import { formatBytes } from '@baton/contracts';
import type { CommandSpec } from '../command.js';
import { flag, stringOption } from '../args.js';
import { formatTable } from '../table.js';

export const modelsCommand: CommandSpec = {
  name: 'models',
  summary: 'List GGUF models on this machine (~/.baton/models and Ollama\'s store)',
  description:
    'Reads each file\'s GGUF header for its architecture, quantization and context length. Serve one with\n' +
    '`baton up --model PATH`. Ollama models are listed as name:tag with the path of their blob.',
  options: {
    json: { type: 'boolean', description: 'Print {"models": [...]} as JSON' },
    ollama: { type: 'string', value: 'DIR', description: 'Ollama\'s models directory (default $OLLAMA_MODELS or ~/.ollama/models)' },
  },
  examples: ['baton models', 'baton up --model "$(baton models --json | jq -r \'.models[0].path\')"'],
  async run(ctx) {
    const { listLocalModels } = await import('@baton/gateway');
    const ollama = stringOption(ctx, 'ollama');
    const models = await listLocalModels(ollama ? { ollamaModels: ollama } : {});
    if (flag(ctx, 'json')) {
      console.log(JSON.stringify({ models }, null, 2));
      return 0;
    }
    if (models.length === 0) {
      console.log('No GGUF models found under ~/.baton/models or in Ollama\'s store. Make one with `baton model make --out ~/.baton/models/test.gguf`, or `npm run setup` for the demo model.');
      return 0;
    }
    console.log(formatTable(
      ['NAME', 'SOURCE', 'ARCH', 'TYPE', 'CONTEXT', 'SIZE', 'PATH'],
      models.map((m) => [m.name, m.source, m.arch ?? `unreadable: ${m.error ?? '?'}`, m.fileType ?? '', m.contextLength ?? '', formatBytes(m.sizeBytes), m.path]),
    ));
    return 0;
  },
};
