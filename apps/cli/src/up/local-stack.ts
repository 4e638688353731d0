// A private local cluster for the benchmark commands: `baton up` in a child process with its own
// key namespace and gateway port, ready when the gateway answers /readyz; stopped with SIGINT so
// it stops its own children.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { batonHome, freePort, parseRedisUrl } from '@baton/control-plane';
import { CliError } from '../command.js';

export interface LocalStack {
  url: string;
  prefix: string;
  /** Everything `baton up` printed so far. */
  output(): string;
  stop(): Promise<void>;
}

let started = 0;

/** Starts `baton up <args> --port P --prefix X` and waits until its gateway is ready. */
export async function startLocalStack(name: string, args: string[], timeoutMs = 180_000): Promise<LocalStack> {
  const prefix = `baton-bench-${name}-${process.pid}-${++started}:`;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const cli = fileURLToPath(new URL('../../bin/baton.js', import.meta.url));
  const child = spawn(process.execPath, [cli, 'up', ...args, '--port', String(port), '--prefix', prefix], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    await exited;
    await dropNamespace(output, prefix);
  };
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || Date.now() > end) {
      await stop();
      throw new CliError(`baton up did not come up (${args.join(' ')}):\n${output.slice(-2000)}`);
    }
    if (output.includes('OpenAI-compatible API') && (await fetch(`${url}/readyz`).then((r) => r.ok, () => false))) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, prefix, output: () => output, stop };
}

/** --model, else the demo model; an error that says what to do when there is none. */
export function benchModelPath(flagValue: string | undefined): string {
  const modelPath = resolve(flagValue ?? join(batonHome(), 'models', 'baton-demo.gguf'));
  if (!existsSync(modelPath)) throw new CliError(`no model at ${modelPath}: pass --model FILE (or run \`npm run setup\` for the demo model)`);
  return modelPath;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * Deletes what the stack left under its private key prefix (event streams, KV snapshots …) in the
 * Redis it used — often the user's own cluster's. Best effort: a benchmark never fails on this.
 */
async function dropNamespace(output: string, prefix: string): Promise<void> {
  const used = /Baton is up: Redis (\S+) \(([^)]*)\)/.exec(output);
  if (!used || used[2]!.startsWith('embedded')) return; // an embedded Redis went away with the stack
  const redis = new Redis({ ...parseRedisUrl(used[1]!), lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } catch {
    // left for a later cleanup
  } finally {
    redis.disconnect();
  }
}
