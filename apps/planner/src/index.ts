import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import { resolveControlPlaneOptions, type ControlPlaneOptions } from '@baton/control-plane';
import { PlannerModule } from './app.module.js';

export { PlannerService, REPLAN_DEBOUNCE_MS } from './planner.service.js';
export * from './planning.js';

/** Starts the planner service in this process. */
export async function startPlanner(options: Partial<ControlPlaneOptions> = {}): Promise<INestApplicationContext> {
  const app = await NestFactory.createApplicationContext(PlannerModule.forRoot(resolveControlPlaneOptions(options)), { logger: ['log', 'warn', 'error'] });
  await app.init();
  return app;
}
