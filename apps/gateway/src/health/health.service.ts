// /healthz: the process answers. /readyz: Redis answers a PING and at least one model is ready
// to serve; otherwise every reason it is not.
import { Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { RedisConnections } from '@baton/control-plane';
import { PipelineClient } from '../pipeline/pipeline-client.js';

const PING_TIMEOUT_MS = 1000;

export interface Readiness {
  ready: boolean;
  reasons: string[];
  models: { id: string; ready: boolean; reason?: string }[];
}

@Injectable()
export class HealthService implements OnApplicationBootstrap {
  private readonly startedAt = Date.now();
  private redis!: Redis;

  constructor(
    private readonly connections: RedisConnections,
    private readonly pipeline: PipelineClient,
  ) {}

  onApplicationBootstrap(): void {
    this.redis = this.connections.open('gateway-health', { failFast: true });
  }

  health(): { status: 'ok'; uptimeMs: number } {
    return { status: 'ok', uptimeMs: Date.now() - this.startedAt };
  }

  async readiness(): Promise<Readiness> {
    const reasons: string[] = [];
    const redisProblem = await this.pingRedis();
    if (redisProblem) reasons.push(redisProblem);
    const models = this.pipeline.models().map((m) => {
      const r = this.pipeline.readiness(m.modelId);
      return r.ready ? { id: m.modelId, ready: true } : { id: m.modelId, ready: false, reason: r.reason ?? 'no ready plan' };
    });
    if (models.length === 0) reasons.push('no model is served: start one with `baton up --model FILE`');
    else if (!models.some((m) => m.ready)) reasons.push(`no model is ready: ${models.map((m) => `${m.id}: ${m.reason}`).join('; ')}`);
    return { ready: reasons.length === 0, reasons, models };
  }

  private async pingRedis(): Promise<string | null> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const answer = await Promise.race([
        this.redis.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS);
        }),
      ]);
      return answer === 'PONG' ? null : `Redis answered PING with ${String(answer)}`;
    } catch (error) {
      return `Redis at ${this.connections.options.redisUrl} is unreachable: ${(error as Error).message}`;
    } finally {
      clearTimeout(timer);
    }
  }
}
