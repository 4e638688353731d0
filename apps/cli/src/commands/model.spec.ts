// `baton model make` and `baton model inspect` through the CLI's own entry point.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { runCli } from '../main.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-cli-model-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  try {
    const code = await runCli(argv);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

describe('baton model make / inspect', () => {
  it('makes a model with the documented defaults and inspects it', async () => {
    const path = join(dir, 'demo.gguf');
    const made = await run(['model', 'make', '--out', path, '--quiet']);
    expect(made.code).toBe(0);
    expect(made.out).toMatch(/wrote .*demo\.gguf: llama q8_0, dim 256 × 4 layers, 8 heads \(4 KV, head dim 32\), ffn 768, vocab 759, context 4096, seed 1/);
    const json = await run(['model', 'inspect', path, '--json']);
    expect(json.code).toBe(0);
    const manifest = JSON.parse(json.out);
    expect(Object.keys(manifest).sort()).toEqual([
      'activationBytesPerToken', 'arch', 'contextLength', 'embedBytes', 'embeddingLength', 'feedForwardLength', 'fileBytes', 'fileType',
      'headBytes', 'headCount', 'headCountKv', 'headDim', 'kvBytesPerToken', 'layerBytes', 'layers', 'name', 'tiedEmbeddings', 'vocabSize',
    ]);
    expect(manifest).toMatchObject({ arch: 'llama', layers: 4, embeddingLength: 256, headCount: 8, headCountKv: 4, contextLength: 4096, vocabSize: 759, fileBytes: statSync(path).size });
    expect(manifest.layerBytes).toHaveLength(4);
    // 4 layers × (K + V) × 4 KV heads × 32 dims = 1024 values per token.
    expect(manifest.kvBytesPerToken).toEqual({ f32: 4096, f16: 2048, q8_0: 1024 / 32 * 34 });
    const text = await run(['model', 'inspect', path]);
    expect(text.out).toMatch(/architecture\s+llama/);
    expect(text.out).toMatch(/KV per token/);
  });

  it('passes every shape flag through', async () => {
    const path = join(dir, 'qwen3.gguf');
    const made = await run(['model', 'make', '-o', path, '--arch', 'qwen3', '--dim', '64', '--layers', '2', '--heads', '2', '--kv-heads', '1',
      '--head-dim', '48', '--ffn', '96', '--type', 'f16', '--context', '1024', '--seed', '9', '--vocab', '600', '--tied-embeddings', '-q']);
    expect(made.code).toBe(0);
    const manifest = JSON.parse((await run(['model', 'inspect', path, '--json'])).out);
    expect(manifest).toMatchObject({ arch: 'qwen3', layers: 2, embeddingLength: 64, headCount: 2, headCountKv: 1, headDim: 48, feedForwardLength: 96, contextLength: 1024, vocabSize: 600, tiedEmbeddings: true, fileType: 'MOSTLY_F16' });
  });

  it('refuses bad input with a message and a non-zero exit', async () => {
    expect((await run(['model', 'make'])).err).toMatch(/--out is required/);
    const badType = await run(['model', 'make', '--out', join(dir, 'x.gguf'), '--type', 'q5_1']);
    expect(badType.code).toBe(64);
    expect(badType.err).toMatch(/--type must be one of f32, f16, q8_0, q4_0, q4_k/);
    const badShape = await run(['model', 'make', '--out', join(dir, 'x.gguf'), '--type', 'q4_k', '--dim', '128', '-q']);
    expect(badShape.err).toMatch(/multiple of 256/);
    const missing = await run(['model', 'inspect', join(dir, 'missing.gguf')]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/no such file/);
  });
});
