// GET /v1/cluster (nodes and links from discovery, plans from the planner) and
// POST /v1/plans/preview (the planner's placement for a model without applying it).
import { Injectable } from '@nestjs/common';
import { PlanPreviewHttpRequestDto, validateDto, type ClusterView, type PlanPreviewHttpResponse } from '@baton/contracts';
import { RpcClient } from '@baton/control-plane';
import { readModelManifest } from '@baton/gguf';
import { PipelineClient } from '../pipeline/pipeline-client.js';
import { OpenAIHttpError, toOpenAIError } from '../http/openai-error.js';
import { validationError } from '../generation/completion.service.js';
import { ModelsService } from '../models/models.service.js';
import { findLocalModel } from '../models/local-models.js';

/** Default context of a preview (capped like `baton plan`). */
export const DEFAULT_PREVIEW_CONTEXT = 4096;

function unavailable(what: string, error: unknown): OpenAIHttpError {
  const e = toOpenAIError(error, 0);
  return new OpenAIHttpError(e.status === 400 ? 502 : e.status, `${what}: ${e.message}`, e.type, null, e.code);
}

@Injectable()
export class ClusterService {
  constructor(
    private readonly rpc: RpcClient,
    private readonly pipeline: PipelineClient,
    private readonly models: ModelsService,
  ) {}

  async view(): Promise<ClusterView> {
    const [nodes, plans, kvCache] = await Promise.all([
      this.rpc.send('discovery.nodes.list', {}).catch((error: unknown) => {
        throw unavailable('discovery is not answering (is `baton up` or the discovery service running?)', error);
      }),
      this.rpc.send('planner.list', {}).catch((error: unknown) => {
        throw unavailable('the planner is not answering (is `baton up` or the planner service running?)', error);
      }),
      this.rpc.send('kv.usage', {}, { timeoutMs: 500 }).catch(() => undefined),
    ]);
    return { nodes: nodes.nodes, links: nodes.links, plans: plans.plans, unplaced: plans.unplaced, ...(kvCache ? { kvCache } : {}) };
  }

  async preview(body: unknown): Promise<PlanPreviewHttpResponse> {
    const checked = validateDto(PlanPreviewHttpRequestDto, body);
    if (!checked.ok) throw validationError(checked.problems);
    const request = checked.value;
    if ((request.model === undefined) === (request.modelPath === undefined)) {
      throw new OpenAIHttpError(400, 'invalid request: give exactly one of model (a name from GET /v1/models) or modelPath (a GGUF file)', 'invalid_request_error', 'model', 'invalid_request');
    }
    const modelPath = request.modelPath ?? (await this.resolve(request.model!));
    let contextTokens = request.contextTokens;
    if (contextTokens === undefined) {
      let modelContext = 0;
      try {
        modelContext = (await readModelManifest(modelPath)).contextLength;
      } catch (error) {
        throw new OpenAIHttpError(400, `cannot read the model: ${(error as Error).message}`, 'invalid_request_error', request.modelPath ? 'modelPath' : 'model', 'invalid_model_file');
      }
      contextTokens = modelContext > 0 ? Math.min(DEFAULT_PREVIEW_CONTEXT, modelContext) : DEFAULT_PREVIEW_CONTEXT;
    }
    const requirement = {
      contextTokens,
      sequences: request.sequences ?? 1,
      kvDType: request.kvDType ?? 'f16',
      objective: request.objective ?? 'latency',
      ...(request.pinnedNodes ? { pinnedNodes: request.pinnedNodes } : {}),
    } as const;
    try {
      const placement = await this.rpc.send('planner.preview', { modelPath, requirement: requirement as never });
      return { modelPath, placement };
    } catch (error) {
      const e = toOpenAIError(error, 0);
      if (e.status === 503) throw unavailable('the planner is not answering (is `baton up` or the planner service running?)', error);
      throw e;
    }
  }

  private async resolve(name: string): Promise<string> {
    const served = this.pipeline.models().find((m) => m.modelId === name);
    if (served) return served.modelPath;
    const local = await this.models.localModels();
    const file = findLocalModel(local, name);
    if (file) return file.path;
    const names = [...this.pipeline.models().map((m) => m.modelId), ...local.map((m) => m.name)];
    throw new OpenAIHttpError(
      404,
      `model '${name}' not found${names.length ? `; known models: ${names.join(', ')}` : ': no models are served or stored here (put GGUF files in ~/.baton/models, or give modelPath)'}`,
      'invalid_request_error',
      'model',
      'model_not_found',
    );
  }
}
