// The `baton` command line: finds the command named by the first one or two words, parses its
// flags strictly (an unknown flag is an error that names it), prints help, runs it.
import { parseArgs } from 'node:util';
import { Logger } from '@nestjs/common';
import { BATON_VERSION } from '@baton/contracts';
import { CliError, EXIT_USAGE, type CommandSpec } from './command.js';
import { COMMANDS } from './commands/index.js';

function commandHelp(spec: CommandSpec): string {
  const lines: string[] = [];
  const positionals = (spec.positionals ?? []).map((p) => (p.required ? `<${p.name}>` : `[${p.name}]`)).join(' ');
  lines.push(`Usage: baton ${spec.name}${positionals ? ` ${positionals}` : ''} [options]`, '', spec.summary);
  if (spec.description) lines.push('', spec.description);
  if (spec.positionals?.length) {
    lines.push('', 'Arguments:');
    for (const p of spec.positionals) lines.push(`  ${p.name.padEnd(24)} ${p.description}`);
  }
  lines.push('', 'Options:');
  const entries = Object.entries(spec.options);
  entries.push(['help', { type: 'boolean', short: 'h', description: 'Show this help' }]);
  for (const [name, option] of entries) {
    const left = `${option.short ? `-${option.short}, ` : '    '}--${name}${option.type === 'string' ? ` ${option.value ?? 'VALUE'}` : ''}`;
    const def = option.default !== undefined && option.default !== false ? ` (default: ${option.default})` : '';
    lines.push(`  ${left.padEnd(30)} ${option.description}${def}`);
  }
  if (spec.examples?.length) {
    lines.push('', 'Examples:');
    for (const example of spec.examples) lines.push(`  ${example}`);
  }
  return lines.join('\n');
}

function topHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `baton ${BATON_VERSION} — run one large language model across several ordinary machines`,
    '',
    'Usage: baton <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `baton <command> --help` for a command\'s options.',
  ].join('\n');
}

function findCommand(argv: string[]): { spec: CommandSpec; rest: string[] } | undefined {
  const two = argv.slice(0, 2).join(' ');
  const byTwo = COMMANDS.find((c) => c.name === two);
  if (byTwo) return { spec: byTwo, rest: argv.slice(2) };
  const byOne = COMMANDS.find((c) => c.name === argv[0]);
  if (byOne) return { spec: byOne, rest: argv.slice(1) };
  return undefined;
}

export async function runCli(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    console.log(topHelp());
    return 0;
  }
  if (argv[0] === '--version' || argv[0] === '-v') {
    console.log(BATON_VERSION);
    return 0;
  }
  const found = findCommand(argv);
  if (!found) {
    const group = COMMANDS.filter((c) => c.name.startsWith(`${argv[0]} `));
    if (group.length > 0) {
      console.error(`baton ${argv[0]}: choose one of: ${group.map((c) => c.name).join(', ')}`);
    } else {
      console.error(`baton: unknown command ${JSON.stringify(argv[0])}. Run \`baton --help\` for the list.`);
    }
    return EXIT_USAGE;
  }
  const { spec, rest } = found;
  // Library logs (Nest's "Connected to Redis" …) would mix with command output such as --json:
  // only warnings and errors, on stderr, unless the command runs a service in this process.
  if (spec.name !== 'node') Logger.overrideLogger(['warn', 'error']);
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...spec.options, help: { type: 'boolean', short: 'h' } } as never,
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    console.error(`baton ${spec.name}: ${(error as Error).message}\nRun \`baton ${spec.name} --help\` for its options.`);
    return EXIT_USAGE;
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  if (values.help) {
    console.log(commandHelp(spec));
    return 0;
  }
  const maxPositionals = spec.positionals?.length ?? 0;
  if (parsed.positionals.length > maxPositionals) {
    console.error(`baton ${spec.name}: unexpected argument ${JSON.stringify(parsed.positionals[maxPositionals])}. Run \`baton ${spec.name} --help\`.`);
    return EXIT_USAGE;
  }
  for (const [i, p] of (spec.positionals ?? []).entries()) {
    if (p.required && parsed.positionals[i] === undefined) {
      console.error(`baton ${spec.name}: missing <${p.name}>. Run \`baton ${spec.name} --help\`.`);
      return EXIT_USAGE;
    }
  }
  // `baton node` runs a shard in this process: tracing (when configured) and /metrics (with
  // BATON_METRICS_PORT) are this process's
  let telemetry: { stop(): Promise<void> } | undefined;
  if (spec.name === 'node') {
    const { TelemetryConfigError, startProcessTelemetry } = await import('@baton/telemetry');
    try {
      telemetry = await startProcessTelemetry('baton-shard', { resource: { 'process.pid': process.pid } });
    } catch (error) {
      if (!(error instanceof TelemetryConfigError)) throw error;
      console.error(`baton node: ${error.message}`);
      return EXIT_USAGE;
    }
  }
  try {
    const code = await spec.run({ values, positionals: parsed.positionals });
    return code ?? 0;
  } catch (error) {
    if (error instanceof CliError) {
      console.error(`baton ${spec.name}: ${error.message}`);
      return error.exitCode;
    }
    console.error(`baton ${spec.name}: ${(error as Error).stack ?? String(error)}`);
    return 1;
  } finally {
    await telemetry?.stop();
  }
}
