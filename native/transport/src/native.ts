// Loads the compiled addon (native/transport/build/Release/baton_transport.node) on first use,
// so importing this package never fails just because the native build has not run yet.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Options as the addon reads them: every field present and already validated. */
export interface NativeEndpointOptions {
  secret: Buffer;
  maxFrameBytes: number;
  highWaterMark: number;
  maxUndeliveredBytes: number;
  handshakeTimeoutMs: number;
  protocolVersion: number;
  socketBufferBytes: number;
}

export interface NativeStats {
  connectionsAccepted: number;
  connectionsOpened: number;
  connectionsClosed: number;
  connectionErrors: number;
  handshakeFailures: number;
  authFailures: number;
  versionMismatches: number;
  malformedFrames: number;
  oversizedFrames: number;
  truncatedFrames: number;
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  sendsOverHighWater: number;
  ioWakeups: number;
}

export interface NativeRdmaSelfTestResult {
  ok: boolean;
  log: string[];
}

export interface NativeBinding {
  init(dispatch: (events: unknown[], headers: Buffer) => void, driver: 'uv' | 'thread'): void;
  ref(on: boolean): void;
  listen(host: string, port: number, unixPath: string, options: NativeEndpointOptions): [number, number];
  connect(host: string, port: number, unixPath: string, options: NativeEndpointOptions): number;
  send(connectionId: number, header: Uint8Array, payload: ArrayBufferView | undefined, maxFrameBytes: number): 0 | 1 | 2;
  close(connectionId: number): void;
  closeListener(listenerId: number): void;
  queuedBytes(connectionId: number): number;
  stats(): NativeStats;
  parseHeader(bytes: Uint8Array): Record<string, unknown>;
  encodeHeader(fields: object): Buffer;
  hmacSha256(key: Buffer, message: Buffer): Buffer;
  rdmaDevices(providerName: string): string[];
  rdmaProviderStatus(providerName: string): string;
  rdmaRun(script: string): string;
}

export const ADDON_PATH = fileURLToPath(new URL('../build/Release/baton_transport.node', import.meta.url));

let binding: NativeBinding | undefined;

export function loadNative(): NativeBinding {
  if (binding) return binding;
  if (!existsSync(ADDON_PATH)) {
    throw new Error(`the native transport addon is not built (${ADDON_PATH} is missing): run \`npm run setup\` (or \`node infra/scripts/build-native.mjs transport\`) first`);
  }
  const require = createRequire(import.meta.url);
  binding = require(ADDON_PATH) as NativeBinding;
  return binding;
}
