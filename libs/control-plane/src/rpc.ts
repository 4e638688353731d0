// Typed request/response over the NestJS Redis transport. Patterns and their request/response
// types come from one map in @baton/contracts (RpcMap); channel names are namespaced by the
// prefix. Replies carry an envelope so errors keep their code across processes.
import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { ClientRedis, ServerRedis } from '@nestjs/microservices';
import { firstValueFrom, timeout as rxTimeout } from 'rxjs';
import {
  BatonError, ErrorCode, HINT_DTOS, RPC_REQUEST_DTOS, RPC_TIMEOUT_MS, isErrorBody, validateDto,
  type ErrorBody, type HintMap, type HintPattern, type RpcPattern, type RpcRequest, type RpcResponse,
} from '@baton/contracts';
import { backoffMs, parseRedisUrl, type ControlPlaneOptions } from './config.js';

type Envelope<T> = { ok: true; value: T } | { ok: false; error: ErrorBody };

export type RpcHandlers = { [P in RpcPattern]?: (request: RpcRequest<P>) => Promise<RpcResponse<P>> | RpcResponse<P> };

function channel(prefix: string, pattern: RpcPattern): string {
  return `${prefix}rpc:${pattern}`;
}

function hintChannel(prefix: string, pattern: HintPattern): string {
  return `${prefix}hint:${pattern}`;
}

function transportOptions(options: ControlPlaneOptions) {
  return {
    ...parseRedisUrl(options.redisUrl),
    retryAttempts: Number.MAX_SAFE_INTEGER,
    retryDelay: 500,
  };
}

/** Logs a connection error once per outage instead of at every retry. */
function quietErrors(logger: Logger, client: { on(event: string, fn: (...args: unknown[]) => void): unknown }): void {
  let down = false;
  client.on('error', (error) => {
    if (!down) logger.warn(`Redis unavailable (${(error as Error)?.message ?? String(error)}); retrying with backoff`);
    down = true;
  });
  client.on('ready', () => {
    if (down) logger.log('Redis is back');
    down = false;
  });
}

/** The Nest Redis server with exponential backoff instead of a fixed retry delay. */
class BackoffServerRedis extends ServerRedis {
  override createRetryStrategy(times: number): number | undefined {
    return this.isManuallyClosed ? undefined : backoffMs(times);
  }
  override registerErrorListener(client: Parameters<ServerRedis['registerErrorListener']>[0]): void {
    quietErrors(new Logger('RpcServer'), client);
  }
}

class BackoffClientRedis extends ClientRedis {
  override registerErrorListener(client: Parameters<ClientRedis['registerErrorListener']>[0]): void {
    quietErrors(new Logger('RpcClient'), client as never);
  }
  protected createRetryStrategyWithBackoff(times: number): number | undefined {
    return this.isManuallyClosed ? undefined : backoffMs(times);
  }
  override getClientOptions() {
    return { ...super.getClientOptions(), retryStrategy: (times: number) => this.createRetryStrategyWithBackoff(times) };
  }
}

/**
 * Serves RPC handlers: every request is validated against its DTO class from contracts before
 * the handler runs; an invalid request gets a VALIDATION error listing every problem.
 */
export class RpcServer {
  private readonly logger = new Logger('RpcServer');
  private readonly server: BackoffServerRedis;
  private listening = false;

  constructor(private readonly options: ControlPlaneOptions) {
    this.server = new BackoffServerRedis(transportOptions(options));
  }

  register(handlers: RpcHandlers): void {
    if (this.listening) throw new Error('register handlers before listen()');
    for (const [pattern, handler] of Object.entries(handlers) as [RpcPattern, (req: unknown) => unknown][]) {
      const dto = RPC_REQUEST_DTOS[pattern];
      this.server.addHandler(channel(this.options.prefix, pattern), async (data: unknown): Promise<Envelope<unknown>> => {
        const checked = validateDto(dto, data ?? {});
        if (!checked.ok) {
          this.logger.warn(`${pattern}: refused an invalid request: ${checked.problems.join('; ')}`);
          return { ok: false, error: { code: ErrorCode.VALIDATION, message: `invalid ${pattern} request: ${checked.problems.join('; ')}`, details: checked.problems } };
        }
        try {
          return { ok: true, value: await handler(data ?? {}) };
        } catch (error) {
          if (error instanceof BatonError) return { ok: false, error: error.toBody() };
          this.logger.error(`${pattern}: ${(error as Error).stack ?? String(error)}`);
          return { ok: false, error: { code: ErrorCode.INTERNAL, message: (error as Error).message } };
        }
      });
    }
  }

  /** Handles a fire-and-forget hint; invalid hints are logged and dropped. */
  onHint<P extends HintPattern>(pattern: P, handler: (hint: HintMap[P]) => void | Promise<void>): void {
    if (this.listening) throw new Error('register hint handlers before listen()');
    this.server.addHandler(
      hintChannel(this.options.prefix, pattern),
      async (data: unknown) => {
        const checked = validateDto(HINT_DTOS[pattern], data);
        if (!checked.ok) {
          this.logger.warn(`hint ${pattern}: dropped an invalid hint: ${checked.problems.join('; ')}`);
          return;
        }
        try {
          await handler(data as HintMap[P]);
        } catch (error) {
          this.logger.error(`hint ${pattern}: ${(error as Error).stack ?? String(error)}`);
        }
      },
      true,
    );
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      void this.server.listen((error?: unknown) => (error ? reject(error as Error) : resolve()));
    });
    this.listening = true;
  }

  async close(): Promise<void> {
    await this.server.close();
  }
}

/** Calls RPC patterns with a timeout; a remote error is rethrown as a BatonError with its code. */
@Injectable()
export class RpcClient implements OnApplicationShutdown {
  private readonly client: BackoffClientRedis;

  constructor(private readonly options: ControlPlaneOptions) {
    this.client = new BackoffClientRedis(transportOptions(options));
  }

  async send<P extends RpcPattern>(pattern: P, request: RpcRequest<P>, opts: { timeoutMs?: number } = {}): Promise<RpcResponse<P>> {
    const timeoutMs = opts.timeoutMs ?? RPC_TIMEOUT_MS;
    let reply: Envelope<RpcResponse<P>>;
    try {
      reply = await firstValueFrom(this.client.send<Envelope<RpcResponse<P>>>(channel(this.options.prefix, pattern), request).pipe(rxTimeout(timeoutMs)));
    } catch (error) {
      if ((error as Error).name === 'TimeoutError') {
        throw new BatonError(ErrorCode.TIMEOUT, `${pattern}: no answer within ${timeoutMs} ms (is the service running and connected to ${this.options.redisUrl}?)`);
      }
      throw new BatonError(ErrorCode.UNAVAILABLE, `${pattern}: ${(error as Error).message ?? String(error)}`);
    }
    if (reply && typeof reply === 'object' && 'ok' in reply) {
      if (reply.ok) return reply.value;
      throw isErrorBody(reply.error) ? BatonError.fromBody(reply.error) : new BatonError(ErrorCode.INTERNAL, `${pattern}: malformed error reply`);
    }
    throw new BatonError(ErrorCode.INTERNAL, `${pattern}: malformed reply`);
  }

  /** Publishes a hint (fire and forget; resolves once handed to Redis). */
  async emit<P extends HintPattern>(pattern: P, hint: HintMap[P]): Promise<void> {
    await firstValueFrom(this.client.emit(hintChannel(this.options.prefix, pattern), hint), { defaultValue: undefined });
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.close();
  }
}
