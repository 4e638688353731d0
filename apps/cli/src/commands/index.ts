// Every `baton` command, in the order `baton --help` lists them. One file per command.
import type { CommandSpec } from '../command.js';
import { benchTransportCommand } from './bench-transport.js';
import { generateCommand } from './generate.js';
import { benchEngineCommand } from './bench-engine.js';
import { upCommand } from './up.js';
import { nodeCommand } from './node.js';
import { nodesCommand } from './nodes.js';
import { modelMakeCommand } from './model-make.js';
import { modelInspectCommand } from './model-inspect.js';
import { planCommand } from './plan.js';
import { chatCommand } from './chat.js';
import { modelsCommand } from './models.js';
import { benchPipelineCommand } from './bench-pipeline.js';
import { benchKvCommand } from './bench-kv.js';
import { batchCommands } from './batch.js';

export const COMMANDS: CommandSpec[] = [
  upCommand,
  nodeCommand,
  nodesCommand,
  modelsCommand,
  modelMakeCommand,
  modelInspectCommand,
  planCommand,
  generateCommand,
  chatCommand,
  ...batchCommands,
  benchTransportCommand,
  benchEngineCommand,
  benchPipelineCommand,
  benchKvCommand,
];
