// The TS face of the native transport: listen() → Server, connect() → Connection. One module-level
// dispatcher receives every event batch from the addon's I/O thread and routes it by id.
import { EventEmitter } from 'node:events';
import { decodeFrameHeader, emptyFrameHeader, encodeFrameHeader, FRAME_HEADER_BYTES, FrameFlags, FrameKind, type FrameHeader } from '@baton/contracts';
import { loadNative, type NativeBinding, type NativeStats } from './native.js';
import { resolveEndpoint, type ConnectOptions, type ListenOptions, type TransportLogger } from './options.js';
import { isTransportControl, RdmaLink, type RdmaHost, type RdmaSettings } from './rdma.js';

/** A transport failure, with a stable code (e.g. BATON_AUTH_FAILED, BATON_FRAME_MALFORMED, ECONNREFUSED). */
export class TransportError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'TransportError';
  }
}

const EVENT_CONNECTION = 1;
const EVENT_CONNECTED = 2;
const EVENT_FRAME = 3;
const EVENT_DRAIN = 4;
const EVENT_CLOSE = 5;
const EVENT_REJECTED = 6;
const EVENT_LISTENER_CLOSED = 7;

const EMPTY = Buffer.alloc(0);

interface PendingConnect {
  resolve(connection: Connection): void;
  reject(error: Error): void;
  logger: TransportLogger;
  maxFrameBytes: number;
  highWaterMark: number;
  rdma: RdmaSettings;
  timeoutMs: number;
  backend: 'tcp' | 'unix';
}

const servers = new Map<number, Server>();
const connections = new Map<number, Connection>();
const pending = new Map<number, PendingConnect>();
let native: NativeBinding | undefined;
let referenced = false;

/**
 * How socket readiness reaches JS. 'uv' (default): every socket is watched by Node's own libuv
 * loop and frames are parsed in C++ and handed to JS on the main thread, no thread hop. 'thread':
 * a native I/O thread polls all sockets and hands batches to JS through a ThreadSafeFunction.
 * See docs/benchmarks.md for what each measured. Environment: BATON_TRANSPORT_IO=uv|thread.
 */
export type IoDriver = 'uv' | 'thread';
let ioDriver: IoDriver | undefined;

function defaultDriver(): IoDriver {
  const fromEnv = process.env.BATON_TRANSPORT_IO;
  if (fromEnv === undefined || fromEnv === '') return 'uv';
  if (fromEnv !== 'uv' && fromEnv !== 'thread') throw new Error(`BATON_TRANSPORT_IO must be "uv" or "thread", got ${JSON.stringify(fromEnv)}`);
  return fromEnv;
}

/** Chooses the I/O driver; only before the first listen()/connect() of the process. */
export function configureTransport(options: { io: IoDriver }): void {
  if (options.io !== 'uv' && options.io !== 'thread') throw new TypeError(`io must be "uv" or "thread", got ${JSON.stringify(options.io)}`);
  if (native && ioDriver !== options.io) throw new Error(`the transport already runs with the ${ioDriver} driver; configure it before the first listen() or connect()`);
  ioDriver = options.io;
}

/** The driver in use (or that will be used). */
export function transportDriver(): IoDriver {
  return ioDriver ?? defaultDriver();
}

function binding(): NativeBinding {
  if (!native) {
    ioDriver = transportDriver();
    native = loadNative();
    native.init(dispatch, ioDriver);
  }
  return native;
}

/** Keeps the process alive while anything is open, like net sockets do. */
function updateRef(): void {
  const want = servers.size + connections.size + pending.size > 0;
  if (want !== referenced) {
    referenced = want;
    native?.ref(want);
  }
}

