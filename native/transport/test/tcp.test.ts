// The TCP / Unix-socket backend through its TS API, over real sockets.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { emptyFrameHeader, FrameKind, PayloadDType } from '@baton/contracts';
import { connect, listen, stats, TransportError, type Connection, type Server } from '../src/index.js';
import { closeAll, collectingLogger, connectTo, echoServer, hiddenHeader, nextFrames, once, SECRET } from './helpers.js';
// @ts-expect-error plain JS fixture without types
import { rawConnect, rawFrameHeader, rawHandshake } from './fixtures/raw-peer.mjs';

const open: (Connection | Server)[] = [];
function track<T extends Connection | Server>(thing: T): T {
  open.push(thing);
  return thing;
}
afterEach(async () => {
  await closeAll(...open.splice(0));
});

describe('tcp transport', () => {
  it('round-trips header fields and payloads of every kind', async () => {
    const server = track(await echoServer());
    const client = track(await connectTo(server));
    expect(client.remoteAddress).toBe(`127.0.0.1:${server.port}`);
    const activations = Float32Array.from({ length: 3 * 64 }, (_, i) => i * 0.5);
    const header = { ...hiddenHeader(42, 3, 64), firstPosition: 17, requestId: Uint8Array.from(randomBytes(16)), planVersion: 3 };
    const replies = nextFrames(client, 2);
    expect(client.send(header, activations)).toBe(true);
    expect(client.send(emptyFrameHeader(FrameKind.CONTROL))).toBe(true);
    const [[h1, p1], [h2, p2]] = await replies;
    expect(h1.kind).toBe(FrameKind.HIDDEN);
    expect(h1.sequenceId).toBe(42);
    expect(h1.firstPosition).toBe(17);
    expect(h1.payloadLength).toBe(activations.byteLength);
    expect(Buffer.from(h1.requestId).equals(Buffer.from(header.requestId))).toBe(true);
    expect(new Float32Array(p1.buffer, p1.byteOffset, p1.byteLength / 4)).toEqual(activations);
    expect(h2.kind).toBe(FrameKind.CONTROL);
    expect(p2.length).toBe(0);
  });

  it('refuses to send a header that does not match its payload', async () => {
    const server = track(await echoServer());
    const client = track(await connectTo(server));
    expect(() => client.send(hiddenHeader(1, 2, 4), new Float32Array(3))).toThrow(/does not match/);
    expect(() => client.send(emptyFrameHeader(FrameKind.CONTROL), Buffer.alloc(2048)) && undefined).not.toThrow();
  });

  it('keeps order under load, with backpressure and drain', async () => {
    // The server stops reading while 1 MiB waits for its (busy) JS thread, so the client's queue
    // must pass its high-water mark: backpressure is certain, not a matter of timing.
    const server = track(await echoServer({ highWaterMark: 256 * 1024, maxUndeliveredBytes: 1 << 20, socketBufferBytes: 64 * 1024 }));
    const client = track(await connect({ port: server.port, secret: SECRET, highWaterMark: 256 * 1024, logger: collectingLogger() }));
    const count = 4000;
    const received: number[] = [];
    const done = new Promise<void>((resolve) => {
      client.on('frame', (header, payload) => {
        expect(payload.readUInt32LE(0)).toBe(header.sequenceId);
        received.push(header.sequenceId);
        if (received.length === count) resolve();
      });
    });
    let sawBackpressure = false;
    const payload = Buffer.alloc(16 * 1024);
    for (let i = 0; i < count; i++) {
      payload.writeUInt32LE(i, 0);
      const header = { ...emptyFrameHeader(FrameKind.HIDDEN), sequenceId: i, dtype: PayloadDType.U8, tokenCount: 1, width: payload.length };
      if (!client.send(header, payload)) {
        sawBackpressure = true;
        await once(client, 'drain');
      }
    }
    await done;
    expect(received).toEqual(Array.from({ length: count }, (_, i) => i));
    expect(sawBackpressure).toBe(true);
  });

  it('carries frames of 16 MiB and more intact', async () => {
    const server = track(await echoServer());
    const client = track(await connectTo(server));
    const big = randomBytes(24 * 1024 * 1024 + 3);
    const reply = nextFrames(client, 1);
    client.send(emptyFrameHeader(FrameKind.CONTROL), big);
    const [[header, payload]] = await reply;
    expect(header.payloadLength).toBe(big.length);
    expect(createHash('sha256').update(payload).digest('hex')).toBe(createHash('sha256').update(big).digest('hex'));
  });

  it('serves 50 concurrent connections', async () => {
    const server = track(await echoServer());
    const clients = await Promise.all(Array.from({ length: 50 }, () => connectTo(server)));
    clients.forEach((client) => track(client));
    const results = await Promise.all(
      clients.map(async (client, index) => {
        const replies = nextFrames(client, 20);
        for (let i = 0; i < 20; i++) client.send({ ...emptyFrameHeader(FrameKind.TOKENS), sequenceId: index, firstPosition: i }, Buffer.alloc(1000, index));
        const frames = await replies;
        return frames.every(([header, payload], i) => header.sequenceId === index && header.firstPosition === i && payload[999] === index);
      }),
    );
    expect(results.every(Boolean)).toBe(true);
  });

  it('works over a Unix-domain socket', async () => {
    const path = join(tmpdir(), `baton-transport-test-${process.pid}.sock`);
    const server = track(await listen({ path, secret: SECRET, logger: collectingLogger() }));
    server.on('connection', (c) => c.on('frame', (h, p) => c.send(h, p)));
    const client = track(await connect({ path, secret: SECRET, logger: collectingLogger() }));
    expect(client.backend).toBe('unix');
    const reply = nextFrames(client, 1);
    client.send(emptyFrameHeader(FrameKind.CONTROL), Buffer.from('over unix'));
    expect((await reply)[0][1].toString()).toBe('over unix');
  });

  it('listens on "::" (IPv6 and IPv4) and on a non-loopback interface address', async (ctx) => {
    let server: Server;
    try {
      server = track(await echoServer({ host: '::' }));
    } catch (error) {
      ctx.skip(`IPv6 is not available here: ${(error as Error).message}`);
      return;
    }
    for (const host of ['::1', '127.0.0.1']) {
      const client = track(await connect({ host, port: server.port, secret: SECRET, logger: collectingLogger() }));
      const reply = nextFrames(client, 1);
      client.send(emptyFrameHeader(FrameKind.CONTROL));
      await reply;
      expect(client.remoteAddress).toBe(host.includes(':') ? `[${host}]:${server.port}` : `${host}:${server.port}`);
    }
    const external = Object.values(networkInterfaces()).flat().find((address) => address && address.family === 'IPv4' && !address.internal);
    if (external) {
      const client = track(await connect({ host: external.address, port: server.port, secret: SECRET, logger: collectingLogger() }));
      const reply = nextFrames(client, 1);
      client.send(emptyFrameHeader(FrameKind.CONTROL));
      await reply;
    }
  });

  it('reports a refused connection and a bad option clearly', async () => {
    const server = await echoServer();
    const port = server.port;
    await server.close();
    await expect(connect({ port, secret: SECRET, logger: collectingLogger() })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await expect(connect({ port, secret: '' })).rejects.toThrow(/secret must not be empty/);
    await expect(connect({ port: 70000, secret: SECRET })).rejects.toThrow(/port must be an integer/);
    await expect(listen({ port: 0, secret: SECRET, maxFrameBytes: -1 })).rejects.toThrow(/maxFrameBytes/);
  });
});

describe('handshake', () => {
  it('refuses a wrong secret with a clear error on both sides', async () => {
    const server = track(await echoServer());
    const rejected = once(server, 'rejected');
    const logger = collectingLogger();
    const before = stats();
    const error = await connect({ port: server.port, secret: 'not-the-secret', logger }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransportError);
    expect((error as TransportError).code).toBe('BATON_AUTH_FAILED');
    expect((error as TransportError).message).toMatch(/cluster secret/);
    const [serverError] = (await rejected) as [TransportError];
    expect(serverError.code).toBe('BATON_AUTH_FAILED');
    expect(serverError.message).toMatch(/127\.0\.0\.1:\d+.*secret/);
    expect(stats().authFailures - before.authFailures).toBeGreaterThanOrEqual(2);
  });

  it('refuses a wrong protocol version with a clear error on both sides', async () => {
    const server = track(await echoServer());
    const rejected = once(server, 'rejected');
    const error = (await connect({ port: server.port, secret: SECRET, protocolVersion: 2, logger: collectingLogger() }).catch((e: unknown) => e)) as TransportError;
    expect(error.code).toBe('BATON_VERSION_MISMATCH');
    expect(error.message).toMatch(/protocol 2.*protocol 1|protocol 1.*protocol 2/);
    const [serverError] = (await rejected) as [TransportError];
    expect(serverError.code).toBe('BATON_VERSION_MISMATCH');
    expect(serverError.message).toMatch(/same Baton version/);
  });

  it('tells an independent implementation why it was refused', async () => {
    const server = track(await echoServer());
    const socket = await rawConnect(server.port);
    const result = await rawHandshake(socket, { secret: 'nope' });
    expect(result.status).toBe('refused');
    socket.destroy();
    const good = await rawConnect(server.port);
    expect((await rawHandshake(good, { secret: SECRET })).status).toBe('open');
    good.destroy();
  });

  it('drops a peer that never completes the handshake, or is not a Baton node', async () => {
    const server = track(await echoServer({ handshakeTimeoutMs: 300 }));
    const silent = await rawConnect(server.port);
    const [timeout] = (await once(server, 'rejected')) as [TransportError];
    expect(timeout.code).toBe('BATON_HANDSHAKE_TIMEOUT');
    silent.destroy();
    const http = await rawConnect(server.port);
    http.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const [garbage] = (await once(server, 'rejected')) as [TransportError];
    expect(garbage.code).toBe('BATON_HANDSHAKE_MALFORMED');
    http.destroy();
  });
});

describe('bad input', () => {
  async function authenticatedRawPeer(server: Server) {
    const socket = await rawConnect(server.port);
    const result = await rawHandshake(socket, { secret: SECRET });
    expect(result.status).toBe('open');
    return socket;
  }

  it('closes a connection that sends a malformed, oversized or truncated frame, counts it, and keeps serving others', async () => {
    const logger = collectingLogger();
    const server = track(await echoServer({ maxFrameBytes: 1 << 20, logger }));
    const bystander = track(await connectTo(server));
    const closes: TransportError[] = [];
    server.on('connection', (connection) => connection.on('close', (error) => error && closes.push(error)));
    const before = stats();

    const garbage = await authenticatedRawPeer(server);
    garbage.write(randomBytes(128));
    await once(garbage, 'close');

    const oversized = await authenticatedRawPeer(server);
    oversized.write(rawFrameHeader(2 << 20));
    await once(oversized, 'close');

    const truncated = await authenticatedRawPeer(server);
    truncated.write(rawFrameHeader(1000));
    truncated.end(Buffer.alloc(10));
    await once(truncated, 'close');
    await new Promise((resolve) => setTimeout(resolve, 50));

    const after = stats();
    expect(after.malformedFrames - before.malformedFrames).toBe(1);
    expect(after.oversizedFrames - before.oversizedFrames).toBe(1);
    expect(after.truncatedFrames - before.truncatedFrames).toBe(1);
    expect(closes.map((error) => error.code).sort()).toEqual(['BATON_FRAME_MALFORMED', 'BATON_FRAME_TOO_LARGE', 'BATON_FRAME_TRUNCATED']);
    expect(logger.lines.some((line) => /exceeds the maximum frame size/.test(line))).toBe(true);

    const reply = nextFrames(bystander, 1);
    bystander.send(emptyFrameHeader(FrameKind.CONTROL), Buffer.from('still here'));
    expect((await reply)[0][1].toString()).toBe('still here');
  });

  it('survives a peer process killed in the middle of a frame', async () => {
    const server = track(await echoServer());
    const closed = new Promise<TransportError | undefined>((resolve) => server.on('connection', (c) => c.on('close', resolve)));
    const fixture = fileURLToPath(new URL('./fixtures/raw-peer.mjs', import.meta.url));
    const child = spawn(process.execPath, [fixture, 'half-frame', String(server.port), SECRET], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    expect(line.toString()).toMatch(/written/);
    child.kill('SIGKILL');
    const error = await closed;
    expect(error?.code).toBe('BATON_FRAME_TRUNCATED');
    expect(error?.message).toMatch(/mid-frame \(\d+ of 1048576 payload bytes\)/);
    const client = track(await connectTo(server));
    const reply = nextFrames(client, 1);
    client.send(emptyFrameHeader(FrameKind.CONTROL));
    await reply;
  });

  it('a closed connection refuses sends and reports closed', async () => {
    const server = track(await echoServer());
    const client = await connectTo(server);
    await client.close();
    expect(client.closed).toBe(true);
    expect(client.send(emptyFrameHeader(FrameKind.CONTROL))).toBe(false);
  });
});

describe('link probe', () => {
  it('measures RTT and bandwidth against any node, which answers PROBE frames by itself', async () => {
    const { probeLink } = await import('../src/index.js');
    const server = track(await listen({ host: '127.0.0.1', port: 0, secret: SECRET, logger: collectingLogger() }));
    const userFrames: number[] = [];
    server.on('connection', (connection) => connection.on('frame', (header) => userFrames.push(header.kind)));
    const result = await probeLink({ port: server.port, secret: SECRET, logger: collectingLogger() }, { rounds: 10, bytes: 256 * 1024, frames: 4 });
    expect(result.rttP50Ms).toBeGreaterThan(0);
    expect(result.rttP99Ms).toBeGreaterThanOrEqual(result.rttP50Ms);
    expect(result.bandwidthBytesPerSec).toBeGreaterThan(0);
    expect(userFrames).toEqual([]); // probes are answered by the transport, not passed on
    const client = track(await connectTo(server));
    const again = await probeLink(client, { rounds: 3, frames: 1, bytes: 1024 });
    expect(again.rttP50Ms).toBeGreaterThan(0);
    await expect(probeLink(client, { rounds: 0 })).rejects.toThrow(/rounds must be an integer/);
  });
});

describe('big-frame bursts', () => {
  it('delivers the last frame of every burst of big frames (no wake-up lost while mid-payload)', async () => {
    const server = track(await listen({ host: '127.0.0.1', port: 0, secret: SECRET, logger: collectingLogger() }));
    server.on('connection', (connection) => {
      let bytes = 0;
      connection.on('frame', (header, payload) => {
        bytes += payload.length;
        if (header.kind === FrameKind.CONTROL) connection.send({ ...header, firstPosition: bytes % 0xffffffff });
      });
    });
    const client = track(await connectTo(server));
    const sizes = [65_536 + 1000, 150_000, 70_001, 1 << 20, 200_003, 64 * 1024, 99_999];
    let expected = 0;
    for (let round = 0; round < 6; round++) {
      for (const size of sizes) {
        expected += size;
        if (!client.send(emptyFrameHeader(FrameKind.TOKENS), Buffer.alloc(size, round))) await once(client, 'drain');
      }
      const reply = nextFrames(client, 1);
      client.send(emptyFrameHeader(FrameKind.CONTROL));
      const [[header]] = await reply;
      expect(header.firstPosition).toBe(expected % 0xffffffff);
    }
  });
});
