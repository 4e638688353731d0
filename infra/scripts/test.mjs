#!/usr/bin/env node
// `npm test`: project boundaries, a build of every project (tests start real processes from
// dist/), then the whole vitest suite. Ends with a plain "N passed, N failed, N skipped" line.
// Needs a Redis on $REDIS_URL or 127.0.0.1:6379 (tests use their own key prefixes) and the
// native addons built by `npm run setup`. Extra arguments go to vitest (e.g. a path filter).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';

const root = resolve(import.meta.dirname, '../..');
const require = createRequire(import.meta.url);
const env = { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' };
const run = (label, args) => {
  process.stdout.write(`\n== ${label}\n`);
  const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env });
  return result.status ?? 1;
};

if (run('project boundaries', [join(root, 'infra/scripts/check-boundaries.mjs')]) !== 0) {
  console.log('\n0 passed, 1 failed');
  process.exit(1);
}
if (run('build', [require.resolve('nx/bin/nx.js'), 'run-many', '-t', 'build', '--outputStyle=static']) !== 0) {
  console.log('\n0 passed, 1 failed');
  process.exit(1);
}
const dir = mkdtempSync(join(tmpdir(), 'baton-test-'));
const report = join(dir, 'vitest.json');
const status = run('tests', [join(dirname(require.resolve('vitest/package.json')), 'vitest.mjs'), 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)]);
let passed = 0;
let failed = status === 0 ? 0 : 1;
let skipped = 0;
if (existsSync(report)) {
  const json = JSON.parse(readFileSync(report, 'utf8'));
  passed = json.numPassedTests;
  // Failed tests; else failed files (e.g. one that cannot import); else 1 if vitest itself failed.
  failed = json.numFailedTests || json.numFailedTestSuites || (status !== 0 ? 1 : 0);
  skipped = json.numPendingTests + (json.numTodoTests ?? 0);
}
rmSync(dir, { recursive: true, force: true });
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(status === 0 && failed === 0 ? 0 : 1);
