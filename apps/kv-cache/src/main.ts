#!/usr/bin/env node
// Process entry of the kv-cache service: `node apps/kv-cache/dist/main.js [--redis URL] [--prefix P] [--no-reuse]`
// (REDIS_URL / BATON_PREFIX / BATON_KV_REUSE=off work too). Stops cleanly on SIGINT/SIGTERM.
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { stopOnSignals } from '@baton/control-plane';
import { startKvCache } from './index.js';

const { values } = parseArgs({ options: { redis: { type: 'string' }, prefix: { type: 'string' }, 'no-reuse': { type: 'boolean' } }, strict: true });
if (values['no-reuse']) process.env.BATON_KV_REUSE = 'off';
const app = await startKvCache({ redisUrl: values.redis, prefix: values.prefix });
stopOnSignals(() => app.close());
