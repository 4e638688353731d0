// The HTTP routes. Each handler hands the raw body to one service method; validation, model
// lookup and every error's wording live in the services.
import { Body, Controller, Get, HttpCode, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ClusterView, ModelEntry, ModelList, PlanPreviewHttpResponse } from '@baton/contracts';
import { CompletionService } from '../generation/completion.service.js';
import { ModelsService } from '../models/models.service.js';
import { ClusterService } from '../cluster/cluster.service.js';
import { HealthService } from '../health/health.service.js';
import { sendCompletion } from './completion-responder.js';

@Controller('v1')
export class CompletionsController {
  constructor(private readonly completions: CompletionService) {}

  @Post('chat/completions')
  async chat(@Body() body: unknown, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    await sendCompletion(this.completions, await this.completions.prepareChat(body), request, reply);
  }

  @Post('completions')
  async text(@Body() body: unknown, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    await sendCompletion(this.completions, await this.completions.prepareText(body), request, reply);
  }
}

@Controller('v1')
export class ModelsController {
  constructor(private readonly models: ModelsService) {}

  @Get('models')
  list(): Promise<ModelList> {
    return this.models.list();
  }

  /** Ids may hold "/" and ":" (Ollama names), so the rest of the path is the id. */
  @Get('models/*')
  one(@Req() request: FastifyRequest): Promise<ModelEntry> {
    const path = request.url.split('?')[0]!;
    return this.models.one(path.slice(path.indexOf('/models/') + '/models/'.length));
  }
}

@Controller('v1')
export class ClusterController {
  constructor(private readonly cluster: ClusterService) {}

  @Get('cluster')
  view(): Promise<ClusterView> {
    return this.cluster.view();
  }

  @Post('plans/preview')
  @HttpCode(200)
  preview(@Body() body: unknown): Promise<PlanPreviewHttpResponse> {
    return this.cluster.preview(body);
  }
}

@Controller()
export class HealthController {
  constructor(private readonly health: HealthService) {}

  @Get('healthz')
  healthz(): ReturnType<HealthService['health']> {
    return this.health.health();
  }

  @Get('readyz')
  async readyz(@Res() reply: FastifyReply): Promise<void> {
    const readiness = await this.health.readiness();
    await reply.code(readiness.ready ? 200 : 503).send(readiness);
  }
}
