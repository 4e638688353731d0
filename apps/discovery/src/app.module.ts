import { Module, type DynamicModule } from '@nestjs/common';
import { ControlPlaneModule, type ControlPlaneOptions } from '@baton/control-plane';
import { DiscoveryService } from './discovery.service.js';

@Module({})
export class DiscoveryModule {
  static forRoot(options: ControlPlaneOptions): DynamicModule {
    return { module: DiscoveryModule, imports: [ControlPlaneModule.forRoot(options)], providers: [DiscoveryService], exports: [DiscoveryService] };
  }
}
