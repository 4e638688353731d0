// Nest wiring of the gateway: the pipeline (given by the caller), the control plane (RPC client
// and Redis connections), the services and the controllers.
import { Module, type DynamicModule } from '@nestjs/common';
import { ControlPlaneModule, type ControlPlaneOptions } from '@baton/control-plane';
import { PipelineClient } from './pipeline/pipeline-client.js';
import { ModelTextCache } from './generation/model-text.js';
import { CompletionService } from './generation/completion.service.js';
import { ModelsService, LOCAL_MODELS_OPTIONS } from './models/models.service.js';
import type { LocalModelsOptions } from './models/local-models.js';
import { ClusterService } from './cluster/cluster.service.js';
import { HealthService } from './health/health.service.js';
import { ClusterController, CompletionsController, HealthController, ModelsController } from './http/controllers.js';
import { GatewayTelemetry } from './telemetry/gateway-telemetry.js';
import { MetricsController } from './telemetry/metrics.controller.js';
import { BatchModule } from './batch/batch.module.js';

export interface GatewayModuleOptions {
  pipeline: PipelineClient;
  controlPlane: ControlPlaneOptions;
  localModels?: LocalModelsOptions;
  /** Metrics and tracing (default: metrics only). */
  telemetry?: GatewayTelemetry;
}

@Module({})
export class GatewayModule {
  static forRoot(options: GatewayModuleOptions): DynamicModule {
    return {
      module: GatewayModule,
      imports: [ControlPlaneModule.forRoot(options.controlPlane), BatchModule],
      controllers: [CompletionsController, ModelsController, ClusterController, HealthController, MetricsController],
      providers: [
        { provide: PipelineClient, useValue: options.pipeline },
        { provide: GatewayTelemetry, useValue: options.telemetry ?? new GatewayTelemetry() },
        { provide: LOCAL_MODELS_OPTIONS, useValue: options.localModels ?? {} },
        ModelTextCache,
        CompletionService,
        ModelsService,
        ClusterService,
        HealthService,
      ],
    };
  }
}
