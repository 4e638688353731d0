import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import { resolveControlPlaneOptions, type ControlPlaneOptions } from '@baton/control-plane';
import { KvCacheModule } from './app.module.js';

export { KvCacheService, KV_CONFIRM_TIMEOUT_MS, kvReuseEnabled } from './kv-cache.service.js';
export { KvStreams, type KvStreamEntry } from './kv-streams.js';
export { KvCacheModule } from './app.module.js';

/** Starts the KV-cache manager service in this process. */
export async function startKvCache(options: Partial<ControlPlaneOptions> = {}): Promise<INestApplicationContext> {
  const app = await NestFactory.createApplicationContext(KvCacheModule.forRoot(resolveControlPlaneOptions(options)), { logger: ['log', 'warn', 'error'] });
  await app.init();
  return app;
}
