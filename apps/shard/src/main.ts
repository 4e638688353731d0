#!/usr/bin/env node
// Process entry of a node agent (what `baton up` spawns; users run `baton node`). Tracing starts
// first when configured (OTEL_EXPORTER_OTLP_ENDPOINT / BATON_TRACE, see @baton/telemetry), and
// GET /metrics with `--metrics-port P` (or BATON_METRICS_PORT), so the stage runners find them;
// spans are flushed at the stop.
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { stopOnSignals } from '@baton/control-plane';
import { parseByteSize } from '@baton/contracts';
import { TelemetryConfigError, startProcessTelemetry, type ProcessTelemetry } from '@baton/telemetry';
import { startNode } from './index.js';

const { values } = parseArgs({
  options: {
    redis: { type: 'string' }, prefix: { type: 'string' }, id: { type: 'string' }, name: { type: 'string' }, 'memory-budget': { type: 'string' },
    threads: { type: 'string' }, 'data-host': { type: 'string' }, 'data-port': { type: 'string' }, advertise: { type: 'string' }, 'advertise-port': { type: 'string' },
    'metrics-port': { type: 'string' },
  },
  strict: true,
});
let telemetry: ProcessTelemetry;
try {
  telemetry = await startProcessTelemetry('baton-shard', {
    resource: { 'process.pid': process.pid, ...(values.id ? { 'service.instance.id': values.id } : {}) },
    ...(values['metrics-port'] !== undefined ? { metricsPort: values['metrics-port'] } : {}),
  });
} catch (error) {
  if (!(error instanceof TelemetryConfigError)) throw error;
  console.error(`shard: ${error.message}`);
  process.exit(64);
}
const app = await startNode({
  redisUrl: values.redis,
  prefix: values.prefix,
  id: values.id,
  name: values.name,
  memoryBudgetBytes: values['memory-budget'] !== undefined ? parseByteSize(values['memory-budget']) : undefined,
  threads: values.threads !== undefined ? Number(values.threads) : undefined,
  dataHost: values['data-host'],
  dataPort: values['data-port'] !== undefined ? Number(values['data-port']) : undefined,
  advertiseHost: values.advertise,
  advertisePort: values['advertise-port'] !== undefined ? Number(values['advertise-port']) : undefined,
});
stopOnSignals(async () => {
  await app.close();
  await telemetry.stop();
});
