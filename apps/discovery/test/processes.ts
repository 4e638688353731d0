// Test helpers: real discovery and node processes (built dist/ entries), a private key prefix,
// and reading the event stream.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { freePort, parseRedisUrl } from '@baton/control-plane';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const root = fileURLToPath(new URL('../../../', import.meta.url));
export const DISCOVERY_MAIN = join(root, 'apps/discovery/dist/main.js');
export const SHARD_MAIN = join(root, 'apps/shard/dist/main.js');
export const CLI = join(root, 'apps/cli/bin/baton.js');

export const testPrefix = () => `batontest-${randomBytes(4).toString('hex')}:`;
export const tempHome = () => mkdtempSync(join(tmpdir(), 'baton-home-'));

export interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

export function startProcess(script: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', ...env } });
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => text, exited };
}

export async function stopProcess(proc: Proc, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill(signal);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 5000);
  await proc.exited;
  clearTimeout(timer);
}

export async function waitFor<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000, stepMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== false) return value as T;
    } catch (error) {
      last = error;
    }
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
}

export function redisClient(url = REDIS_URL): Redis {
  const redis = new Redis({ ...parseRedisUrl(url), maxRetriesPerRequest: 1, retryStrategy: (n) => Math.min(n * 100, 1000) });
  redis.on('error', () => undefined);
  return redis;
}

export async function streamEvents(redis: Redis, prefix: string): Promise<{ id: string; type: string; data: Record<string, unknown> }[]> {
  const entries = (await redis.xrange(`${prefix}events`, '-', '+')) as [string, string[]][];
  return entries.map(([id, fields]) => {
    const record: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!;
    return { id, type: record.type!, data: JSON.parse(record.data!) as Record<string, unknown> };
  });
}

export async function dropPrefix(redis: Redis, prefix: string): Promise<void> {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
}

export interface UpStack {
  proc: Proc;
  /** The gateway, e.g. http://127.0.0.1:40123 */
  url: string;
  prefix: string;
}

/**
 * `baton up ARGS` on a free port with a private key prefix; resolves once the gateway answers
 * /readyz (or fails with the tail of up's output). `env` adds to the environment (BATON_HOME …).
 */
export async function startUp(args: string[], env: NodeJS.ProcessEnv = {}): Promise<UpStack> {
  const prefix = testPrefix();
  const port = await freePort();
  const proc = startProcess(CLI, ['up', ...args, '--port', String(port), '--prefix', prefix], { REDIS_URL, ...env });
  const tail = () => proc.output().slice(-4000);
  const up = () => proc.output().includes('OpenAI-compatible API');
  await waitFor(() => up() || proc.child.exitCode !== null || undefined, 150_000, 100)
    .catch((error: Error) => Promise.reject(new Error(`baton up did not come up: ${error.message}\n${tail()}`)));
  if (!up()) throw new Error(`baton up exited (code ${proc.child.exitCode}) before the gateway was up:\n${tail()}`);
  const url = `http://127.0.0.1:${port}`;
  let readiness = '';
  await waitFor(async () => {
    const response = await fetch(`${url}/readyz`);
    readiness = await response.text();
    return response.ok || undefined;
  }, 60_000, 200).catch(() => Promise.reject(new Error(`the gateway never became ready: ${readiness}\n${tail()}`)));
  return { proc, url, prefix };
}

/**
 * Ctrl-C to `baton up` (it stops its children one by one, each may take seconds on a busy
 * machine; killing it early would orphan the rest), SIGKILL after 45 s; then drops its keys.
 */
export async function stopUp(stack: UpStack | undefined, redis: Redis): Promise<void> {
  if (!stack) return;
  const { child } = stack.proc;
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
    await stack.proc.exited;
    clearTimeout(timer);
  }
  await dropPrefix(redis, stack.prefix);
}
