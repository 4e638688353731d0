// Compiles and runs the native kernel test (cpp/kernels/test/kernels_test.cc): every kernel set
// this CPU runs against the scalar reference, and the scalar reference against double-precision
// dot products, with the tolerances stated at the top of that file. Once optimized, once under
// AddressSanitizer + UndefinedBehaviorSanitizer (a quicker shape list). With BATON_TEST_ARM64=1
// it also cross-compiles the NEON kernels and runs them under qemu-aarch64
// (cpp/kernels/test/cross-arm64.sh; needs g++-aarch64-linux-gnu and qemu-user).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const kernels = resolve(import.meta.dirname, '../cpp/kernels');
const sources = ['test/kernels_test.cc', 'kernels.cc', 'kernels_scalar.cc', 'kernels_avx2.cc', 'kernels_avx512.cc', 'kernels_neon.cc', 'thread_pool.cc'].map(
  (f) => join(kernels, f),
);

function findCompiler(): string | undefined {
  for (const cxx of [process.env.CXX, 'g++', 'c++', 'clang++']) {
    if (!cxx) continue;
    const r = spawnSync(cxx, ['--version'], { stdio: 'ignore' });
    if (r.status === 0) return cxx;
  }
  return undefined;
}

const cxx = findCompiler();
const work = mkdtempSync(join(tmpdir(), 'baton-kernels-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function build(out: string, flags: string[]): void {
  execFileSync(cxx!, ['-std=c++17', '-pthread', ...flags, '-o', out, ...sources], { stdio: 'pipe' });
}

function run(bin: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): { status: number | null; out: string } {
  const r = spawnSync(bin, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe.skipIf(!cxx)('native kernels', () => {
  it('every kernel set matches the scalar reference and the reference matches double precision (-O2)', () => {
    const bin = join(work, 'kernels_test');
    build(bin, ['-O2']);
    const { status, out } = run(bin);
    expect(out).toMatch(/kernels-test: \d+ checks, 0 failures/);
    expect(status, out).toBe(0);
  });

  it('runs clean under AddressSanitizer and UndefinedBehaviorSanitizer', (ctx) => {
    const bin = join(work, 'kernels_test_asan');
    try {
      build(bin, ['-O0', '-g', '-fsanitize=address,undefined', '-fno-sanitize-recover=undefined', '-fno-omit-frame-pointer']);
    } catch (e) {
      // A toolchain without the sanitizer runtimes (libasan/libubsan) cannot run this check.
      const msg = String((e as { stderr?: Buffer }).stderr ?? e);
      if (/cannot find -l(asan|ubsan)|libasan|libubsan/.test(msg)) ctx.skip();
      throw e;
    }
    const { status, out } = run(bin, ['--quick'], { ASAN_OPTIONS: 'detect_leaks=1', UBSAN_OPTIONS: 'print_stacktrace=1' });
    expect(out).toMatch(/kernels-test: \d+ checks, 0 failures/);
    expect(status, out).toBe(0);
  });

  it.skipIf(process.env.BATON_TEST_ARM64 !== '1')('NEON kernels match the scalar reference under qemu-aarch64', () => {
    const r = spawnSync('sh', [join(kernels, 'test/cross-arm64.sh'), '--quick'], { encoding: 'utf8', timeout: 300_000 });
    const out = `${r.stdout}${r.stderr}`;
    expect(out).toMatch(/-march=armv8-a passed under qemu/);
    expect(out).toMatch(/-march=armv8\.2-a\+dotprod passed under qemu/);
    expect(r.status, out).toBe(0);
  }, 300_000);
});
