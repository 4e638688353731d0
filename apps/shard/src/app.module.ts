import { Module, type DynamicModule } from '@nestjs/common';
import { ControlPlaneModule, type ControlPlaneOptions } from '@baton/control-plane';
import { NODE_AGENT_OPTIONS, NodeAgentService, type NodeAgentOptions } from './agent.service.js';
import { ServingService } from './serving/serving.service.js';
import { LinkProberService } from './serving/link-prober.service.js';

@Module({})
export class ShardModule {
  static forRoot(controlPlane: ControlPlaneOptions, agent: NodeAgentOptions): DynamicModule {
    return {
      module: ShardModule,
      imports: [ControlPlaneModule.forRoot(controlPlane)],
      providers: [{ provide: NODE_AGENT_OPTIONS, useValue: agent }, NodeAgentService, ServingService, LinkProberService],
      exports: [NodeAgentService],
    };
  }
}
