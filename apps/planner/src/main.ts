#!/usr/bin/env node
// Process entry of the planner service: `node apps/planner/dist/main.js [--redis URL] [--prefix P]`
// (REDIS_URL / BATON_PREFIX work too). Stops cleanly on SIGINT/SIGTERM.
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { stopOnSignals } from '@baton/control-plane';
import { startPlanner } from './index.js';

const { values } = parseArgs({ options: { redis: { type: 'string' }, prefix: { type: 'string' } }, strict: true });
const app = await startPlanner({ redisUrl: values.redis, prefix: values.prefix });
stopOnSignals(() => app.close());
