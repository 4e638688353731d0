import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeRandomModel } from '@baton/gguf';
import { findLocalModel, listLocalModels, ollamaModelsDirs } from './local-models.js';

let root: string;
const digest = (c: string) => c.repeat(64);

async function ollamaManifest(store: string, parts: string[], blobDigest: string, mediaType = 'application/vnd.ollama.image.model'): Promise<void> {
  await mkdir(join(store, 'manifests', ...parts.slice(0, -1)), { recursive: true });
  await writeFile(join(store, 'manifests', ...parts), JSON.stringify({ layers: [{ mediaType: 'application/vnd.ollama.image.license', digest: `sha256:${digest('0')}` }, { mediaType, digest: `sha256:${blobDigest}` }] }));
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'baton-local-models-'));
  const models = join(root, 'home', 'models');
  await mkdir(join(models, 'nested', 'deeper'), { recursive: true });
  const good = join(models, 'good.gguf');
  await writeRandomModel({ out: good, arch: 'qwen2', dim: 32, layers: 1, heads: 2, kvHeads: 1, ffn: 64, type: 'f16', context: 128, seed: 1 });
  await writeFile(join(models, 'broken.gguf'), 'not a gguf at all');
  await writeFile(join(models, 'notes.txt'), 'ignored');
  await writeFile(join(models, '.hidden.gguf'), 'ignored');
  await symlink(good, join(models, 'nested', 'linked.GGUF'));
  const store = join(root, 'ollama');
  await mkdir(join(store, 'blobs'), { recursive: true });
  await symlink(good, join(store, 'blobs', `sha256-${digest('a')}`));
  await ollamaManifest(store, ['registry.ollama.ai', 'library', 'qwen', '0.5b'], digest('a'));
  await ollamaManifest(store, ['registry.ollama.ai', 'someone', 'tool', 'latest'], digest('a'));
  await ollamaManifest(store, ['hf.co', 'org', 'repo', 'Q8_0'], digest('a'));
  await ollamaManifest(store, ['registry.ollama.ai', 'library', 'missing', 'latest'], digest('b')); // blob not downloaded
  await ollamaManifest(store, ['registry.ollama.ai', 'library', 'adapter', 'latest'], digest('a'), 'application/vnd.ollama.image.adapter');
  await writeFile(join(store, 'manifests', 'registry.ollama.ai', 'library', 'qwen', 'garbage'), '{not json');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('listLocalModels', () => {
  it('lists GGUF files with their header facts, and unreadable ones with the reason', async () => {
    const models = await listLocalModels({ batonHome: join(root, 'home'), ollamaModels: join(root, 'ollama') });
    expect(models.map((m) => [m.name, m.source, m.arch])).toEqual([
      ['broken', 'baton', null],
      ['good', 'baton', 'qwen2'],
      ['nested/linked', 'baton', 'qwen2'],
      ['hf.co/org/repo:Q8_0', 'ollama', 'qwen2'],
      ['qwen:0.5b', 'ollama', 'qwen2'],
      ['someone/tool:latest', 'ollama', 'qwen2'],
    ]);
    const good = models.find((m) => m.name === 'good')!;
    expect(good).toMatchObject({ arch: 'qwen2', fileType: 'MOSTLY_F16', contextLength: 128 });
    expect(good.sizeBytes).toBeGreaterThan(0);
    const broken = models.find((m) => m.name === 'broken')!;
    expect(broken).toMatchObject({ arch: null, fileType: null, contextLength: null });
    expect(broken.error).toMatch(/GGUF|magic|truncated/i);
  });

  it('resolves Ollama names to their blobs, skipping adapters, missing blobs and garbage', async () => {
    const models = await listLocalModels({ batonHome: join(root, 'nowhere'), ollamaModels: join(root, 'ollama') });
    expect(models.map((m) => m.name)).toEqual(['hf.co/org/repo:Q8_0', 'qwen:0.5b', 'someone/tool:latest']);
    for (const m of models) expect(m.path).toBe(join(root, 'ollama', 'blobs', `sha256-${digest('a')}`));
    expect(findLocalModel(models, 'qwen:0.5b')?.source).toBe('ollama');
  });

  it('finds nothing (and does not fail) where there are no stores', async () => {
    expect(await listLocalModels({ batonHome: join(root, 'nowhere'), ollamaModels: join(root, 'nowhere-either') })).toEqual([]);
  });

  it('reads OLLAMA_MODELS and BATON_HOME', () => {
    expect(ollamaModelsDirs({ env: { OLLAMA_MODELS: '/srv/ollama' } })).toEqual(['/srv/ollama']);
    expect(ollamaModelsDirs({ ollamaModels: null })).toEqual([]);
    expect(ollamaModelsDirs({ env: {} })).toHaveLength(2);
  });
});
