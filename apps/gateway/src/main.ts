#!/usr/bin/env node
// Process entry of the gateway: `node apps/gateway/dist/main.js [--port 8080] [--host 127.0.0.1]
// [--redis URL] [--prefix P] [--api-key KEY …]` (REDIS_URL, BATON_PREFIX, BATON_API_KEYS — comma
// separated — work too). Wires the real data-plane client into the HTTP app. Metrics are served
// at GET /metrics; tracing starts when configured (OTEL_EXPORTER_OTLP_ENDPOINT / BATON_TRACE,
// BATON_TRACE_SAMPLE: see @baton/telemetry) and is flushed at the stop.
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { RedisConnections, RpcClient, batonHome, loadOrCreateSecret, resolveControlPlaneOptions, stopOnSignals } from '@baton/control-plane';
import { TelemetryConfigError, startTracing, stopTracing, type Tracing } from '@baton/telemetry';
import { createGatewayApp, gatewayUrl } from './app.js';
import { ShardPipelineClient } from './pipeline/pipeline.client.js';
import { GatewayTelemetry } from './telemetry/gateway-telemetry.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string' }, host: { type: 'string' }, redis: { type: 'string' }, prefix: { type: 'string' },
    'api-key': { type: 'string', multiple: true },
  },
  strict: true,
});
const port = Number(values.port ?? 8080);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`gateway: --port must be an integer from 0 to 65535, got ${values.port}`);
  process.exit(64);
}
let tracing: Tracing | undefined;
try {
  tracing = startTracing('baton-gateway', { resource: { 'process.pid': process.pid } });
} catch (error) {
  if (!(error instanceof TelemetryConfigError)) throw error;
  console.error(`gateway: ${error.message}`);
  process.exit(64);
}
const telemetry = new GatewayTelemetry(tracing);
const controlPlane = resolveControlPlaneOptions({ redisUrl: values.redis, prefix: values.prefix });
const connections = new RedisConnections(controlPlane);
const rpc = new RpcClient(controlPlane);
const pipeline = new ShardPipelineClient(controlPlane, loadOrCreateSecret(batonHome()), connections, rpc, telemetry);
await pipeline.start();
const apiKeys = [...(values['api-key'] ?? []), ...(process.env.BATON_API_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean)];
const app = await createGatewayApp({ port, host: values.host ?? '127.0.0.1', pipeline, controlPlane, apiKeys, telemetry });
console.log(`gateway listening on ${gatewayUrl(app)}${tracing ? ` (tracing: ${tracing.sample.kind === 'every' ? `every ${tracing.sample.n}th token` : `${tracing.sample.kind} tokens`})` : ''}`);
stopOnSignals(async () => {
  await app.close();
  await pipeline.stop();
  await rpc.close();
  await connections.onApplicationShutdown();
  await stopTracing();
});
