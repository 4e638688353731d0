// Option validation for listen() and connect(): JS checks everything and builds the flat,
// complete options object the addon copies into its C++ struct.
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import type { NativeEndpointOptions } from './native.js';
import type { RdmaMode, RdmaSettings } from './rdma.js';

/** Where log lines about refused peers and bad frames go. */
export interface TransportLogger {
  warn(message: string): void;
}

export interface EndpointOptions {
  /** The cluster secret every node shares (HMAC-SHA256 handshake). Required, at least 1 byte. */
  secret: string | Uint8Array;
  /** Largest payload accepted or sent, in bytes. Default 64 MiB; at most 4 GiB − 1. */
  maxFrameBytes?: number;
  /** send() returns false once this many bytes are queued; 'drain' follows at half. Default 8 MiB. */
  highWaterMark?: number;
  /** Stop reading a connection while this many received bytes wait for JS. Default 256 MiB. */
  maxUndeliveredBytes?: number;
  /** TCP connect + handshake must finish within this. Default 5000 ms. */
  handshakeTimeoutMs?: number;
  /** SO_SNDBUF / SO_RCVBUF in bytes; 0 (default) leaves the kernel's autotuning on. */
  socketBufferBytes?: number;
  /** Default: console.warn with a "baton transport:" prefix. */
  logger?: TransportLogger;
  /**
   * RDMA use: 'auto' (default) switches to RDMA when both ends have a device (libibverbs.so.1 /
   * librdma.dylib), otherwise stays on TCP; 'off'; 'fake' / 'fake-apple' use the in-process fake
   * verbs provider (tests). Or an object to pick the device and slot ring: { mode, device, slots, slotBytes }.
   * Both ends must use equal slots and slotBytes (Apple's rule); defaults 64 × 4096 B.
   */
  rdma?: RdmaMode | ({ mode: RdmaMode } & Partial<Omit<RdmaSettings, 'mode'>>);
  /** @internal Tests only: speak another handshake protocol version. */
  protocolVersion?: number;
}

/** TCP (host + port) or a Unix-domain socket (path) for stages on the same machine. */
export interface ListenOptions extends EndpointOptions {
  /** Address to bind: "0.0.0.0" (default), "::" (IPv6 + IPv4), a specific interface address, or a hostname. */
  host?: string;
  /** 0 (default) picks a free port; the bound port is `server.port`. */
  port?: number;
  /** Listen on a Unix-domain socket at this path instead of TCP. */
  path?: string;
}

export interface ConnectOptions extends EndpointOptions {
  host?: string;
  port?: number;
  path?: string;
}

export const DEFAULTS = {
  maxFrameBytes: 64 * 1024 * 1024,
  highWaterMark: 8 * 1024 * 1024,
  maxUndeliveredBytes: 256 * 1024 * 1024,
  handshakeTimeoutMs: 5000,
  protocolVersion: 1,
} as const;

export const consoleLogger: TransportLogger = { warn: (message) => console.warn(`baton transport: ${message}`) };

export interface ResolvedEndpoint {
  host: string;
  port: number;
  path: string;
  native: NativeEndpointOptions;
  logger: TransportLogger;
  maxFrameBytes: number;
  highWaterMark: number;
  rdma: RdmaSettings;
}

const RDMA_MODES = ['off', 'auto', 'fake', 'fake-apple'];

function resolveRdma(value: EndpointOptions['rdma'], role: string, unix: boolean): RdmaSettings {
  const settings = typeof value === 'object' && value !== null ? value : { mode: value ?? 'auto' };
  if (!RDMA_MODES.includes(settings.mode as string)) throw new TypeError(`${role}(): rdma must be one of ${RDMA_MODES.join(', ')}; got ${JSON.stringify(settings.mode)}`);
  if (settings.device !== undefined && (typeof settings.device !== 'string' || settings.device === '')) throw new TypeError(`${role}(): rdma.device must be a device name`);
  return {
    mode: unix && settings.mode === 'auto' ? 'off' : settings.mode, // a Unix socket stays on this machine
    device: settings.device,
    slots: positiveInteger('rdma.slots', settings.slots, 64, 4096, 2),
    slotBytes: positiveInteger('rdma.slotBytes', settings.slotBytes, 4096, 1 << 20, 64),
  };
}

