// Optional API keys: when the gateway is started with keys, every /v1 route needs
// "Authorization: Bearer <key>" (health probes stay open).
import { timingSafeEqual } from 'node:crypto';
import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { OpenAIHttpError } from './openai-error.js';

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(private readonly keys: readonly string[]) {}

  canActivate(context: ExecutionContext): boolean {
    if (this.keys.length === 0) return true;
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    if (!request.url.startsWith('/v1/')) return true;
    const header = request.headers.authorization;
    const key = typeof header === 'string' && /^Bearer\s+/i.test(header) ? header.replace(/^Bearer\s+/i, '').trim() : '';
    if (key === '') throw new OpenAIHttpError(401, 'missing API key: send "Authorization: Bearer <key>"', 'invalid_request_error', null, 'invalid_api_key');
    if (!this.keys.some((k) => same(k, key))) throw new OpenAIHttpError(401, 'invalid API key', 'invalid_request_error', null, 'invalid_api_key');
    return true;
  }
}
