// GET /metrics: the gateway's Prometheus metrics in the text exposition format (no API key, like
// the health probes: it holds counts and latencies, never prompts or outputs).
import { Controller, Get, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { PROMETHEUS_CONTENT_TYPE } from '@baton/telemetry';
import { GatewayTelemetry } from './gateway-telemetry.js';

@Controller()
export class MetricsController {
  constructor(private readonly telemetry: GatewayTelemetry) {}

  @Get('metrics')
  async metrics(@Res() reply: FastifyReply): Promise<void> {
    await reply.code(200).header('content-type', PROMETHEUS_CONTENT_TYPE).send(this.telemetry.metrics.render());
  }
}
