// Running a private redis-server: `baton up` embeds one when no Redis is around, and tests that
// stop Redis use their own (never the machine's shared one).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { parseRedisUrl } from './config.js';

export async function redisAnswers(url: string, timeoutMs = 1000): Promise<boolean> {
  const redis = new Redis({ ...parseRedisUrl(url), lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: timeoutMs, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
}

export function hasRedisServerBinary(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

export interface RedisServerHandle {
  url: string;
  port: number;
  child: ChildProcess;
  /** Stops the server (SIGTERM, SIGKILL after 3 s) and waits for it to exit. */
  stop(): Promise<void>;
}

/** Starts `redis-server` on `port` (a free one by default), data in `dir`, nothing persisted. */
export async function startRedisServer(opts: { dir: string; port?: number; bind?: string }): Promise<RedisServerHandle> {
  const port = opts.port ?? (await freePort());
  // Loopback unless told otherwise (other machines of a cluster need `bind` = a LAN address).
  const bind = opts.bind ?? '127.0.0.1';
  mkdirSync(opts.dir, { recursive: true });
  const extra = bind === '127.0.0.1' ? [] : ['--protected-mode', 'no'];
  const child = spawn('redis-server', ['--port', String(port), '--bind', bind, ...extra, '--dir', opts.dir, '--save', '', '--appendonly', 'no', '--logfile', join(opts.dir, `redis-${port}.log`)], { stdio: 'ignore' });
  const url = `redis://${bind.includes(':') ? `[${bind}]` : bind}:${port}`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited at start (code ${child.exitCode}); see ${join(opts.dir, `redis-${port}.log`)}`);
    if (await redisAnswers(url, 200)) return { url, port, child, stop };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stop();
  throw new Error(`redis-server did not answer on port ${port} within 5 s`);
}
