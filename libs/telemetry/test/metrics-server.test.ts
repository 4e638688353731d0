// The plain /metrics endpoint over real HTTP, and the process start-up that validates its port.
import { afterEach, describe, expect, it } from 'vitest';
import { MetricsRegistry, TelemetryConfigError, parseMetricsPort, processMetrics, startMetricsServer, startProcessTelemetry, type MetricsServer } from '../src/index.js';

let server: MetricsServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('metrics endpoint', () => {
  it('serves the registry at GET /metrics, 404 elsewhere, and is the process registry while open', async () => {
    server = await startMetricsServer({ port: 0, host: '127.0.0.1', registry: new MetricsRegistry() });
    server.registry.counter('things_total', 'Things.').inc(undefined, 3);
    expect(processMetrics()).toBe(server.registry);
    const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await response.text()).toBe('# HELP things_total Things.\n# TYPE things_total counter\nthings_total 3\n');
    expect((await fetch(`http://127.0.0.1:${server.port}/other`)).status).toBe(404);
    await server.close();
    server = undefined;
    expect(processMetrics()).toBeUndefined();
  });

  it('starts a new registry with the process series', async () => {
    server = await startMetricsServer({ port: 0, host: '127.0.0.1' });
    const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_used_bytes', 'process_start_time_seconds']) expect(text).toMatch(new RegExp(`^${name} [0-9.e+]+$`, 'm'));
  });

  it('validates the port, naming where it came from', async () => {
    expect(parseMetricsPort('--metrics-port', '9464')).toBe(9464);
    expect(() => parseMetricsPort('--metrics-port', 'http')).toThrow('--metrics-port must be a port number from 0 to 65535, got "http"');
    expect(() => parseMetricsPort('BATON_METRICS_PORT', '70000')).toThrow('BATON_METRICS_PORT must be a port number');
    await expect(startProcessTelemetry('x', { env: { BATON_METRICS_PORT: '-1' } })).rejects.toThrow(TelemetryConfigError);
    const started = await startProcessTelemetry('x', { env: {}, metricsPort: '0' });
    expect(started.tracing).toBeUndefined();
    expect(started.metrics?.port).toBeGreaterThan(0);
    await started.stop();
    expect(processMetrics()).toBeUndefined();
  });

  it('says which port is taken', async () => {
    server = await startMetricsServer({ port: 0 });
    await expect(startProcessTelemetry('x', { env: { BATON_METRICS_PORT: String(server.port) } })).rejects.toThrow(`cannot serve metrics on port ${server.port} (BATON_METRICS_PORT)`);
  });
});
