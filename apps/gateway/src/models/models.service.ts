// GET /v1/models: the models with a plan (ready or not, from the pipeline), then the GGUF files
// on this machine that could be planned.
import { stat } from 'node:fs/promises';
import { Inject, Injectable } from '@nestjs/common';
import type { LocalModelFile, ModelEntry, ModelList } from '@baton/contracts';
import { PipelineClient } from '../pipeline/pipeline-client.js';
import { OpenAIHttpError } from '../http/openai-error.js';
import { listLocalModels, type LocalModelsOptions } from './local-models.js';

export const LOCAL_MODELS_OPTIONS = Symbol('LOCAL_MODELS_OPTIONS');

@Injectable()
export class ModelsService {
  constructor(
    private readonly pipeline: PipelineClient,
    @Inject(LOCAL_MODELS_OPTIONS) private readonly localOptions: LocalModelsOptions,
  ) {}

  localModels(): Promise<LocalModelFile[]> {
    return listLocalModels(this.localOptions);
  }

  async list(): Promise<ModelList> {
    const served = this.pipeline.models();
    const data: ModelEntry[] = [];
    const servedPaths = new Set<string>();
    for (const model of served) {
      servedPaths.add(model.modelPath);
      const readiness = this.pipeline.readiness(model.modelId);
      let created = 0;
      try {
        created = Math.floor((await stat(model.modelPath)).mtimeMs / 1000);
      } catch {
        // the file is on the shards, not here
      }
      data.push({
        id: model.modelId,
        object: 'model',
        created,
        owned_by: 'baton',
        baton: {
          status: readiness.ready ? 'ready' : 'not_ready',
          ...(readiness.ready ? {} : { reason: readiness.reason ?? 'no ready plan' }),
          path: model.modelPath,
          contextLength: model.contextLength > 0 ? model.contextLength : null,
          planVersion: model.planVersion,
        },
      });
    }
    const ids = new Set(data.map((d) => d.id));
    for (const file of await this.localModels()) {
      if (servedPaths.has(file.path) || ids.has(file.name)) continue;
      ids.add(file.name);
      data.push({
        id: file.name,
        object: 'model',
        created: Math.floor(file.modifiedMs / 1000),
        owned_by: file.source === 'ollama' ? 'ollama' : 'local',
        baton: {
          status: 'available',
          ...(file.error ? { reason: `the file cannot be served: ${file.error}` } : {}),
          path: file.path,
          contextLength: file.contextLength,
          source: file.source,
          sizeBytes: file.sizeBytes,
          arch: file.arch,
          fileType: file.fileType,
        },
      });
    }
    return { object: 'list', data };
  }

  /** GET /v1/models/{id} (the id as it appears in the URL path, percent-encoded or not): one entry, or 404. */
  async one(encodedId: string): Promise<ModelEntry> {
    let id: string;
    try {
      id = decodeURIComponent(encodedId);
    } catch {
      throw new OpenAIHttpError(400, `invalid model id in the URL: ${encodedId} is not valid percent-encoding`, 'invalid_request_error', 'model', 'invalid_request');
    }
    const list = await this.list();
    const entry = list.data.find((m) => m.id === id);
    if (entry) return entry;
    throw new OpenAIHttpError(404, `model '${id}' not found; known models: ${list.data.map((m) => m.id).join(', ') || 'none'}`, 'invalid_request_error', 'model', 'model_not_found');
  }
}
