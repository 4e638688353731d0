// createGatewayApp: the OpenAI-compatible HTTP gateway as a started NestJS app on Fastify.
import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { NestFactory } from '@nestjs/core';
import type { LogLevel } from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { ControlPlaneOptions } from '@baton/control-plane';
import type { PipelineClient } from './pipeline/pipeline-client.js';
import type { LocalModelsOptions } from './models/local-models.js';
import { GatewayModule } from './gateway.module.js';
import { OpenAIExceptionFilter } from './http/openai-error.js';
import { ApiKeyGuard } from './http/api-key.guard.js';
import { GatewayTelemetry } from './telemetry/gateway-telemetry.js';

/** Largest request body accepted by default (413 above it). */
export const DEFAULT_BODY_LIMIT_BYTES = 4 * 1024 * 1024;
export const DEFAULT_GATEWAY_PORT = 8080;
const LOCAL_ORIGIN = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/;

export interface GatewayOptions {
  /** 0 picks a free port (see gatewayUrl). */
  port: number;
  /** Default 127.0.0.1; 0.0.0.0 to serve other machines. */
  host?: string;
  pipeline: PipelineClient;
  controlPlane: ControlPlaneOptions;
  bodyLimitBytes?: number;
  /** When non-empty, /v1 routes require "Authorization: Bearer <one of these>". */
  apiKeys?: string[];
  /** Where GET /v1/models looks for GGUF files (default $BATON_HOME/models and Ollama's store). */
  localModels?: LocalModelsOptions;
  /**
   * Browser origins allowed to call the API (CORS). Default: pages served from localhost /
   * 127.0.0.1 / [::1] on any port, as Ollama does; ['*'] allows every origin; [] none.
   */
  corsOrigins?: string[];
  /** Nest log levels (default log, warn, error); false for none. */
  logger?: LogLevel[] | false;
  /** Metrics (GET /metrics) and tracing; default: metrics only. Share it with the pipeline client. */
  telemetry?: GatewayTelemetry;
}

/** Builds, starts and returns the gateway. Close it with `await app.close()`. */
export async function createGatewayApp(options: GatewayOptions): Promise<NestFastifyApplication> {
  const bodyLimit = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  if (!Number.isInteger(bodyLimit) || bodyLimit < 1) throw new RangeError(`bodyLimitBytes must be a positive integer, got ${bodyLimit}`);
  const adapter = new FastifyAdapter({ bodyLimit });
  const telemetry = options.telemetry ?? new GatewayTelemetry();
  // every request is counted (and a completion request's span started) once Fastify has routed it
  adapter.getInstance().addHook('onRequest', (request, reply, done) => {
    telemetry.httpRequest(request.raw, reply.raw, request.routeOptions.url);
    done();
  });
  const app = await NestFactory.create<NestFastifyApplication>(
    GatewayModule.forRoot({ pipeline: options.pipeline, controlPlane: options.controlPlane, telemetry, ...(options.localModels ? { localModels: options.localModels } : {}) }),
    adapter,
    { logger: options.logger ?? ['log', 'warn', 'error'] },
  );
  app.useGlobalFilters(new OpenAIExceptionFilter(bodyLimit));
  const cors = options.corsOrigins;
  app.enableCors({
    origin: cors?.includes('*') ? true : (origin, done) => done(null, origin === undefined || (cors ? cors.includes(origin) : LOCAL_ORIGIN.test(origin))),
    methods: ['GET', 'POST', 'OPTIONS'],
    allowedHeaders: ['content-type', 'authorization', 'traceparent'],
    maxAge: 600,
  });
  if (options.apiKeys && options.apiKeys.length > 0) app.useGlobalGuards(new ApiKeyGuard(options.apiKeys));
  await app.listen(options.port, options.host ?? '127.0.0.1');
  return app;
}

/** http://host:port of a started gateway. */
export function gatewayUrl(app: NestFastifyApplication): string {
  const address = app.getHttpServer().address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;
}
