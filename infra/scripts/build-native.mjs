#!/usr/bin/env node
// Builds every native addon (native/*/binding.gyp) with node-gyp, offline: node-gyp is pointed
// at this Node's own headers (--nodedir) so it never tries to download them.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const root = resolve(import.meta.dirname, '../..');
const require = createRequire(import.meta.url);
const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js');
const prefix = dirname(dirname(process.execPath));
const args = ['rebuild', '--jobs', 'max', '--loglevel=warn'];
if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
if (process.argv.includes('--debug')) args.push('--debug');

const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const addons = readdirSync(join(root, 'native')).filter((name) => existsSync(join(root, 'native', name, 'binding.gyp')) && (only.length === 0 || only.includes(name)));
for (const name of addons) {
  const cwd = join(root, 'native', name);
  const started = Date.now();
  process.stdout.write(`native: building ${name} …\n`);
  const result = spawnSync(process.execPath, [nodeGyp, ...args], { cwd, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) {
    console.error(`native: ${name} failed to build (exit ${result.status}). A C++17 compiler, make and python3 are needed: on Debian/Ubuntu \`apt-get install -y g++ make python3\`, on macOS \`xcode-select --install\`.`);
    process.exit(result.status ?? 1);
  }
  process.stdout.write(`native: ${name} built in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}
