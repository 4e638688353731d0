// `baton bench transport`: round-trip latency and throughput of the native activation transport
// (through its TS API, JS callback included) side by side with references measured in the same
// run: Node's `net` with the same framing and Redis pub/sub through ioredis. The echo peer runs in
// a child process (`--echo-server`), so every figure crosses a real process boundary.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';
import { CliError, type CommandSpec } from '../command.js';
import { flag, intOption, stringOption } from '../args.js';
import { formatTable } from '../table.js';

const HEADER_BYTES = 128;
const KIND_TOKENS = 1; // streamed, not answered
const KIND_HIDDEN = 2; // echoed with its payload
const KIND_CONTROL = 4; // answered with an empty CONTROL frame (end of a throughput window)

export interface TransportBenchResult {
  transport: string;
  payloadBytes: number;
  rttP50Us: number;
  rttP99Us: number;
  throughputBytesPerSec: number;
}

interface EchoPorts {
  native: number;
  unix: string;
  net: number;
  redis: boolean;
}

/** A benchmarked client: send one frame, get called back per received frame. */
interface BenchClient {
  send(kind: number, payload: Buffer): boolean;
  waitDrain(): Promise<void>;
  onFrame(handler: (kind: number) => void): void;
  close(): Promise<void>;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function rawHeader(kind: number, payloadLength: number): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(0x314e5442, 0);
  header.writeUInt16LE(1, 4);
  header.writeUInt8(kind, 6);
  header.writeUInt32LE(payloadLength, 28);
  return header;
}

/** Splits a byte stream into 128-byte-header frames (payload length at offset 28). */
function frameReader(onFrame: (header: Buffer, payload: Buffer) => void): (chunk: Buffer) => void {
  const chunks: Buffer[] = [];
  let buffered = 0;
  let need = HEADER_BYTES;
  let header: Buffer | undefined;
  return (chunk) => {
    chunks.push(chunk);
    buffered += chunk.length;
    while (buffered >= need) {
      const joined = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, buffered);
      chunks.length = 0;
      const part = joined.subarray(0, need);
      const rest = joined.subarray(need);
      buffered = rest.length;
      if (rest.length > 0) chunks.push(rest);
      if (!header) {
        header = part;
        need = header.readUInt32LE(28);
        if (need === 0) {
          onFrame(header, Buffer.alloc(0));
          header = undefined;
          need = HEADER_BYTES;
        }
      } else {
        onFrame(header, part);
        header = undefined;
        need = HEADER_BYTES;
      }
    }
  };
}

async function runEchoServer(secret: string, redisUrl: string): Promise<number> {
  const transport = await import('@baton/transport');
  const net = await import('node:net');
  const contracts = await import('@baton/contracts');
  const quiet = { warn: () => {} };
  const server = await transport.listen({ host: '127.0.0.1', port: 0, secret, logger: quiet });
  const unixPath = join(tmpdir(), `baton-bench-${process.pid}.sock`);
  const unixServer = await transport.listen({ path: unixPath, secret, logger: quiet });
  const echoNative = (connection: import('@baton/transport').Connection) => {
    const ack = contracts.emptyFrameHeader(contracts.FrameKind.CONTROL);
    connection.on('frame', (header, payload) => {
      if (header.kind === KIND_HIDDEN) connection.send(header, payload);
      else if (header.kind === KIND_CONTROL) connection.send(ack);
    });
  };
  server.on('connection', echoNative);
  unixServer.on('connection', echoNative);
  const netServer = net.createServer({ noDelay: true }, (socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.on(
      'data',
      frameReader((header, payload) => {
        const kind = header.readUInt8(6);
        if (kind === KIND_HIDDEN) {
          socket.cork();
          socket.write(header);
          if (payload.length > 0) socket.write(payload);
          socket.uncork();
        } else if (kind === KIND_CONTROL) {
          socket.write(rawHeader(KIND_CONTROL, 0));
        }
      }),
    );
  });
  await new Promise<void>((resolve) => netServer.listen(0, '127.0.0.1', resolve));
  let redisOk = false;
  const { Redis } = await import('ioredis');
  const subscriber = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  const publisher = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  subscriber.on('error', () => {});
  publisher.on('error', () => {});
  const request = `baton:bench:${process.pid}:request`;
  const reply = `baton:bench:${process.pid}:reply`;
  try {
    await subscriber.connect();
    await publisher.connect();
    await subscriber.subscribe(request);
    subscriber.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
      const kind = message.readUInt8(6);
      if (kind === KIND_HIDDEN) void publisher.publish(reply, message);
      else if (kind === KIND_CONTROL) void publisher.publish(reply, rawHeader(KIND_CONTROL, 0));
    });
    redisOk = true;
  } catch {
    redisOk = false;
  }
  const address = netServer.address();
  const ports: EchoPorts = { native: server.port, unix: unixPath, net: typeof address === 'object' && address ? address.port : 0, redis: redisOk };
  process.stdout.write(`${JSON.stringify({ ...ports, channel: `baton:bench:${process.pid}` })}\n`);
  // Runs until the parent closes stdin.
  await new Promise<void>((resolve) => process.stdin.on('close', resolve).resume());
  subscriber.disconnect();
  publisher.disconnect();
  netServer.close();
  await server.close();
  await unixServer.close();
  return 0;
}

