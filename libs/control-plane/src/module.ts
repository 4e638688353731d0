// Nest wiring: ControlPlaneModule.forRoot(options) provides the options, the Redis connection
// factory and the RPC client to a service's module.
import { Module, type DynamicModule } from '@nestjs/common';
import type { ControlPlaneOptions } from './config.js';
import { RedisConnections } from './redis.js';
import { RpcClient } from './rpc.js';

export const CONTROL_PLANE_OPTIONS = Symbol('CONTROL_PLANE_OPTIONS');

@Module({})
export class ControlPlaneModule {
  static forRoot(options: ControlPlaneOptions): DynamicModule {
    return {
      module: ControlPlaneModule,
      global: true,
      providers: [
        { provide: CONTROL_PLANE_OPTIONS, useValue: options },
        { provide: RedisConnections, useFactory: () => new RedisConnections(options) },
        { provide: RpcClient, useFactory: () => new RpcClient(options) },
      ],
      exports: [CONTROL_PLANE_OPTIONS, RedisConnections, RpcClient],
    };
  }
}
