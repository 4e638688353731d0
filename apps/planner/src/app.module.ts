import { Module, type DynamicModule } from '@nestjs/common';
import { ControlPlaneModule, type ControlPlaneOptions } from '@baton/control-plane';
import { ManifestReader } from './manifests.js';
import { PlannerService } from './planner.service.js';

@Module({})
export class PlannerModule {
  static forRoot(options: ControlPlaneOptions): DynamicModule {
    return { module: PlannerModule, imports: [ControlPlaneModule.forRoot(options)], providers: [ManifestReader, PlannerService], exports: [PlannerService] };
  }
}
