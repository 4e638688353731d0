// Batch jobs in the gateway: the routes, the service, the BullMQ queue and its worker. Options
// come from BATON_BATCH_* variables (see batchOptionsFromEnv); a bad value stops the gateway at
// start with its name. The control plane (Redis connections, prefix) is global; the completion
// service is the gateway module's (looked up by BatchService).
import { Module } from '@nestjs/common';
import { batchOptionsFromEnv } from './batch-logic.js';
import { BatchController } from './batch.controller.js';
import { BatchQueue } from './batch.queue.js';
import { BATCH_OPTIONS, BatchService } from './batch.service.js';

@Module({
  controllers: [BatchController],
  providers: [{ provide: BATCH_OPTIONS, useFactory: () => batchOptionsFromEnv() }, BatchQueue, BatchService],
})
export class BatchModule {}
