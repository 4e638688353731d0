import { Module, type DynamicModule } from '@nestjs/common';
import { ControlPlaneModule, type ControlPlaneOptions } from '@baton/control-plane';
import { KvCacheService } from './kv-cache.service.js';
import { KvStreams } from './kv-streams.js';

@Module({})
export class KvCacheModule {
  static forRoot(options: ControlPlaneOptions): DynamicModule {
    return { module: KvCacheModule, imports: [ControlPlaneModule.forRoot(options)], providers: [KvStreams, KvCacheService], exports: [KvCacheService] };
  }
}
