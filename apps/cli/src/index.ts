export { runCli } from './main.js';
export type { CommandSpec, CommandContext } from './command.js';
