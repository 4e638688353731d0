// Shared helpers for the transport tests.
import { once } from 'node:events';
import { emptyFrameHeader, FrameKind, PayloadDType, type FrameHeader } from '@baton/contracts';
import { connect, listen, type Connection, type Server, type TransportLogger } from '../src/index.js';

export const SECRET = 'test-cluster-secret';

export function collectingLogger(): TransportLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, warn: (line) => lines.push(line) };
}

export function hiddenHeader(sequenceId: number, tokens: number, width: number): FrameHeader {
  return { ...emptyFrameHeader(FrameKind.HIDDEN), sequenceId, tokenCount: tokens, width, dtype: PayloadDType.F32 };
}

/** A listening echo server: every frame comes back unchanged. */
export async function echoServer(options: Partial<Parameters<typeof listen>[0]> = {}): Promise<Server> {
  const server = await listen({ host: '127.0.0.1', port: 0, secret: SECRET, logger: collectingLogger(), ...options });
  server.on('connection', (connection) => {
    connection.on('frame', (header, payload) => connection.send(header, payload));
  });
  return server;
}

/** Resolves with the next `count` frames. */
export function nextFrames(connection: Connection, count: number): Promise<[FrameHeader, Buffer][]> {
  return new Promise((resolve) => {
    const frames: [FrameHeader, Buffer][] = [];
    const onFrame = (header: FrameHeader, payload: Buffer) => {
      frames.push([header, payload]);
      if (frames.length === count) {
        connection.off('frame', onFrame);
        resolve(frames);
      }
    };
    connection.on('frame', onFrame);
  });
}

export async function connectTo(server: Server, options: Partial<Parameters<typeof connect>[0]> = {}): Promise<Connection> {
  return connect({ host: '127.0.0.1', port: server.port, secret: SECRET, logger: collectingLogger(), ...options });
}

export async function closeAll(...things: (Connection | Server | undefined)[]): Promise<void> {
  await Promise.all(things.map((thing) => thing?.close()));
}

export { once };
