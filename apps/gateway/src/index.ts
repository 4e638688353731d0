// @baton/gateway: the OpenAI-compatible HTTP API (createGatewayApp), the data-plane interface it
// drives (PipelineClient), and the local GGUF scanner `baton models` shares.
export { createGatewayApp, gatewayUrl, DEFAULT_BODY_LIMIT_BYTES, DEFAULT_GATEWAY_PORT, type GatewayOptions } from './app.js';
export { GatewayModule, type GatewayModuleOptions } from './gateway.module.js';
export * from './pipeline/pipeline-client.js';
export { listLocalModels, findLocalModel, batonModelsDir, ollamaModelsDirs, type LocalModelsOptions } from './models/local-models.js';
export { StopMatcher, type StopResult } from './generation/stop-matcher.js';
export { CompletionService, FALLBACK_MAX_TOKENS, type PreparedGeneration, type TextEvent } from './generation/completion.service.js';
export { OpenAIHttpError } from './http/openai-error.js';
export { parseBatchJsonl, withLineNumbers, BatchInputError, batchOptionsFromEnv, isFinal, type BatchObject, type BatchResults, type BatchResultLine, type BatchStatus } from './batch/batch-logic.js';
