// Typed readers for option values: each names the flag and what was wrong with it.
import { parseByteSize } from '@baton/contracts';
import { CliError, EXIT_USAGE, type CommandContext } from './command.js';

export function stringOption(ctx: CommandContext, name: string): string | undefined {
  const value = ctx.values[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new CliError(`--${name} needs a value`, EXIT_USAGE);
  return value;
}

export function requiredString(ctx: CommandContext, name: string): string {
  const value = stringOption(ctx, name);
  if (value === undefined || value === '') throw new CliError(`--${name} is required (see --help)`, EXIT_USAGE);
  return value;
}

export function intOption(ctx: CommandContext, name: string, opts: { min?: number; max?: number } = {}): number | undefined {
  const raw = stringOption(ctx, name);
  if (raw === undefined) return undefined;
  if (!/^-?[0-9]+$/.test(raw.trim())) throw new CliError(`--${name} must be an integer, got ${JSON.stringify(raw)}`, EXIT_USAGE);
  const value = Number(raw);
  if (opts.min !== undefined && value < opts.min) throw new CliError(`--${name} must be at least ${opts.min}, got ${value}`, EXIT_USAGE);
  if (opts.max !== undefined && value > opts.max) throw new CliError(`--${name} must be at most ${opts.max}, got ${value}`, EXIT_USAGE);
  return value;
}

export function numberOption(ctx: CommandContext, name: string, opts: { min?: number; max?: number } = {}): number | undefined {
  const raw = stringOption(ctx, name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value)) throw new CliError(`--${name} must be a number, got ${JSON.stringify(raw)}`, EXIT_USAGE);
  if (opts.min !== undefined && value < opts.min) throw new CliError(`--${name} must be at least ${opts.min}, got ${value}`, EXIT_USAGE);
  if (opts.max !== undefined && value > opts.max) throw new CliError(`--${name} must be at most ${opts.max}, got ${value}`, EXIT_USAGE);
  return value;
}

export function bytesOption(ctx: CommandContext, name: string): number | undefined {
  const raw = stringOption(ctx, name);
  if (raw === undefined) return undefined;
  try {
    return parseByteSize(raw);
  } catch (error) {
    throw new CliError(`--${name}: ${(error as Error).message}`, EXIT_USAGE);
  }
}

export function choiceOption<T extends string>(ctx: CommandContext, name: string, choices: readonly T[]): T | undefined {
  const raw = stringOption(ctx, name);
  if (raw === undefined) return undefined;
  if (!(choices as readonly string[]).includes(raw)) throw new CliError(`--${name} must be one of ${choices.join(', ')}; got ${JSON.stringify(raw)}`, EXIT_USAGE);
  return raw as T;
}

export function flag(ctx: CommandContext, name: string): boolean {
  return ctx.values[name] === true;
}
