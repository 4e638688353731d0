// Access to llama.cpp's own tokenizer test material and to llama.cpp's tokenizer itself.
//
// node-llama-cpp ships llama.cpp's source as a git bundle (llama/gitRelease.bundle); its models/
// folder holds vocab-only GGUFs (ggml-vocab-*.gguf) with reference tokenizations (.inp/.out).
// We extract them once into a cache folder under the OS temp dir.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

function bundlePath(): string | undefined {
  const candidates = [resolve(here, '../../../../node_modules/node-llama-cpp/llama/gitRelease.bundle')];
  try {
    // the package's main entry lives in dist/; the bundle is in llama/ next to it
    let d = dirname(require.resolve('node-llama-cpp'));
    while (d !== dirname(d) && !existsSync(join(d, 'package.json'))) d = dirname(d);
    candidates.push(join(d, 'llama', 'gitRelease.bundle'));
  } catch {
    // not resolvable from here: the relative candidate is all we have
  }
  return candidates.find((p) => existsSync(p));
}

let gitDir: string | null | undefined;

/** A bare clone of node-llama-cpp's llama.cpp bundle (cached under the temp dir), or null when unavailable. */
function llamaCppGit(): string | null {
  if (gitDir !== undefined) return gitDir;
  const bundle = bundlePath();
  if (!bundle) return (gitDir = null);
  const dir = join(tmpdir(), 'baton-tokenizer-llama-cpp');
  if (!existsSync(join(dir, 'HEAD'))) {
    // clone beside and rename into place, so concurrent test runs never see a half-made clone
    const tmp = `${dir}.${process.pid}`;
    const r = spawnSync('git', ['clone', '-q', '--bare', bundle, tmp], { stdio: 'ignore' });
    if (r.status !== 0) return (gitDir = null);
    try {
      renameSync(tmp, dir);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another run got there first
    }
    if (!existsSync(join(dir, 'HEAD'))) return (gitDir = null);
  }
  return (gitDir = dir);
}

/** Path of an extracted file of llama.cpp's source tree (e.g. models/ggml-vocab-gpt-2.gguf), or null. */
export function llamaCppFile(rel: string): string | null {
  const git = llamaCppGit();
  if (!git) return null;
  const out = join(git, 'extracted', rel);
  if (!existsSync(out)) {
    mkdirSync(dirname(out), { recursive: true });
    try {
      const tmp = `${out}.${process.pid}`;
      writeFileSync(tmp, execFileSync('git', ['--git-dir', git, 'show', `HEAD:${rel}`], { maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] }));
      renameSync(tmp, out);
    } catch {
      return null;
    }
  }
  return out;
}

export interface LlamaResult {
  /** set when llama.cpp could not load the model (the other fields are then absent) */
  error?: string;
  /** wall time of the tokenize(parse_special=false) calls in the child */
  tokenizeMs: number;
  /** llama_tokenize(add_special=false, parse_special=false) of each text */
  tokens: number[][];
  /** llama_tokenize(add_special=false, parse_special=true) of each text */
  tokensSpecial: number[][];
  /** llama_detokenize(remove_special=false, unparse_special=false) of each id list */
  pieces: string[];
  /** llama_detokenize(remove_special=false, unparse_special=true) of each id list */
  piecesSpecial: string[];
}

export interface LlamaJob {
  model: string;
  texts: string[];
  detokenize?: number[][];
}

/**
 * Runs llama.cpp's tokenizer through node-llama-cpp in one child process (models loaded
 * vocab-only, one after the other), one result per job.
 */
export function llamaTokenizeMany(jobs: LlamaJob[]): LlamaResult[] {
  const script = resolve(here, 'llama-tokenize.mjs');
  const r = spawnSync(process.execPath, [script], {
    input: JSON.stringify({ jobs }),
    encoding: 'utf8',
    maxBuffer: 512 << 20,
    cwd: resolve(here, '../../../..'),
    timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`llama.cpp tokenizer child failed (${r.status ?? r.signal}): ${r.stderr.slice(-2000)}`);
  return (JSON.parse(r.stdout) as { results: LlamaResult[] }).results;
}

export function llamaTokenize(model: string, texts: string[], detokenize: number[][] = []): LlamaResult {
  return llamaTokenizeMany([{ model, texts, detokenize }])[0]!;
}

/** Reads llama.cpp's test-tokenizer-0 material: inputs and expected ids (from the HF tokenizer). */
export function parseVocabTests(inp: string, out: string): { text: string; ids: number[] }[] {
  // as tests/test-tokenizer-0.cpp splits them
  const sep = '\n__ggml_vocab_test__\n';
  const texts: string[] = [];
  let pos = 0;
  while (pos < inp.length) {
    const next = inp.indexOf(sep, pos);
    if (next < 0) {
      texts.push(inp.slice(pos));
      break;
    }
    texts.push(inp.slice(pos, next));
    pos = next + sep.length;
  }
  const lines = out.split('\n');
  return texts.map((text, i) => ({
    text,
    ids: (lines[i] ?? '').trim() === '' ? [] : lines[i]!.trim().split(/\s+/).map(Number),
  }));
}
