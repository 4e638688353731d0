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