async function nativeClient(options: { port?: number; path?: string }, secret: string): Promise<BenchClient> {
  const transport = await import('@baton/transport');
  const contracts = await import('@baton/contracts');
  const connection = await transport.connect({ ...options, host: options.path ? undefined : '127.0.0.1', secret });
  const headers = new Map<number, import('@baton/contracts').FrameHeader>();
  for (const kind of [KIND_TOKENS, KIND_HIDDEN, KIND_CONTROL]) headers.set(kind, contracts.emptyFrameHeader(kind));
  let handler: (kind: number) => void = () => {};
  connection.on('frame', (header) => handler(header.kind));
  return {
    send: (kind, payload) => connection.send(headers.get(kind)!, payload.length > 0 ? payload : undefined),
    waitDrain: () => new Promise((resolve) => connection.once('drain', resolve)),
    onFrame: (h) => {
      handler = h;
    },
    close: () => connection.close(),
  };
}

async function netClient(port: number): Promise<BenchClient> {
  const net = await import('node:net');
  const socket: Socket = await new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
  socket.setNoDelay(true);
  let handler: (kind: number) => void = () => {};
  socket.on('data', frameReader((header) => handler(header.readUInt8(6))));
  return {
    send: (kind, payload) => {
      socket.cork();
      socket.write(rawHeader(kind, payload.length));
      const ok = payload.length > 0 ? socket.write(payload) : true;
      socket.uncork();
      return ok && socket.writableLength < socket.writableHighWaterMark;
    },
    waitDrain: () => new Promise((resolve) => socket.once('drain', () => resolve())),
    onFrame: (h) => {
      handler = h;
    },
    close: () => new Promise((resolve) => socket.end(() => resolve())),
  };
}

async function redisClient(redisUrl: string, channel: string): Promise<BenchClient> {
  const { Redis } = await import('ioredis');
  const publisher = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  const subscriber = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  await subscriber.subscribe(`${channel}:reply`);
  let handler: (kind: number) => void = () => {};
  subscriber.on('messageBuffer', (_channel: Buffer, message: Buffer) => handler(message.readUInt8(6)));
  return {
    send: (kind, payload) => {
      void publisher.publish(`${channel}:request`, Buffer.concat([rawHeader(kind, payload.length), payload]));
      return true;
    },
    waitDrain: () => Promise.resolve(),
    onFrame: (h) => {
      handler = h;
    },
    close: async () => {
      subscriber.disconnect();
      publisher.disconnect();
    },
  };
}

