#!/usr/bin/env node
// Process entry of a node agent (what `baton up` spawns; users run `baton node`).
import 'reflect-metadata';
import { parseArgs } from 'node:util';
import { stopOnSignals } from '@baton/control-plane';
import { parseByteSize } from '@baton/contracts';
import { startNode } from './index.js';

const { values } = parseArgs({
  options: {
    redis: { type: 'string' }, prefix: { type: 'string' }, id: { type: 'string' }, name: { type: 'string' }, 'memory-budget': { type: 'string' },
    threads: { type: 'string' }, 'data-host': { type: 'string' }, 'data-port': { type: 'string' }, advertise: { type: 'string' }, 'advertise-port': { type: 'string' },
  },
  strict: true,
});
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
stopOnSignals(() => app.close());
