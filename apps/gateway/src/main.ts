#!/usr/bin/env node
// Process entry of the gateway: `node apps/gateway/dist/main.js [--port 8080] [--host 127.0.0.1]
// [--redis URL] [--prefix P] [--api-key KEY …]` (REDIS_URL, BATON_PREFIX, BATON_API_KEYS — comma
// separated — work too). Wires the real data-plane client into the HTTP app.
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { RedisConnections, RpcClient, batonHome, loadOrCreateSecret, resolveControlPlaneOptions, stopOnSignals } from '@baton/control-plane';
import { createGatewayApp, gatewayUrl } from './app.js';
import { ShardPipelineClient } from './pipeline/pipeline.client.js';

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
const controlPlane = resolveControlPlaneOptions({ redisUrl: values.redis, prefix: values.prefix });
const connections = new RedisConnections(controlPlane);
const rpc = new RpcClient(controlPlane);
const pipeline = new ShardPipelineClient(controlPlane, loadOrCreateSecret(batonHome()), connections, rpc);
await pipeline.start();
const apiKeys = [...(values['api-key'] ?? []), ...(process.env.BATON_API_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean)];
const app = await createGatewayApp({ port, host: values.host ?? '127.0.0.1', pipeline, controlPlane, apiKeys });
console.log(`gateway listening on ${gatewayUrl(app)}`);
stopOnSignals(async () => {
  await app.close();
  await pipeline.stop();
  await rpc.close();
  await connections.onApplicationShutdown();
});