function dispatch(events: unknown[], headers: Buffer): void {
  for (let i = 0; i < events.length; i += 4) {
    const type = events[i] as number;
    const id = events[i + 1] as number;
    const a = events[i + 2];
    const b = events[i + 3];
    try {
      switch (type) {
        case EVENT_FRAME:
          connections.get(id)?._receive(decodeFrameHeader(headers, a as number), (b as Buffer | undefined) ?? EMPTY);
          break;
        case EVENT_CONNECTION: {
          const server = servers.get(a as number);
          if (!server) {
            native!.close(id);
            break;
          }
          const connection = new Connection(id, b as string, server.backend, server._logger, server._maxFrameBytes, server._highWaterMark, server._rdma);
          connections.set(id, connection);
          server.emit('connection', connection);
          break;
        }
        case EVENT_CONNECTED: {
          const request = pending.get(id);
          pending.delete(id);
          if (!request) break;
          const connection = new Connection(id, b as string, request.backend, request.logger, request.maxFrameBytes, request.highWaterMark, request.rdma);
          connections.set(id, connection);
          if (request.rdma.mode === 'off') request.resolve(connection);
          else {
            void connection._negotiateRdma(request.timeoutMs).then(() => {
              if (connection.closed) request.reject(connection._closeReason ?? new TransportError('ECONNRESET', `the connection to ${connection.remoteAddress} closed while setting up RDMA`));
              else request.resolve(connection);
            });
          }
          break;
        }
        case EVENT_DRAIN:
          connections.get(id)?.emit('drain');
          break;
        case EVENT_CLOSE: {
          const error = a ? new TransportError(a as string, b as string) : undefined;
          const request = pending.get(id);
          if (request) {
            pending.delete(id);
            request.reject(error ?? new TransportError('ECONNRESET', 'the connection closed during the handshake'));
          } else {
            const connection = connections.get(id);
            connections.delete(id);
            connection?._closed(error);
          }
          break;
        }
        case EVENT_REJECTED: {
          const server = servers.get(id);
          const error = new TransportError(a as string, b as string);
          server?._logger.warn(error.message);
          server?.emit('rejected', error);
          break;
        }
        case EVENT_LISTENER_CLOSED: {
          const server = servers.get(id);
          servers.delete(id);
          server?._closed();
          break;
        }
      }
    } catch (error) {
      // A throwing user handler must not stop the other events of the batch from being delivered.
      queueMicrotask(() => {
        throw error;
      });
    }
  }
  updateRef();
}

export interface ConnectionEvents {
  /** A received frame. `payload` is owned by the listener from here on (see Connection docs). */
  frame: [header: FrameHeader, payload: Buffer];
  /** Queued output fell to half the high-water mark after send() returned false. */
  drain: [];
  /** The connection is gone; `error` is set unless it was a clean close by either side. */
  close: [error?: TransportError];
  /** Emitted (before 'close') only when the connection failed and someone listens for it. */
  error: [error: TransportError];
}

/**
 * One authenticated, ordered, bidirectional frame connection.
 *
 * Buffer lifetimes:
 * - `send(header, payload)`: the payload is read before send() returns (written to the socket or
 *   copied into the send queue); the caller may reuse or modify it as soon as send() returns.
 * - 'frame' payloads are fresh Buffers owned by the listener: the transport never touches them
 *   again, and they stay valid until garbage collected. Payloads of 64 KiB and more are external
 *   Buffers over the native receive allocation (no copy; recycled once the GC collects the Buffer);
 *   smaller ones are copied.
 *   Frames that arrive before a 'frame' listener is attached are held and delivered to it.
 */
export class Connection extends EventEmitter<ConnectionEvents> implements RdmaHost {
  private readonly headerScratch = new Uint8Array(FRAME_HEADER_BYTES);
  private rdmaLink: RdmaLink | undefined;
  private failure: TransportError | undefined;
  private currentBackend: 'tcp' | 'unix' | 'rdma';
  private readonly headerView = new DataView(this.headerScratch.buffer);
  private backlog: [FrameHeader, Buffer][] | undefined = [];
  private isClosed = false;
  private closeError: TransportError | undefined;

  /** @internal Why the connection closed, if it failed. */
  get _closeReason(): TransportError | undefined {
    return this.closeError;
  }
  private readonly probeWaiters = new Map<number, { resolve(header: FrameHeader): void; reject(error: Error): void }>();
  /** Answer PROBE frames automatically (default true); PROBE requests are not emitted as 'frame'. */
  answerProbes = true;

