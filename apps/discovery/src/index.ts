import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import { resolveControlPlaneOptions, type ControlPlaneOptions } from '@baton/control-plane';
import { DiscoveryModule } from './app.module.js';

export { DiscoveryService, POLL_INTERVAL_MS } from './discovery.service.js';
export * from './registry.js';

/** Starts the discovery service in this process. */
export async function startDiscovery(options: Partial<ControlPlaneOptions> = {}): Promise<INestApplicationContext> {
  const resolved = resolveControlPlaneOptions(options);
  const app = await NestFactory.createApplicationContext(DiscoveryModule.forRoot(resolved), { logger: ['log', 'warn', 'error'] });
  await app.init();
  return app;
}
