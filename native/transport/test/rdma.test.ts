// The RDMA backend against the in-process fake verbs provider (no RDMA hardware here): the
// provider's rules, and whole connections whose frames travel over the fake fabric in 4 KB pieces.
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { emptyFrameHeader, FrameKind } from '@baton/contracts';
import { connect, listen, rdmaDevices, rdmaFakeSelfTest, rdmaStatus, type Connection, type Server } from '../src/index.js';
import { closeAll, collectingLogger, hiddenHeader, nextFrames, SECRET } from './helpers.js';

const open: (Connection | Server)[] = [];
afterEach(async () => {
  await closeAll(...open.splice(0));
});

async function pair(serverRdma: Parameters<typeof listen>[0]['rdma'], clientRdma: Parameters<typeof connect>[0]['rdma'] = serverRdma) {
  const serverLog = collectingLogger();
  const clientLog = collectingLogger();
  const server = await listen({ host: '127.0.0.1', port: 0, secret: SECRET, rdma: serverRdma, logger: serverLog });
  open.push(server);
  const accepted = new Promise<Connection>((resolve) => server.once('connection', resolve));
  const client = await connect({ port: server.port, secret: SECRET, rdma: clientRdma, logger: clientLog });
  const peer = await accepted;
  open.push(client, peer);
  peer.on('frame', (header, payload) => peer.send(header, payload));
  return { server, client, peer, serverLog, clientLog };
}

describe('fake verbs provider', () => {
  it('enforces the QP state machine, memory registration, posting rules and Apple\'s subset', () => {
    const lines = rdmaFakeSelfTest();
    expect(lines.filter((line) => !line.startsWith('ok '))).toEqual([]);
    for (const name of ['RESET->RTR is refused', 'post_send in INIT is refused', 'INIT->RTR->RTS', 'receive outside the region is refused', 'UC send without a posted receive is dropped silently', 'apple: an RC queue pair is refused', 'apple: at most 10 queue pairs', 'apple: a 5000-byte message is refused', 'apple: unequal frame counts are refused at RTR']) {
      expect(lines).toContain(`ok ${name}`);
    }
  });

  it('reports why the system provider is unavailable instead of failing', () => {
    const status = rdmaStatus('auto');
    expect(Array.isArray(rdmaDevices())).toBe(true);
    if (!status.available) expect(status.reason).not.toBe('');
  });
});

describe('connections over (fake) RDMA', () => {
  it.each(['fake', 'fake-apple'] as const)('carries ordered frames, including a 1 MiB frame cut into 4 KB pieces (%s)', async (mode) => {
    const { client } = await pair(mode);
    expect(client.backend).toBe('rdma');
    const big = randomBytes(1 << 20);
    const replies = nextFrames(client, 102);
    for (let i = 0; i < 100; i++) client.send({ ...emptyFrameHeader(FrameKind.TOKENS), sequenceId: i }, Buffer.alloc(100, i));
    client.send(emptyFrameHeader(FrameKind.CONTROL), big);
    const activations = Float32Array.from({ length: 2 * 16 }, (_, i) => i / 3);
    client.send(hiddenHeader(7, 2, 16), activations);
    const frames = await replies;
    expect(frames.slice(0, 100).map(([header]) => header.sequenceId)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(createHash('sha256').update(frames[100]![1]).digest('hex')).toBe(createHash('sha256').update(big).digest('hex'));
    expect(new Float32Array(frames[101]![1].buffer, frames[101]![1].byteOffset, 32)).toEqual(activations);
    const stats = client.rdmaStats()!;
    expect(stats.state).toBe('RTS');
    // 1 MiB + header in fragments of 4096 − 16 data bytes: at least 258 fragments for that frame alone.
    expect(stats.fragmentsSent).toBeGreaterThanOrEqual(100 + Math.ceil(((1 << 20) + 128) / 4080));
    expect(stats.framesReceived).toBe(102);
  });

  it('falls back to TCP, with a logged reason, when the listener has RDMA off', async () => {
    const { client, clientLog } = await pair('off', 'fake');
    expect(client.backend).toBe('tcp');
    expect(clientLog.lines.join('\n')).toMatch(/RDMA .* failed, using TCP: the peer declined: RDMA unavailable at the listener/);
    const reply = nextFrames(client, 1);
    client.send(emptyFrameHeader(FrameKind.CONTROL), Buffer.from('over tcp'));
    expect((await reply)[0][1].toString()).toBe('over tcp');
  });

  it('falls back to TCP when the two ends disagree on the slot ring (Apple: equal frame counts)', async () => {
    const { client, clientLog } = await pair({ mode: 'fake-apple', slots: 32 }, { mode: 'fake-apple', slots: 16 });
    expect(client.backend).toBe('tcp');
    expect(clientLog.lines.join('\n')).toMatch(/settings differ/);
  });

  it('falls back to TCP when the requested device does not exist', async () => {
    const { client, clientLog } = await pair('fake', { mode: 'fake', device: 'mlx5_9' });
    expect(client.backend).toBe('tcp');
    expect(clientLog.lines.join('\n')).toMatch(/RDMA set-up failed, using TCP.*mlx5_9/);
  });

  it('stays on TCP quietly in auto mode when the machine has no RDMA device', async (ctx) => {
    if (rdmaStatus('auto').available) ctx.skip('this machine has an RDMA device');
    const { client, clientLog } = await pair('auto');
    expect(client.backend).toBe('tcp');
    expect(clientLog.lines).toEqual([]);
  });
});
