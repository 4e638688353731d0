// A worker thread that exits (process.exit inside a frame handler) with listeners and connections
// still open must not take the process down, with either I/O driver.
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const dist = new URL('../dist/index.js', import.meta.url).href;

beforeAll(() => {
  // Workers run the built package (dist), like any spawned process.
  execFileSync(process.execPath, [fileURLToPath(new URL('../../../node_modules/typescript/bin/tsc', import.meta.url)), '-b', 'native/transport'], { cwd: root, stdio: 'inherit' });
}, 120_000);

const script = `
import { Worker } from 'node:worker_threads';
const code = \`
const { listen, connect } = await import(${JSON.stringify(dist)});
const { emptyFrameHeader, FrameKind } = await import('@baton/contracts');
const server = await listen({ host: '127.0.0.1', port: 0, secret: 'x', logger: { warn() {} } });
server.on('connection', (c) => c.on('frame', (h, p) => c.send(h, p)));
const client = await connect({ port: server.port, secret: 'x', logger: { warn() {} } });
client.on('frame', () => process.exit(0));
client.send(emptyFrameHeader(FrameKind.CONTROL), Buffer.alloc(100000));
\`;
for (let i = 0; i < 3; i++) {
  const worker = new Worker(code, { eval: true, type: 'module' });
  await new Promise((resolve) => worker.on('exit', resolve));
}
console.log('survived');
`;

describe('worker teardown', () => {
  it.each(['uv', 'thread'])('survives workers exiting with open connections (%s driver)', (driver) => {
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', env: { ...process.env, BATON_TRANSPORT_IO: driver }, timeout: 60_000 });
    expect(run.stderr).not.toMatch(/FATAL|Segmentation/);
    expect(run.stdout).toContain('survived');
    expect(run.status).toBe(0);
  }, 60_000);
});

describe('descriptor exhaustion', () => {
  it.each(['uv', 'thread'])('reports EMFILE on the listener, keeps serving, and accepts again once descriptors free up (%s driver)', async (driver) => {
    const { spawn } = await import('node:child_process');
    const net = await import('node:net');
    const { createInterface } = await import('node:readline');
    const { connect } = await import('../src/index.js');
    const fixture = fileURLToPath(new URL('./fixtures/fd-limited-listener.mjs', import.meta.url));
    const child = spawn('sh', ['-c', `ulimit -n 48 && exec "${process.execPath}" "${fixture}" fd-secret`], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, BATON_TRANSPORT_IO: driver } });
    const events: Record<string, unknown>[] = [];
    const waiters: (() => void)[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => {
      events.push(JSON.parse(line) as Record<string, unknown>);
      waiters.splice(0).forEach((wake) => wake());
    });
    const until = async (predicate: () => boolean) => {
      while (!predicate()) await new Promise<void>((resolve) => waiters.push(resolve));
    };
    try {
      await until(() => events.some((e) => 'port' in e));
      const port = events.find((e) => 'port' in e)!.port as number;
      const sockets = Array.from({ length: 60 }, () => net.connect({ port, host: '127.0.0.1' }).on('error', () => undefined));
      await until(() => events.some((e) => e.rejected === 'EMFILE'));
      sockets.forEach((socket) => socket.destroy());
      const client = await connect({ port, secret: 'fd-secret', logger: { warn() {} } });
      expect(client.remoteAddress).toBe(`127.0.0.1:${port}`);
      await client.close();
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);
});
