#!/usr/bin/env node
// Builds the GGUF fuzz driver (gguf_fuzz.cc + the engine sources of binding.gyp, under
// AddressSanitizer and UBSan) and runs it. Usage, from the repository root:
//   node native/engine/test/fuzz/run-fuzz.mjs [--cases N] [--seed S] [model.gguf ...]
// Without models it makes three small ones (llama f32, qwen2 q8_0, qwen3 q4_k) with @baton/gguf.
// Exit status: the driver's (0 = no crash or sanitizer report).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const engineDir = resolve(import.meta.dirname, '../..');
const outDir = join(engineDir, 'build', 'fuzz');

/** Compiles the driver if it is missing or older than any source. Returns the binary's path. */
export function buildFuzzer({ parserOnly = false } = {}) {
  const gyp = readFileSync(join(engineDir, 'binding.gyp'), 'utf8');
  const sources = parserOnly ? ['cpp/gguf.cc'] : [...gyp.matchAll(/"(cpp\/[^"]+\.cc)"/g)].map((m) => m[1]).filter((s) => s !== 'cpp/addon.cc');
  const binary = join(outDir, parserOnly ? 'gguf_fuzz_parser' : 'gguf_fuzz');
  const files = [join(engineDir, 'test/fuzz/gguf_fuzz.cc'), ...sources.map((s) => join(engineDir, s))];
  const headers = [...files, ...['engine.h', 'gguf.h', 'kv_pool.h', 'sampler.h', 'kernels/kernels.h'].map((h) => join(engineDir, 'cpp', h))];
  const newest = Math.max(...headers.filter((f) => existsSync(f)).map((f) => statSync(f).mtimeMs));
  if (existsSync(binary) && statSync(binary).mtimeMs > newest) return binary;
  mkdirSync(outDir, { recursive: true });
  const args = ['-std=c++17', '-O1', '-g', '-fsanitize=address,undefined', '-fno-sanitize-recover=undefined', '-fno-omit-frame-pointer',
    ...(parserOnly ? ['-DGGUF_FUZZ_PARSER_ONLY'] : []), `-I${join(engineDir, 'cpp')}`, ...files, '-o', binary, '-lpthread'];
  const result = spawnSync(process.env.CXX ?? 'g++', args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) throw new Error(`building the fuzz driver failed (g++ exit ${result.status})`);
  return binary;
}

/** Runs the driver; returns { status, stdout, stderr }. */
export function runFuzzer(models, cases, seed, { parserOnly = false } = {}) {
  const result = spawnSync(buildFuzzer({ parserOnly }), [String(cases), String(seed), ...models], {
    encoding: 'utf8',
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', UBSAN_OPTIONS: 'print_stacktrace=1' },
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function main() {
  const argv = process.argv.slice(2);
  let cases = 5000;
  let seed = Date.now() % 1_000_000;
  const models = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--cases') cases = Number(argv[++i]);
    else if (argv[i] === '--seed') seed = Number(argv[++i]);
    else models.push(argv[i]);
  }
  if (models.length === 0) {
    const { writeRandomModel } = await import('../../../../libs/gguf/dist/index.js');
    const dir = join(outDir, 'models');
    mkdirSync(dir, { recursive: true });
    const base = { dim: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 128, context: 256, seed: 3 };
    for (const [arch, type, extra] of [['llama', 'f32', {}], ['qwen2', 'q8_0', {}], ['qwen3', 'q4_k', { dim: 256, ffn: 256, headDim: 64 }]]) {
      const out = join(dir, `${arch}-${type}.gguf`);
      if (!existsSync(out)) await writeRandomModel({ ...base, ...extra, arch, type, out });
      models.push(out);
    }
  }
  console.log(`fuzzing ${models.length} model(s), ${cases} cases, seed ${seed}`);
  const { status, stdout, stderr } = runFuzzer(models, cases, seed);
  process.stdout.write(stdout);
  process.stderr.write(stderr);
  process.exit(status ?? 1);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) await main();