/** Ping-pong `rounds` echoes of `payload`; returns sorted round-trip times in µs and this process's CPU µs per round trip. */
async function measureRtt(client: BenchClient, payload: Buffer, rounds: number, warmup: number): Promise<{ times: number[]; cpuUs: number }> {
  const times: number[] = [];
  let cpuStart: NodeJS.CpuUsage | undefined;
  let started = 0n;
  let remaining = rounds + warmup;
  await new Promise<void>((resolve) => {
    client.onFrame(() => {
      const elapsed = Number(process.hrtime.bigint() - started) / 1000;
      if (remaining <= rounds) times.push(elapsed);
      if (remaining === rounds + 1) cpuStart = process.cpuUsage();
      remaining -= 1;
      if (remaining === 0) return resolve();
      started = process.hrtime.bigint();
      client.send(KIND_HIDDEN, payload);
    });
    started = process.hrtime.bigint();
    client.send(KIND_HIDDEN, payload);
  });
  const cpu = process.cpuUsage(cpuStart);
  return { times: times.sort((a, b) => a - b), cpuUs: (cpu.user + cpu.system) / rounds };
}

/** Streams `totalBytes` in windows of `windowBytes`, each closed by an acknowledged CONTROL frame. */
async function measureThroughput(client: BenchClient, payload: Buffer, totalBytes: number, windowBytes: number): Promise<number> {
  let ack: () => void = () => {};
  client.onFrame((kind) => {
    if (kind === KIND_CONTROL) ack();
  });
  const framesPerWindow = Math.max(1, Math.floor(windowBytes / payload.length));
  const windows = Math.max(1, Math.round(totalBytes / (framesPerWindow * payload.length)));
  const started = process.hrtime.bigint();
  for (let w = 0; w < windows; w++) {
    const acked = new Promise<void>((resolve) => (ack = resolve));
    for (let i = 0; i < framesPerWindow; i++) {
      if (!client.send(KIND_TOKENS, payload)) await client.waitDrain();
    }
    client.send(KIND_CONTROL, Buffer.alloc(0));
    await acked;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return (windows * framesPerWindow * payload.length) / seconds;
}

async function startEchoServer(secret: string, redisUrl: string): Promise<{ child: ChildProcess; ports: EchoPorts & { channel: string } }> {
  const cli = fileURLToPath(new URL('../../bin/baton.js', import.meta.url));
  const child = spawn(process.execPath, [cli, 'bench', 'transport', '--echo-server', '--redis', redisUrl], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, BATON_BENCH_SECRET: secret },
  });
  const lines = createInterface({ input: child.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new CliError(`the benchmark echo peer exited early (code ${code})`)));
  });
  return { child, ports: JSON.parse(first) as EchoPorts & { channel: string } };
}

