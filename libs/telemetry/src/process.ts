// What a service process without its own HTTP server (a shard) starts for observability, in one
// call from its entry: tracing when configured, and a /metrics endpoint when a port is given
// (flag, else BATON_METRICS_PORT).
import type { Attributes } from '@opentelemetry/api';
import { TelemetryConfigError } from './config.js';
import { parseMetricsPort, startMetricsServer, type MetricsServer } from './metrics-server.js';
import { startTracing, stopTracing, type Tracing } from './tracing.js';

export interface ProcessTelemetry {
  tracing?: Tracing;
  metrics?: MetricsServer;
  /** Flushes the spans and closes the endpoint. */
  stop(): Promise<void>;
}

/**
 * Starts tracing (if configured) and the metrics endpoint (if `metricsPort` or
 * BATON_METRICS_PORT is set). Throws TelemetryConfigError naming a bad setting.
 */
export async function startProcessTelemetry(serviceName: string, options: { resource?: Attributes; metricsPort?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ProcessTelemetry> {
  const env = options.env ?? process.env;
  const source = options.metricsPort !== undefined ? '--metrics-port' : 'BATON_METRICS_PORT';
  const portText = options.metricsPort ?? (env.BATON_METRICS_PORT?.trim() || undefined);
  let port: number | undefined;
  try {
    port = portText === undefined ? undefined : parseMetricsPort(source, portText);
  } catch (error) {
    throw new TelemetryConfigError((error as Error).message);
  }
  const tracing = startTracing(serviceName, { env, ...(options.resource ? { resource: options.resource } : {}) });
  let metrics: MetricsServer | undefined;
  if (port !== undefined) {
    try {
      metrics = await startMetricsServer({ port });
    } catch (error) {
      await stopTracing();
      throw new TelemetryConfigError(`cannot serve metrics on port ${port} (${source}): ${(error as Error).message}`);
    }
  }
  return {
    ...(tracing ? { tracing } : {}),
    ...(metrics ? { metrics } : {}),
    stop: async () => {
      await stopTracing();
      await metrics?.close();
    },
  };
}
