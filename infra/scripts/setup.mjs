#!/usr/bin/env node
// `npm run setup`: everything a new machine needs before `npx baton up` — dependencies
// (npm ci), the native addons (node-gyp, offline), the TypeScript build, and the demo model.
// Says what is missing and how to get it. `--skip-install` skips npm ci.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';

const root = resolve(import.meta.dirname, '../..');
const started = Date.now();
const step = (label) => process.stdout.write(`\n[setup] ${label} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
const fail = (message) => {
  console.error(`\n[setup] ${message}`);
  process.exit(1);
};
const run = (cmd, args, extraEnv = {}) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true', ...extraEnv } }).status;

const [major] = process.versions.node.split('.').map(Number);
if (major < 20) fail(`Node ${process.versions.node} is too old: Baton needs Node 20 or newer (https://nodejs.org).`);
for (const tool of [['g++', '--version'], ['make', '--version'], ['python3', '--version']]) {
  if (spawnSync(tool[0], [tool[1]], { stdio: 'ignore' }).status !== 0) {
    fail(`${tool[0]} is missing: the native engine and transport are C++ built with node-gyp.\n  Debian/Ubuntu: sudo apt-get install -y g++ make python3\n  macOS: xcode-select --install`);
  }
}

if (!process.argv.includes('--skip-install')) {
  step('installing dependencies (npm ci)');
  if (run('npm', ['ci', '--no-audit', '--no-fund']) !== 0) fail('npm ci failed (see above).');
}
step('building native addons');
if (run(process.execPath, [join(root, 'infra/scripts/build-native.mjs')]) !== 0) fail('the native build failed (see above).');
step('building TypeScript projects');
const nxBin = createRequire(join(root, 'package.json')).resolve('nx/bin/nx.js');
if (run(process.execPath, [nxBin, 'run-many', '-t', 'build', '--outputStyle=static']) !== 0) fail('the TypeScript build failed (see above).');
const demo = join(root, 'infra/scripts/demo-model.mjs');
if (existsSync(demo)) {
  step('writing the demo model');
  if (run(process.execPath, [demo]) !== 0) fail('writing the demo model failed (see above).');
}
const redisUp = spawnSync(process.execPath, ['-e', "const s=require('net').connect(6379,'127.0.0.1');s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(1))"]).status === 0;
const redisBinary = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
step('done');
if (!redisUp && !redisBinary) {
  console.log('Note: no Redis answers on 127.0.0.1:6379 and redis-server is not installed. `baton up` needs one:\n  Debian/Ubuntu: sudo apt-get install -y redis-server   macOS: brew install redis');
}
console.log('Next: `npx baton up` starts a local cluster; `npm test` runs the tests.');
