// The shape of one CLI command. Specs are light (no heavy imports at module load): a command
// imports what it needs inside run(), so `baton --help` and `baton model inspect` start fast.
export type OptionSpec = {
  type: 'string' | 'boolean';
  short?: string;
  description: string;
  /** Shown in help as the value's name, e.g. URL, N, FILE. */
  value?: string;
  default?: string | boolean;
  multiple?: boolean;
};

export interface CommandContext {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export interface CommandSpec {
  /** One or two words: "nodes", "model make". */
  name: string;
  summary: string;
  /** Extra paragraphs shown by --help. */
  description?: string;
  positionals?: { name: string; description: string; required?: boolean }[];
  options: Record<string, OptionSpec>;
  examples?: string[];
  /** Returns the process exit code (0 when omitted). */
  run(ctx: CommandContext): Promise<number | void>;
}

/** A user-facing error: printed without a stack, with the given exit code. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'CliError';
  }
}

/** Exit code for a command line that cannot be parsed (EX_USAGE). */
export const EXIT_USAGE = 64;
