// The batch routes (OpenAI's Batch API, with inline requests instead of an uploaded file). Each
// handler hands its input to one BatchService method; validation and errors live there.
import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import type { BatchObject, BatchResults } from './batch-logic.js';
import { BatchService, type BatchList } from './batch.service.js';

@Controller('v1/batches')
export class BatchController {
  constructor(private readonly batches: BatchService) {}

  @Post()
  @HttpCode(200)
  create(@Body() body: unknown): Promise<BatchObject> {
    return this.batches.submit(body);
  }

  @Get()
  list(@Query('limit') limit?: string, @Query('after') after?: string): Promise<BatchList> {
    return this.batches.list(limit, after);
  }

  @Get(':id')
  one(@Param('id') id: string): Promise<BatchObject> {
    return this.batches.get(id);
  }

  @Get(':id/results')
  results(@Param('id') id: string): Promise<BatchResults> {
    return this.batches.results(id);
  }

  @Post(':id/cancel')
  @HttpCode(200)
  cancel(@Param('id') id: string): Promise<BatchObject> {
    return this.batches.cancel(id);
  }
}
