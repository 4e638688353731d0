// Shared fixtures for the engine tests: small random models written once per test file.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GgufWriter, readGguf, writeRandomModel, type GgufValue, type RandomModelArch, type RandomModelType } from '@baton/gguf';

export interface ModelSpec {
  arch: RandomModelArch;
  type: RandomModelType;
  tied?: boolean;
}

/** Small shapes per type: quantized K types need multiples of 256. qwen3 uses head dim ≠ dim / heads. */
export function shapeFor(spec: ModelSpec) {
  const k = spec.type === 'q4_k';
  const dim = k ? 256 : 64;
  const heads = 4;
  const headDim = spec.arch === 'qwen3' ? (k ? 128 : 32) : undefined;
  return { dim, layers: 3, heads, kvHeads: spec.arch === 'qwen3' ? 1 : 2, headDim, ffn: k ? 512 : 128, context: 512, seed: 11 };
}

export class ModelDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'baton-engine-test-'));
  private readonly made = new Map<string, string>();

  async model(spec: ModelSpec): Promise<string> {
    const name = `${spec.arch}-${spec.type}${spec.tied ? '-tied' : ''}.gguf`;
    const existing = this.made.get(name);
    if (existing) return existing;
    const out = join(this.dir, name);
    await writeRandomModel({ ...shapeFor(spec), arch: spec.arch, type: spec.type, tiedEmbeddings: spec.tied ?? false, out });
    this.made.set(name, out);
    return out;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function softmax(logits: Float32Array, offset = 0, n = logits.length - offset): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, logits[offset + i]!);
  const p = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    p[i] = Math.exp(logits[offset + i]! - max);
    sum += p[i]!;
  }
  for (let i = 0; i < n; i++) p[i]! /= sum;
  return p;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export const PROMPT = [1, 17, 200, 33, 45, 101, 7, 256, 300, 12, 99, 5];

/**
 * Rewrites a GGUF with extra metadata and extra F32 tensors (e.g. rope_freqs.weight, which the
 * random-model writer does not make), copying every existing tensor's bytes.
 */
export async function rewriteModel(src: string, out: string, extraMetadata: Record<string, GgufValue>, extraTensors: { name: string; values: Float32Array }[]): Promise<string> {
  const file = await readGguf(src);
  const bytes = readFileSync(src);
  const writer = new GgufWriter({ alignment: file.alignment });
  for (const [key, value] of file.metadata) if (key !== 'general.alignment') writer.set(key, value);
  for (const [key, value] of Object.entries(extraMetadata)) writer.set(key, value);
  for (const t of file.tensors) writer.addTensor(t.name, t.dims, t.type);
  for (const t of extraTensors) writer.addTensor(t.name, [t.values.length], 0);
  await writer.open(out);
  for (const t of file.tensors) await writer.writeTensorData(bytes.subarray(t.fileOffset, t.fileOffset + t.bytes));
  for (const t of extraTensors) await writer.writeTensorData(new Uint8Array(t.values.buffer, t.values.byteOffset, t.values.byteLength));
  await writer.close();
  return out;
}
