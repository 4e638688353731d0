// Every `baton` command, in the order `baton --help` lists them. One file per command.
import type { CommandSpec } from '../command.js';
import { upCommand } from './up.js';
import { nodeCommand } from './node.js';
import { nodesCommand } from './nodes.js';

export const COMMANDS: CommandSpec[] = [
  upCommand,
  nodeCommand,
  nodesCommand,
];
