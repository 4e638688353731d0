import 'reflect-metadata';
import { hostname } from 'node:os';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import { resolveControlPlaneOptions, type ControlPlaneOptions } from '@baton/control-plane';
import { ShardModule } from './app.module.js';
import { batonHome, loadOrCreateNodeId } from './identity.js';
import { defaultAdvertiseHost } from './machine.js';

export { NodeAgentService, PROBE_INTERVAL_MS } from './agent.service.js';
export * from './identity.js';
export * from './machine.js';
export * from './serving/frames.js';
export { StageRunner } from './serving/stage-runner.js';

export interface StartNodeOptions extends Partial<ControlPlaneOptions> {
  id?: string;
  name?: string;
  memoryBudgetBytes?: number;
  home?: string;
  threads?: number;
  dataHost?: string;
  dataPort?: number;
  advertiseHost?: string;
  advertisePort?: number;
}

/** Starts the node agent in this process (what `baton node` runs). */
export async function startNode(options: StartNodeOptions = {}): Promise<INestApplicationContext> {
  const controlPlane = resolveControlPlaneOptions(options);
  const home = options.home ?? batonHome();
  const id = loadOrCreateNodeId(home, options.id);
  const name = options.name ?? hostname().replace(/\.local$/, '');
  const app = await NestFactory.createApplicationContext(
    ShardModule.forRoot(controlPlane, {
      id, name, home,
      memoryBudgetBytes: options.memoryBudgetBytes,
      threads: options.threads,
      dataHost: options.dataHost,
      dataPort: options.dataPort,
      advertiseHost: options.advertiseHost ?? defaultAdvertiseHost(),
      advertisePort: options.advertisePort,
    }),
    { logger: ['log', 'warn', 'error'] },
  );
  await app.init();
  return app;
}
