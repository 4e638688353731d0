// A process's Prometheus endpoint outside Nest (a shard): GET /metrics over plain node:http.
// Code deep inside the process finds the registry with processMetrics(); undefined means no
// endpoint was asked for, and callers then skip all metric work.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MetricsRegistry, PROMETHEUS_CONTENT_TYPE, registerProcessMetrics } from './prometheus.js';

export interface MetricsServer {
  registry: MetricsRegistry;
  /** The port it listens on (useful with port 0). */
  port: number;
  close(): Promise<void>;
}

let current: MetricsRegistry | undefined;

/** The registry of this process's metrics endpoint, if one was started. */
export function processMetrics(): MetricsRegistry | undefined {
  return current;
}

/** Parses a metrics port (flag or variable); throws naming the source and the value. */
export function parseMetricsPort(source: string, value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value.trim()) || port > 65535) throw new RangeError(`${source} must be a port number from 0 to 65535, got ${JSON.stringify(value)}`);
  return port;
}

/**
 * Serves GET /metrics on `port` (0 = any free port) and makes the registry the process's. A new
 * registry starts with the process series (CPU, memory, start time).
 */
export async function startMetricsServer(options: { port: number; host?: string; registry?: MetricsRegistry }): Promise<MetricsServer> {
  let registry = options.registry;
  if (!registry) registerProcessMetrics((registry = new MetricsRegistry()));
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('only GET /metrics here\n');
      return;
    }
    response.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE }).end(registry.render());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  current = registry;
  return {
    registry,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      if (current === registry) current = undefined;
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
