#!/usr/bin/env node
// `npx baton …` entry: runs the built CLI (apps/cli/dist). Build it with `npm run setup`.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
if (!existsSync(main)) {
  console.error('baton: the workspace is not built yet. Run `npm run setup` (or `npm run build`) in the Baton checkout first.');
  process.exit(1);
}
const { runCli } = await import(main);
process.exitCode = await runCli(process.argv.slice(2));
