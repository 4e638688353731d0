// GGUF files on this machine that could be served: *.gguf under $BATON_HOME/models (default
// ~/.baton/models, two directory levels deep) and models in Ollama's store ($OLLAMA_MODELS, else
// ~/.ollama/models and /usr/share/ollama/.ollama/models:
// manifests/<registry>/<namespace>/<model>/<tag> → blobs/sha256-<hex>). Each
// file's header is read for its architecture, quantization and context length (cached by path,
// mtime and size); a file whose header cannot be read is listed with the reason.
import { readdir, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join, relative, sep } from 'node:path';
import type { LocalModelFile } from '@baton/contracts';
import { manifestFromGguf, readGguf } from '@baton/gguf';

export interface LocalModelsOptions {
  /** Baton's home (default $BATON_HOME or ~/.baton); models are read from <home>/models. */
  batonHome?: string;
  /** Ollama's models directory (default $OLLAMA_MODELS, else ~/.ollama/models and the Linux service's); null to skip Ollama. */
  ollamaModels?: string | null;
  env?: NodeJS.ProcessEnv;
}

const OLLAMA_MODEL_MEDIA_TYPE = 'application/vnd.ollama.image.model';
const OLLAMA_DEFAULT_REGISTRY = 'registry.ollama.ai';
/** Largest Ollama manifest read (they are ~1 KB). */
const MAX_MANIFEST_BYTES = 1 << 20;

export function batonModelsDir(options: LocalModelsOptions = {}): string {
  const env = options.env ?? process.env;
  const home = options.batonHome ?? (env.BATON_HOME && env.BATON_HOME.trim() !== '' ? env.BATON_HOME : join(homedir(), '.baton'));
  return join(home, 'models');
}

/** Where the Linux install script's system service keeps its models. */
const OLLAMA_SYSTEM_MODELS = '/usr/share/ollama/.ollama/models';

/** Ollama model directories to scan: the one given, else $OLLAMA_MODELS, else ~/.ollama/models and the Linux service's. */
export function ollamaModelsDirs(options: LocalModelsOptions = {}): string[] {
  if (options.ollamaModels === null) return [];
  if (options.ollamaModels !== undefined) return [options.ollamaModels];
  const env = options.env ?? process.env;
  if (env.OLLAMA_MODELS && env.OLLAMA_MODELS.trim() !== '') return [env.OLLAMA_MODELS];
  return [join(homedir(), '.ollama', 'models'), OLLAMA_SYSTEM_MODELS];
}

type Header = Pick<LocalModelFile, 'arch' | 'fileType' | 'contextLength' | 'error'>;
const headerCache = new Map<string, { key: string; header: Header }>();

async function describe(path: string, sizeBytes: number, modifiedMs: number): Promise<Header> {
  const key = `${modifiedMs}:${sizeBytes}`;
  const hit = headerCache.get(path);
  if (hit && hit.key === key) return hit.header;
  let header: Header;
  try {
    const manifest = manifestFromGguf(await readGguf(path));
    header = { arch: manifest.arch, fileType: manifest.fileType, contextLength: manifest.contextLength || null };
  } catch (error) {
    header = { arch: null, fileType: null, contextLength: null, error: (error as Error).message };
  }
  headerCache.set(path, { key, header });
  return header;
}

async function entries(dir: string): Promise<import('node:fs').Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

async function scanBaton(dir: string): Promise<LocalModelFile[]> {
  const out: LocalModelFile[] = [];
  const walk = async (at: string, depth: number): Promise<void> => {
    for (const entry of await entries(at)) {
      const path = join(at, entry.name);
      if (entry.name.startsWith('.')) continue;
      if (entry.isDirectory() && depth > 0) {
        await walk(path, depth - 1);
        continue;
      }
      if (!entry.name.toLowerCase().endsWith('.gguf')) continue;
      let st;
      try {
        st = await stat(path); // follows symlinks
      } catch {
        continue;
      }
      if (!st.isFile()) continue;
      const name = relative(dir, path).split(sep).join('/').replace(/\.gguf$/i, '');
      out.push({ name, path, source: 'baton', sizeBytes: st.size, modifiedMs: Math.round(st.mtimeMs), ...(await describe(path, st.size, Math.round(st.mtimeMs))) });
    }
  };
  await walk(dir, 2);
  return out;
}