export const benchTransportCommand: CommandSpec = {
  name: 'bench transport',
  summary: 'Measure the activation transport against Node net and Redis pub/sub',
  description:
    'Round trips (an echo peer in a child process) and one-way throughput for 8 KB and 1 MB payloads over: ' +
    'native-tcp (the native transport through its TS API, JS callback included), native-unix (the same over a ' +
    'Unix-domain socket), node-net (Node\'s net module, same 128-byte-header framing) and redis-pubsub (ioredis, ' +
    'request and reply channels). Numbers are from this run only; compare rows with each other, not with other machines.',
  options: {
    json: { type: 'boolean', description: 'Print {"results": [...]} as JSON' },
    redis: { type: 'string', value: 'URL', description: 'Redis for the pub/sub reference (default $REDIS_URL or redis://127.0.0.1:6379)' },
    rounds: { type: 'string', value: 'N', description: 'Round trips per 8 KB measurement (1 MB uses N/10)', default: '2000' },
    'echo-server': { type: 'boolean', description: 'Internal: run the echo peer (used by the benchmark itself)' },
  },
  examples: ['baton bench transport', 'baton bench transport --json'],
  async run(ctx) {
    const redisUrl = stringOption(ctx, 'redis') ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    if (flag(ctx, 'echo-server')) return runEchoServer(process.env.BATON_BENCH_SECRET ?? '', redisUrl);
    const rounds = intOption(ctx, 'rounds', { min: 10, max: 1_000_000 }) ?? 2000;
    const secret = randomBytes(16).toString('hex');
    const { child, ports } = await startEchoServer(secret, redisUrl);
    const results: TransportBenchResult[] = [];
    const cpuPerRoundTrip: number[] = [];
    const notes: string[] = [];
    try {
      const clients: [string, () => Promise<BenchClient>][] = [
        ['native-tcp', () => nativeClient({ port: ports.native }, secret)],
        ['native-unix', () => nativeClient({ path: ports.unix }, secret)],
        ['node-net', () => netClient(ports.net)],
      ];
      if (ports.redis) clients.push(['redis-pubsub', () => redisClient(redisUrl, ports.channel)]);
      else notes.push(`redis-pubsub skipped: no Redis at ${redisUrl} (set --redis or $REDIS_URL)`);
      for (const payloadBytes of [8 * 1024, 1024 * 1024]) {
        const payload = randomBytes(payloadBytes);
        for (const [transport, open] of clients) {
          const client = await open();
          const isRedis = transport === 'redis-pubsub';
          const n = payloadBytes >= 1024 * 1024 ? Math.max(10, Math.floor(rounds / 10)) : rounds;
          const { times, cpuUs } = await measureRtt(client, payload, n, Math.min(200, Math.ceil(n / 10)));
          cpuPerRoundTrip.push(cpuUs);
          const total = payloadBytes >= 1024 * 1024 ? (isRedis ? 64 : 512) * 1024 * 1024 : (isRedis ? 16 : 64) * 1024 * 1024;
          const windowBytes = isRedis ? 8 * 1024 * 1024 : 32 * 1024 * 1024;
          const throughput = await measureThroughput(client, payload, total, windowBytes);
          await client.close();
          results.push({
            transport,
            payloadBytes,
            rttP50Us: Math.round(percentile(times, 50) * 10) / 10,
            rttP99Us: Math.round(percentile(times, 99) * 10) / 10,
            throughputBytesPerSec: Math.round(throughput),
          });
        }
      }
    } finally {
      child.stdin?.end();
      await new Promise((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve(undefined);
        }, 3000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve(undefined);
        });
      });
    }
    if (flag(ctx, 'json')) {
      console.log(JSON.stringify({ results }));
      return 0;
    }
    const rows = results.map((r, i) => [r.transport, r.payloadBytes >= 1 << 20 ? `${r.payloadBytes >> 20} MB` : `${r.payloadBytes >> 10} KB`, r.rttP50Us.toFixed(1), r.rttP99Us.toFixed(1), (r.throughputBytesPerSec / 1e9).toFixed(2), cpuPerRoundTrip[i]!.toFixed(1)]);
    console.log(formatTable(['transport', 'payload', 'rtt p50 µs', 'rtt p99 µs', 'throughput GB/s', 'client CPU µs/rt'], rows));
    console.log(`(transport I/O driver: ${(await import('@baton/transport')).transportDriver()}; client CPU = this process's user+system time per round trip, less sensitive to a busy machine than wall time)`);
    for (const payloadBytes of [8 * 1024, 1024 * 1024]) {
      const find = (name: string) => results.find((r) => r.transport === name && r.payloadBytes === payloadBytes);
      const native = find('native-tcp');
      const net = find('node-net');
      const redis = find('redis-pubsub');
      const size = payloadBytes >= 1 << 20 ? '1 MB' : '8 KB';
      if (native && net) console.log(`${size}: native-tcp p50 = ${(native.rttP50Us / net.rttP50Us).toFixed(2)}× node-net's${redis ? `, ${(native.rttP50Us / redis.rttP50Us).toFixed(2)}× redis-pubsub's` : ''}; throughput ${(native.throughputBytesPerSec / net.throughputBytesPerSec).toFixed(2)}× node-net's`);
    }
    for (const note of notes) console.log(note);
    return 0;
  },
};
