// Every error the gateway returns has OpenAI's shape {"error": {message, type, param, code}}:
// validation, unknown model, context overflow, no ready plan, oversized or unparsable bodies
// (raised by Fastify before any controller runs), unknown routes and internal failures.
import { Catch, HttpException, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { BatonError, ErrorCode, type OpenAIErrorBody } from '@baton/contracts';

export class OpenAIHttpError extends Error {
  readonly type: string;
  constructor(
    readonly status: number,
    message: string,
    type?: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'OpenAIHttpError';
    this.type = type ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
  }

  toBody(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const BATON_STATUS: Record<ErrorCode, number> = {
  [ErrorCode.VALIDATION]: 400,
  [ErrorCode.NOT_FOUND]: 404,
  [ErrorCode.TIMEOUT]: 503,
  [ErrorCode.UNAVAILABLE]: 503,
  [ErrorCode.INFEASIBLE]: 422,
  [ErrorCode.CAPACITY]: 429,
  [ErrorCode.VERSION_MISMATCH]: 409,
  [ErrorCode.AUTH]: 401,
  [ErrorCode.INTERNAL]: 500,
};

/** Turns anything thrown into an OpenAIHttpError. `bodyLimitBytes` words the 413 message. */
export function toOpenAIError(error: unknown, bodyLimitBytes: number): OpenAIHttpError {
  if (error instanceof OpenAIHttpError) return error;
  if (error instanceof BatonError) {
    const status = BATON_STATUS[error.code] ?? 500;
    return new OpenAIHttpError(status, error.message, undefined, null, error.code.toLowerCase());
  }
  const e = (error ?? {}) as { code?: unknown; statusCode?: unknown; message?: string };
  const code = typeof e.code === 'string' ? e.code : '';
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new OpenAIHttpError(413, `request body too large: the limit is ${bodyLimitBytes} bytes; send a smaller request`, 'invalid_request_error', null, 'request_too_large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new OpenAIHttpError(415, 'unsupported Content-Type: send the body as JSON with "Content-Type: application/json"', 'invalid_request_error', null, 'unsupported_media_type');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new OpenAIHttpError(400, 'the request body is empty: send a JSON object', 'invalid_request_error', null, 'invalid_json');
  }
  if (error instanceof SyntaxError || code.startsWith('FST_ERR_CTP')) {
    return new OpenAIHttpError(400, `the request body is not valid JSON: ${e.message}`, 'invalid_request_error', null, 'invalid_json');
  }
  if (error instanceof HttpException) {
    const status = error.getStatus();
    if (status === 413) return toOpenAIError({ code: 'FST_ERR_CTP_BODY_TOO_LARGE' }, bodyLimitBytes);
    const message = status === 404 ? `${error.message}: the API serves /v1/chat/completions, /v1/completions, /v1/models, /v1/cluster, /v1/plans/preview, /v1/batches, /healthz, /readyz` : error.message;
    return new OpenAIHttpError(status, message, undefined, null, status === 404 ? 'not_found' : null);
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new OpenAIHttpError(e.statusCode, e.message ?? 'bad request');
  }
  return new OpenAIHttpError(500, `internal error: ${e.message ?? String(error)}`, 'server_error', null, 'internal_error');
}

const logger = new Logger('Gateway');

export function logIfInternal(error: OpenAIHttpError, cause: unknown): void {
  if (error.status >= 500 && error.status !== 503) logger.error((cause as Error)?.stack ?? String(cause));
}

interface ReplyLike {
  raw: { headersSent: boolean; writableEnded: boolean };
  code(status: number): ReplyLike;
  header(name: string, value: string): ReplyLike;
  send(body: unknown): unknown;
}

/** Nest's catch-all: every exception reaches the client in OpenAI's shape. */
@Catch()
export class OpenAIExceptionFilter implements ExceptionFilter {
  constructor(private readonly bodyLimitBytes: number) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<ReplyLike>();
    const error = toOpenAIError(exception, this.bodyLimitBytes);
    logIfInternal(error, exception);
    if (reply.raw.headersSent || reply.raw.writableEnded) return; // a stream already started: it reports its own errors
    reply.code(error.status).header('content-type', 'application/json; charset=utf-8').send(error.toBody());
  }
}
