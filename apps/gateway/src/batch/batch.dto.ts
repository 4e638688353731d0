// The body of POST /v1/batches: OpenAI's batch-input lines ({custom_id, method, url, body}) sent
// inline as `requests` instead of as an uploaded file. Each body is checked afterwards against
// the DTO of its endpoint (see validateBatchCreate), so every problem of every request is listed.
import { Type } from 'class-transformer';
import { ArrayMinSize, IsArray, IsIn, IsObject, IsOptional, IsString, MaxLength, MinLength, ValidateNested } from 'class-validator';

/** Endpoints a batch request may target. */
export const BATCH_ENDPOINTS = ['/v1/chat/completions', '/v1/completions'] as const;
export type BatchEndpoint = (typeof BATCH_ENDPOINTS)[number];

/** Longest custom_id, and metadata limits (OpenAI's: 16 pairs, keys 64 and values 512 characters). */
export const MAX_CUSTOM_ID_LENGTH = 512;
export const MAX_METADATA_PAIRS = 16;
export const MAX_METADATA_KEY_LENGTH = 64;
export const MAX_METADATA_VALUE_LENGTH = 512;

export class BatchRequestItemDto {
  @IsString({ message: 'custom_id must be a string' })
  @MinLength(1, { message: 'custom_id must not be empty' })
  @MaxLength(MAX_CUSTOM_ID_LENGTH, { message: `custom_id must be at most ${MAX_CUSTOM_ID_LENGTH} characters` })
  custom_id!: string;

  @IsIn(BATCH_ENDPOINTS, { message: `url must be one of ${BATCH_ENDPOINTS.join(', ')}` })
  url!: BatchEndpoint;

  /** OpenAI's input lines carry "method": "POST"; optional here. */
  @IsOptional() @IsIn(['POST'], { message: 'method must be POST' })
  method?: 'POST';

  @IsObject({ message: 'body must be an object (the request body of url)' })
  body!: Record<string, unknown>;
}

export class CreateBatchDto {
  @IsArray({ message: 'requests must be an array of {custom_id, url, body} objects' })
  @ArrayMinSize(1, { message: 'requests must not be empty' })
  @ValidateNested({ each: true })
  @Type(() => BatchRequestItemDto)
  requests!: BatchRequestItemDto[];

  @IsOptional() @IsObject({ message: 'metadata must be an object of string values' })
  metadata?: Record<string, string> | null;
}
