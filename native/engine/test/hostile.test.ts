// Hostile and broken GGUF files get an error, never a crash: truncations, a garbage file, header
// fields set to huge values, and a few hundred random mutations under AddressSanitizer (the
// parser-only build of test/fuzz/gguf_fuzz.cc; the full fuzz run is `node
// native/engine/test/fuzz/run-fuzz.mjs`).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, checkGgufBytes, readGgufInfo } from '../src/index.js';
import { ModelDir } from './helpers.js';
// @ts-expect-error -- plain ESM script without types
import { runFuzzer } from './fuzz/run-fuzz.mjs';

let models: ModelDir;
let good: string;
let bytes: Uint8Array;

beforeAll(async () => {
  models = new ModelDir();
  good = await models.model({ arch: 'qwen2', type: 'q8_0' });
  bytes = readFileSync(good);
});

afterAll(() => models?.remove());

function variant(name: string, edit: (b: Uint8Array) => Uint8Array): string {
  const path = join(models.dir, name);
  writeFileSync(path, edit(Uint8Array.from(bytes)));
  return path;
}

describe('hostile GGUF files', () => {
  it('reads a valid file: metadata (string arrays included) and tensor infos', async () => {
    const info = await readGgufInfo(good);
    expect(info.metadata['general.architecture']).toBe('qwen2');
    expect(Array.isArray(info.metadata['tokenizer.ggml.tokens'])).toBe(true);
    expect(info.tensors.find((t) => t.name === 'blk.0.attn_q.bias')?.type).toBe('F32');
    expect(info.alignment).toBe(32);
    expect(checkGgufBytes(bytes)).toBeNull();
  });

  it('refuses truncated files at every kind of cut', async () => {
    for (const cut of [0, 3, 4, 8, 16, 23, 24, 100, 1000, bytes.length >> 1, bytes.length - 1]) {
      const error = checkGgufBytes(bytes.subarray(0, cut));
      expect(error, `cut at ${cut}`).toMatch(/./);
    }
    const path = variant('truncated.gguf', (b) => b.subarray(0, b.length - 100));
    await expect(Engine.load({ model: path })).rejects.toThrow(/runs past the end of the file/);
    await expect(readGgufInfo(path)).rejects.toThrow(/truncated download/);
  });

  it('refuses garbage, huge counts and a wrong version', async () => {
    const garbage = variant('garbage.gguf', (b) => b.map((_, i) => (i * 7919) & 0xff));
    await expect(Engine.load({ model: garbage })).rejects.toThrow(/not a GGUF file/);
    const huge = Uint8Array.from(bytes);
    new DataView(huge.buffer).setBigUint64(8, 0xffffffffffffffffn, true); // tensor count
    expect(checkGgufBytes(huge)).toMatch(/tensor count .* larger than the file/);
    const kv = Uint8Array.from(bytes);
    new DataView(kv.buffer).setBigUint64(16, 1n << 40n, true); // metadata count
    expect(checkGgufBytes(kv)).toMatch(/metadata count/);
    const version = Uint8Array.from(bytes);
    new DataView(version.buffer).setUint32(4, 99, true);
    expect(checkGgufBytes(version)).toMatch(/unsupported GGUF version 99/);
    const firstKeyLength = Uint8Array.from(bytes);
    new DataView(firstKeyLength.buffer).setBigUint64(24, 1n << 62n, true);
    expect(checkGgufBytes(firstKeyLength)).toMatch(/runs past the end/);
  });

  it('a directory or an empty file is refused', async () => {
    await expect(Engine.load({ model: models.dir })).rejects.toThrow(/not a regular file/);
    const empty = variant('empty.gguf', () => new Uint8Array(0));
    await expect(Engine.load({ model: empty })).rejects.toThrow(/shorter than a GGUF header/);
  });

  it('survives random mutations in-process (hundreds of cases)', async () => {
    let state = 12345;
    const rand = () => (state = (state * 1103515245 + 12345) >>> 0);
    let refused = 0;
    for (let i = 0; i < 400; i++) {
      const m = Uint8Array.from(bytes.subarray(0, 4096 + (rand() % (bytes.length - 4096))));
      for (let k = 0; k < 1 + (rand() % 6); k++) m[rand() % Math.min(m.length, 40000)] = rand() & 0xff;
      if (checkGgufBytes(m) !== null) refused++;
    }
    expect(refused).toBeGreaterThan(0);
  });

  const hasCompiler = spawnSync(process.env.CXX ?? 'g++', ['--version']).status === 0;
  it.runIf(hasCompiler)('a few hundred mutated files under AddressSanitizer', { timeout: 180_000 }, () => {
    const result = runFuzzer([good], 400, 2024, { parserOnly: true }) as { status: number; stdout: string; stderr: string };
    expect(result.stderr).not.toMatch(/ERROR: AddressSanitizer|runtime error/);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/400 cases/);
  });
});