/** Ollama's display name: "llama3.2:1b" for the default registry's library, else "host/ns/model:tag". */
function ollamaName(parts: string[]): string {
  const [registry, namespace, model, tag] = parts as [string, string, string, string];
  if (registry === OLLAMA_DEFAULT_REGISTRY && namespace === 'library') return `${model}:${tag}`;
  if (registry === OLLAMA_DEFAULT_REGISTRY) return `${namespace}/${model}:${tag}`;
  return `${registry}/${namespace}/${model}:${tag}`;
}

async function scanOllama(root: string): Promise<LocalModelFile[]> {
  const manifests = join(root, 'manifests');
  const found: string[][] = [];
  const walk = async (at: string, parts: string[]): Promise<void> => {
    for (const entry of await entries(at)) {
      if (entry.name.startsWith('.')) continue;
      if (parts.length < 3) {
        if (entry.isDirectory()) await walk(join(at, entry.name), [...parts, entry.name]);
      } else if (entry.isFile()) {
        found.push([...parts, entry.name]);
      }
    }
  };
  await walk(manifests, []);
  const out: LocalModelFile[] = [];
  for (const parts of found) {
    let digest: string | undefined;
    try {
      const file = join(manifests, ...parts);
      if ((await stat(file)).size > MAX_MANIFEST_BYTES) continue;
      const manifest = JSON.parse(await readFile(file, 'utf8')) as { layers?: { mediaType?: unknown; digest?: unknown }[] };
      digest = manifest.layers?.find((l) => l.mediaType === OLLAMA_MODEL_MEDIA_TYPE)?.digest as string | undefined;
    } catch {
      continue; // not a manifest we understand
    }
    if (typeof digest !== 'string' || !/^sha256[:-][0-9a-f]{64}$/.test(digest)) continue;
    const path = join(root, 'blobs', digest.replace(':', '-'));
    let st;
    try {
      st = await stat(path);
    } catch {
      continue; // the blob is not downloaded
    }
    if (!st.isFile()) continue;
    const modifiedMs = Math.round(st.mtimeMs);
    out.push({ name: ollamaName(parts), path, source: 'ollama', sizeBytes: st.size, modifiedMs, ...(await describe(path, st.size, modifiedMs)) });
  }
  return out;
}

/**
 * Every GGUF file under $BATON_HOME/models and in Ollama's store, Baton's first, each group by
 * name. Every name is listed (several Ollama tags often share one blob; a symlink in
 * ~/.baton/models is its own name); a store reached twice is listed once.
 */
export async function listLocalModels(options: LocalModelsOptions = {}): Promise<LocalModelFile[]> {
  const [baton, ...fromOllamaDirs] = await Promise.all([scanBaton(batonModelsDir(options)), ...ollamaModelsDirs(options).map((dir) => scanOllama(dir))]);
  const fromOllama = fromOllamaDirs.flat();
  const byName = (a: LocalModelFile, b: LocalModelFile) => a.name.localeCompare(b.name);
  const seen = new Set<string>();
  const out: LocalModelFile[] = [];
  for (const model of [...baton.sort(byName), ...fromOllama.sort(byName)]) {
    const key = `${model.name}\0${model.path}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(model);
  }
  return out;
}

/** The model a name refers to: an exact name, else a file name without extension. */
export function findLocalModel(models: LocalModelFile[], name: string): LocalModelFile | undefined {
  return models.find((m) => m.name === name) ?? models.find((m) => basename(m.path).replace(/\.gguf$/i, '') === name);
}
