// Two hosts: a listener and a connector in two network namespaces joined by a veth pair, over
// IPv4 and IPv6. Needs root and `ip netns`; skipped with a message otherwise.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const peer = fileURLToPath(new URL('./fixtures/netns-peer.mjs', import.meta.url));
const tag = `${process.pid % 100000}`;
const nsA = `baton-t${tag}a`;
const nsB = `baton-t${tag}b`;
const octet = 1 + (process.pid % 250);

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function setUp(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  try {
    ip('netns', 'add', nsA);
    ip('netns', 'add', nsB);
    ip('link', 'add', `vb${tag}a`, 'type', 'veth', 'peer', 'name', `vb${tag}b`);
    ip('link', 'set', `vb${tag}a`, 'netns', nsA);
    ip('link', 'set', `vb${tag}b`, 'netns', nsB);
    ip('-n', nsA, 'addr', 'add', `10.213.${octet}.1/24`, 'dev', `vb${tag}a`);
    ip('-n', nsB, 'addr', 'add', `10.213.${octet}.2/24`, 'dev', `vb${tag}b`);
    ip('-n', nsA, '-6', 'addr', 'add', `fd00:213:${octet}::1/64`, 'dev', `vb${tag}a`, 'nodad');
    ip('-n', nsB, '-6', 'addr', 'add', `fd00:213:${octet}::2/64`, 'dev', `vb${tag}b`, 'nodad');
    for (const [ns, dev] of [[nsA, `vb${tag}a`], [nsB, `vb${tag}b`]] as const) {
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'link', 'set', dev, 'up');
    }
    return undefined;
  } catch (error) {
    return `ip netns does not work here: ${((error as { stderr?: Buffer }).stderr ?? '').toString().trim() || (error as Error).message}`;
  }
}

function tearDown(): void {
  for (const ns of [nsA, nsB]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
}

let skipReason: string | undefined;
const children: ChildProcess[] = [];

beforeAll(() => {
  skipReason = setUp();
  if (skipReason) {
    console.warn(`two-host test skipped: ${skipReason}`);
    tearDown();
    return;
  }
  // The peers run the built package (dist), like any spawned process.
  execFileSync(process.execPath, [fileURLToPath(new URL('../../../node_modules/typescript/bin/tsc', import.meta.url)), '-b', 'native/transport'], { cwd: root, stdio: 'inherit' });
}, 120_000);

afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  tearDown();
});

async function firstLine(child: ChildProcess): Promise<string> {
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await Promise.race([once(lines, 'line'), once(child, 'exit').then(() => [''])])) as [string];
  return line;
}

describe('two hosts in network namespaces', () => {
  it.each([
    ['IPv4', '0.0.0.0', `10.213.${octet}.1`],
    ['IPv6', '::', `fd00:213:${octet}::1`],
  ])('connects across a veth pair over %s, round-trips frames and measures the link', async (_family, bindHost, address, ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const secret = 'netns-secret';
    const listener = spawn('ip', ['netns', 'exec', nsA, process.execPath, peer, 'listen', bindHost, secret], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(listener);
    const { port } = JSON.parse(await firstLine(listener)) as { port: number };
    const connector = spawn('ip', ['netns', 'exec', nsB, process.execPath, peer, 'connect', address, String(port), secret], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(connector);
    const result = JSON.parse(await firstLine(connector)) as { received: number; remote: string; link: { rttP50Ms: number; bandwidthBytesPerSec: number } };
    expect(result.received).toBe(50);
    expect(result.remote).toContain(address);
    expect(result.link.rttP50Ms).toBeGreaterThan(0);
    expect(result.link.bandwidthBytesPerSec).toBeGreaterThan(0);
    listener.kill('SIGKILL');
  }, 60_000);
});