  /** @internal */
  constructor(
    readonly id: number,
    /** "1.2.3.4:5678", "[::1]:5678" or "unix:/path". */
    readonly remoteAddress: string,
    backend: 'tcp' | 'unix',
    private readonly logger: TransportLogger,
    readonly maxFrameBytes: number,
    readonly highWaterMark: number,
    private readonly rdmaSettings: RdmaSettings,
  ) {
    super();
    this.currentBackend = backend;
    (this as EventEmitter).on('newListener', (event: string | symbol) => {
      if (event === 'frame' && this.backlog) queueMicrotask(() => this.flushBacklog());
    });
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** 'rdma' once frames travel over RDMA; 'tcp' or 'unix' otherwise. */
  get backend(): 'tcp' | 'unix' | 'rdma' {
    return this.currentBackend;
  }

  /** Fragment and credit counters of the RDMA channel, when there is one. */
  rdmaStats() {
    return this.rdmaLink?.stats();
  }

  /** Bytes waiting in the native send queue. */
  get bufferedBytes(): number {
    return this.isClosed ? 0 : binding().queuedBytes(this.id);
  }

  /**
   * Sends one frame. `header.payloadLength` is set from the payload (a Buffer or any typed array,
   * e.g. a Float32Array of activations). Returns false when the send queue is at or above the
   * high-water mark — the frame is still queued; wait for 'drain' before sending more — and false
   * when the connection is closed (the frame is dropped; `closed` is true and 'close' follows or
   * has been emitted). Throws RangeError for a header that does not validate (its payload length
   * disagrees with tokenCount × width × dtype, or it exceeds maxFrameBytes).
   */
  send(header: FrameHeader, payload?: ArrayBufferView): boolean {
    if (this.isClosed) return false;
    if (payload !== undefined && !ArrayBuffer.isView(payload)) throw new TypeError('payload must be a Buffer or typed array');
    const length = payload?.byteLength ?? 0;
    encodeFrameHeader(header, this.headerScratch);
    this.headerView.setUint32(28, length, true);
    if (this.rdmaLink?.sending) {
      if (length > this.maxFrameBytes) throw new RangeError(`refusing to send: frame payload of ${length} bytes exceeds the maximum frame size of ${this.maxFrameBytes} bytes`);
      try {
        decodeFrameHeader(this.headerScratch);
      } catch (error) {
        throw new RangeError(`refusing to send: ${(error as Error).message}`);
      }
      return this.rdmaLink.send(this.headerScratch, length > 0 ? payload : undefined);
    }
    return binding().send(this.id, this.headerScratch, length > 0 ? payload : undefined, this.maxFrameBytes) === 0;
  }

  /** @internal RdmaHost: the TCP path, for the RDMA negotiation itself. */
  _sendTcp(header: FrameHeader, payload?: ArrayBufferView): boolean {
    if (this.isClosed) return false;
    const length = payload?.byteLength ?? 0;
    encodeFrameHeader(header, this.headerScratch);
    this.headerView.setUint32(28, length, true);
    return binding().send(this.id, this.headerScratch, length > 0 ? payload : undefined, this.maxFrameBytes) === 0;
  }

  /** @internal Connecting side: offer RDMA and wait for the outcome (bounded by `timeoutMs`). */
  async _negotiateRdma(timeoutMs: number): Promise<void> {
    this.rdmaLink = new RdmaLink(this, this.rdmaSettings);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const closed = new Promise<'closed'>((resolve) => this.once('close', () => resolve('closed')));
    const outcome = await Promise.race([this.rdmaLink.offer(), timeout, closed]);
    clearTimeout(timer);
    if (outcome === 'rdma') this.currentBackend = 'rdma';
    else if (outcome === 'timeout') {
      this._log(`RDMA negotiation with ${this.remoteAddress} timed out after ${timeoutMs} ms, using TCP`);
      this.rdmaLink.dispose();
    }
  }

  /** @internal RdmaHost */
  _deliver(header: FrameHeader, payload: Buffer): void {
    this.deliver(header, payload);
  }

  /** @internal RdmaHost: a failure after the switch loses frames, so the connection closes. */
  _rdmaFailed(message: string): void {
    if (this.isClosed || this.failure) return;
    this.failure = new TransportError('BATON_RDMA_FAILED', `${message} (connection to ${this.remoteAddress} closed)`);
    this.rdmaLink?.dispose();
    binding().close(this.id);
  }

  /** @internal RdmaHost */
  _rdmaDrain(): void {
    this.emit('drain');
  }

  /** @internal RdmaHost */
  _log(message: string): void {
    this.logger.warn(message);
  }

  /** Flushes queued frames, then closes. Resolves once closed. */
  close(): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.once('close', () => resolve()));
    binding().close(this.id);
    return done;
  }

  /** @internal */
  _receive(header: FrameHeader, payload: Buffer): void {
    if (isTransportControl(header)) {
      if (!this.rdmaLink) this.rdmaLink = new RdmaLink(this, this.rdmaSettings);
      this.rdmaLink.onControl(payload);
      if (this.rdmaLink.sending) this.currentBackend = 'rdma';
      return;
    }
    this.deliver(header, payload);
  }

  private deliver(header: FrameHeader, payload: Buffer): void {
    if (header.kind === FrameKind.PROBE) {
      if ((header.flags & FrameFlags.REPLY) !== 0) {
        const waiter = this.probeWaiters.get(header.sequenceId);
        if (waiter) {
          this.probeWaiters.delete(header.sequenceId);
          waiter.resolve(header);
          return;
        }
      } else if (this.answerProbes) {
        this.send({ ...emptyFrameHeader(FrameKind.PROBE), sequenceId: header.sequenceId, flags: FrameFlags.REPLY, traceId: header.traceId, spanId: header.spanId, traceFlags: header.traceFlags });
        return;
      }
    }
    if (this.backlog) {
      if (this.listenerCount('frame') === 0) {
        this.backlog.push([header, payload]);
        return;
      }
      this.flushBacklog();
    }
    this.emit('frame', header, payload);
  }

  /** @internal Waits for the PROBE reply with this sequence id. */
  _awaitProbeReply(sequenceId: number): Promise<FrameHeader> {
    return new Promise((resolve, reject) => {
      if (this.isClosed) {
        reject(this.closeError ?? new TransportError('ECONNRESET', 'connection closed'));
        return;
      }
      this.probeWaiters.set(sequenceId, { resolve, reject });
    });
  }

  private flushBacklog(): void {
    const backlog = this.backlog;
    if (!backlog || this.listenerCount('frame') === 0) return;
    this.backlog = undefined;
    for (const [header, payload] of backlog) this.emit('frame', header, payload);
  }

  /** @internal */
  _closed(closeError: TransportError | undefined): void {
    if (this.isClosed) return;
    const error = closeError ?? this.failure;
    this.rdmaLink?.dispose();
    for (const waiter of this.probeWaiters.values()) waiter.reject(error ?? new TransportError('ECONNRESET', `connection to ${this.remoteAddress} closed during a probe`));
    this.probeWaiters.clear();
    this.flushBacklog();
    this.isClosed = true;
    this.closeError = error;
    if (error) {
      this.logger.warn(error.message);
      if (this.listenerCount('error') > 0) this.emit('error', error);
    }
    this.emit('close', error);
  }
}

