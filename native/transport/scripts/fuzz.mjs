#!/usr/bin/env node
// Builds cpp/fuzz_frame.cc with AddressSanitizer + UBSan and runs it: the frame header parser, the
// handshake parser and (when libuv can be linked) the I/O loop's receive path over loopback sockets.
//   node native/transport/scripts/fuzz.mjs [iterations=100000] [seed=random]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { tmpdir } from 'node:os';

const root = resolve(import.meta.dirname, '..');
const iterations = process.argv[2] ?? '100000';
const seed = process.argv[3] ?? String(Math.floor(Math.random() * 2 ** 31));
const out = join(tmpdir(), 'baton-transport-fuzz'); // not build/: node-gyp rebuild wipes that
mkdirSync(out, { recursive: true });
const binary = join(out, 'fuzz_frame');
const nodeInclude = join(dirname(dirname(process.execPath)), 'include', 'node');
const libuv = ['/usr/lib/x86_64-linux-gnu/libuv.so.1', '/usr/lib/aarch64-linux-gnu/libuv.so.1', '/usr/lib64/libuv.so.1', '/usr/lib/libuv.so.1'].find((path) => existsSync(path));
const sources = ['cpp/fuzz_frame.cc', 'cpp/handshake.cc', 'cpp/sha256.cc'];
const flags = ['-std=c++17', '-g', '-O1', '-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-fno-sanitize-recover=all'];
if (libuv && existsSync(join(nodeInclude, 'uv.h'))) {
  sources.push('cpp/io_loop.cc');
  flags.push('-DBATON_FUZZ_IO_LOOP', `-I${nodeInclude}`, libuv, '-lpthread');
} else {
  console.log('fuzz: libuv or Node headers not found; fuzzing the parsers only (not the I/O loop)');
}
const inputs = [...sources, 'cpp/frame.h', 'cpp/handshake.h', 'cpp/io_loop.h', 'cpp/sha256.h', 'scripts/fuzz.mjs'].map((s) => join(root, s));
const fresh = existsSync(binary) && inputs.every((input) => statSync(input).mtimeMs < statSync(binary).mtimeMs);
const compile = fresh ? { status: 0 } : spawnSync(process.env.CXX ?? 'g++', [...sources.map((s) => join(root, s)), ...flags, '-o', binary], { stdio: 'inherit' });
if (compile.status !== 0) {
  console.error('fuzz: the fuzz driver failed to compile (a C++17 compiler with AddressSanitizer is needed)');
  process.exit(compile.status ?? 1);
}
const run = spawnSync(binary, [iterations, seed], { stdio: 'inherit', env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=1' } });
if (run.status !== 0) console.error(`fuzz: FAILED with seed ${seed}; re-run with: node native/transport/scripts/fuzz.mjs ${iterations} ${seed}`);
process.exit(run.status ?? 1);
