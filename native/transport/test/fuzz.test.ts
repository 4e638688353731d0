// A short run of the AddressSanitizer fuzz driver (scripts/fuzz.mjs): header parser, handshake
// parser and the I/O loop's receive path. The full run is `node native/transport/scripts/fuzz.mjs 1000000`.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../scripts/fuzz.mjs', import.meta.url));
const compiler = spawnSync(process.env.CXX ?? 'g++', ['--version']);

describe('frame parser fuzz (ASan + UBSan)', () => {
  it.skipIf(compiler.status !== 0)('finds no out-of-bounds access or undefined behaviour', () => {
    const run = spawnSync(process.execPath, [script, '20000', '12345'], { encoding: 'utf8', timeout: 240_000 });
    expect(run.stderr).not.toMatch(/AddressSanitizer|runtime error/);
    expect(run.stdout).toMatch(/fuzz: ok/);
    expect(run.status).toBe(0);
  }, 240_000);
});