export interface ServerEvents {
  /** An authenticated peer. */
  connection: [connection: Connection];
  /** A peer failed the handshake (wrong secret or version, timeout, not a Baton node); already logged. */
  rejected: [error: TransportError];
  close: [];
}

export class Server extends EventEmitter<ServerEvents> {
  private isClosed = false;

  /** @internal */
  constructor(
    readonly id: number,
    /** The bound address: "host:port" or "unix:/path". */
    readonly address: string,
    /** The bound TCP port (0 for a Unix socket). */
    readonly port: number,
    readonly backend: 'tcp' | 'unix',
    readonly _logger: TransportLogger,
    readonly _maxFrameBytes: number,
    readonly _highWaterMark: number,
    readonly _rdma: RdmaSettings,
  ) {
    super();
  }

  /** Stops accepting; open connections stay open. Resolves once the socket is closed. */
  close(): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.once('close', () => resolve()));
    binding().closeListener(this.id);
    return done;
  }

  /** @internal */
  _closed(): void {
    this.isClosed = true;
    this.emit('close');
  }
}

/** Listens for authenticated frame connections on TCP (IPv4/IPv6) or a Unix-domain socket. */
export async function listen(options: ListenOptions): Promise<Server> {
  const endpoint = await resolveEndpoint(options, 'listen');
  const [id, port] = binding().listen(endpoint.host, endpoint.port, endpoint.path, endpoint.native);
  const backend = endpoint.path ? 'unix' : 'tcp';
  const address = endpoint.path ? `unix:${endpoint.path}` : endpoint.host.includes(':') ? `[${endpoint.host}]:${port}` : `${endpoint.host}:${port}`;
  const server = new Server(id, address, port, backend, endpoint.logger, endpoint.maxFrameBytes, endpoint.highWaterMark, endpoint.rdma);
  servers.set(id, server);
  updateRef();
  return server;
}

/** Connects and completes the handshake; rejects with a TransportError naming the problem. */
export async function connect(options: ConnectOptions): Promise<Connection> {
  const endpoint = await resolveEndpoint(options, 'connect');
  const id = binding().connect(endpoint.host, endpoint.port, endpoint.path, endpoint.native);
  return new Promise<Connection>((resolve, reject) => {
    pending.set(id, {
      resolve,
      reject,
      logger: endpoint.logger,
      maxFrameBytes: endpoint.maxFrameBytes,
      highWaterMark: endpoint.highWaterMark,
      rdma: endpoint.rdma,
      timeoutMs: endpoint.native.handshakeTimeoutMs,
      backend: endpoint.path ? 'unix' : 'tcp',
    });
    updateRef();
  });
}

export type TransportStats = NativeStats & { openConnections: number; listeners: number };

/** Process-wide counters (frames, bytes, refused handshakes, malformed/oversized/truncated frames …). */
export function stats(): TransportStats {
  return { ...binding().stats(), openConnections: connections.size, listeners: servers.size };
}