function positiveInteger(name: string, value: unknown, fallback: number, max: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/** Validates options and resolves a hostname to a numeric address. Throws naming the bad field. */
export async function resolveEndpoint(options: ListenOptions | ConnectOptions, role: 'listen' | 'connect'): Promise<ResolvedEndpoint> {
  if (typeof options !== 'object' || options === null) throw new TypeError(`${role}() needs an options object`);
  const { secret } = options;
  let secretBytes: Buffer;
  if (typeof secret === 'string') secretBytes = Buffer.from(secret, 'utf8');
  else if (secret instanceof Uint8Array) secretBytes = Buffer.from(secret);
  else throw new TypeError(`${role}(): secret is required (the cluster secret, a string or bytes, the same on every node)`);
  if (secretBytes.length === 0) throw new TypeError(`${role}(): secret must not be empty`);
  if (secretBytes.length > 1024) throw new RangeError(`${role}(): secret must be at most 1024 bytes`);
  const maxFrameBytes = positiveInteger('maxFrameBytes', options.maxFrameBytes, DEFAULTS.maxFrameBytes, 0xffffffff);
  const native: NativeEndpointOptions = {
    secret: secretBytes,
    maxFrameBytes,
    highWaterMark: positiveInteger('highWaterMark', options.highWaterMark, DEFAULTS.highWaterMark, 2 ** 40),
    maxUndeliveredBytes: positiveInteger('maxUndeliveredBytes', options.maxUndeliveredBytes, DEFAULTS.maxUndeliveredBytes, 2 ** 40),
    handshakeTimeoutMs: positiveInteger('handshakeTimeoutMs', options.handshakeTimeoutMs, DEFAULTS.handshakeTimeoutMs, 600_000),
    protocolVersion: positiveInteger('protocolVersion', options.protocolVersion, DEFAULTS.protocolVersion, 0xffff),
    socketBufferBytes: positiveInteger('socketBufferBytes', options.socketBufferBytes, 0, 1 << 30, 0),
  };
  const logger = options.logger ?? consoleLogger;
  if (typeof logger.warn !== 'function') throw new TypeError(`${role}(): logger must have a warn(message) method`);
  if (options.path !== undefined) {
    if (typeof options.path !== 'string' || options.path === '') throw new TypeError(`${role}(): path must be a non-empty string`);
    if (options.host !== undefined || options.port !== undefined) throw new TypeError(`${role}(): give either path (Unix socket) or host and port (TCP), not both`);
    return { host: '', port: 0, path: options.path, native, logger, maxFrameBytes, highWaterMark: native.highWaterMark, rdma: resolveRdma(options.rdma, role, true) };
  }
  const port = options.port ?? (role === 'listen' ? 0 : undefined);
  if (port === undefined) throw new TypeError('connect(): port is required (or path for a Unix socket)');
  positiveInteger('port', port, 0, 65535, role === 'listen' ? 0 : 1);
  let host = options.host ?? (role === 'listen' ? '0.0.0.0' : '127.0.0.1');
  if (typeof host !== 'string' || host === '') throw new TypeError(`${role}(): host must be a non-empty string`);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (isIP(host) === 0) {
    try {
      host = (await lookup(host)).address;
    } catch (error) {
      throw new Error(`${role}(): cannot resolve host "${host}": ${(error as Error).message}`);
    }
  }
  return { host, port, path: '', native, logger, maxFrameBytes, highWaterMark: native.highWaterMark, rdma: resolveRdma(options.rdma, role, false) };
}
