// The gateway's OpenAI-compatible HTTP API: request DTO classes (validated with class-validator;
// unknown fields are refused) and the response shapes clients (and `baton chat`) read. Field
// names are OpenAI's (snake_case) because they are a wire format other tools already speak.
import type { KvUsageReport } from './kv.js';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize, ArrayMinSize, IsArray, IsBoolean, IsIn, IsInt, IsNumber, IsOptional, IsString, Matches, Max, MaxLength, Min,
  MinLength, ValidateBy, ValidateNested, buildMessage, type ValidationOptions,
} from 'class-validator';
import { KV_DTYPES, type KvDType } from './manifest.js';
import { ID_PATTERN } from './ids.js';
import { OBJECTIVES, type Objective, type Placement, type Plan } from './plan.js';
import type { LinkMeasurement, NodeRecord } from './node.js';

/** Roles a chat message may have ("developer" is OpenAI's newer name for "system"). */
export const CHAT_ROLES = ['system', 'developer', 'user', 'assistant'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

/** Most stop strings per request, and their longest length in characters. */
export const MAX_STOP_STRINGS = 16;
export const MAX_STOP_LENGTH = 256;

function isStop(value: unknown): boolean {
  const ok = (s: unknown) => typeof s === 'string' && s.length > 0 && s.length <= MAX_STOP_LENGTH;
  if (typeof value === 'string') return ok(value);
  return Array.isArray(value) && value.length <= MAX_STOP_STRINGS && value.every(ok);
}

/** `stop`: a non-empty string or an array of at most MAX_STOP_STRINGS of them. */
function IsStop(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isStop',
      validator: {
        validate: (value: unknown) => isStop(value),
        defaultMessage: buildMessage(
          () => `$property must be a non-empty string or an array of at most ${MAX_STOP_STRINGS} non-empty strings (each at most ${MAX_STOP_LENGTH} characters)`,
          options,
        ),
      },
    },
    options,
  );
}

/** A text content part, as OpenAI clients send multi-part content. */
export interface ChatContentPart {
  type: 'text';
  text: string;
}

function isContent(value: unknown): boolean {
  if (typeof value === 'string') return true;
  return (
    Array.isArray(value) &&
    value.every(
      (p) =>
        typeof p === 'object' && p !== null && (p as ChatContentPart).type === 'text' && typeof (p as ChatContentPart).text === 'string' &&
        Object.keys(p).every((k) => k === 'type' || k === 'text'),
    )
  );
}

function IsChatContent(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isChatContent',
      validator: {
        validate: (value: unknown) => isContent(value),
        defaultMessage: buildMessage(() => '$property must be a string or an array of {"type": "text", "text": string} parts (images and other parts are not supported)', options),
      },
    },
    options,
  );
}

/** A seed: any integer JSON can carry exactly (it is reduced modulo 2^64 for the sampler). */
function IsSeed(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isSeed',
      validator: {
        validate: (value: unknown) => typeof value === 'number' && Number.isSafeInteger(value),
        defaultMessage: buildMessage(() => '$property must be an integer between -(2^53-1) and 2^53-1', options),
      },
    },
    options,
  );
}

export class ChatMessageDto {
  @IsIn(CHAT_ROLES, { message: `role must be one of ${CHAT_ROLES.join(', ')}` }) role!: ChatRole;
  @IsChatContent() content!: string | ChatContentPart[];
  @IsOptional() @IsString() @MaxLength(256) name?: string;
}

export class StreamOptionsDto {
  @IsOptional() @IsBoolean() include_usage?: boolean;
}

/** Sampling and length fields shared by chat and text completions (null means omitted). */
export class SamplingRequestDto {
  @IsString() @MinLength(1) @MaxLength(256) model!: string;
  @IsOptional() @IsBoolean() stream?: boolean | null;
  @IsOptional() @ValidateNested() @Type(() => StreamOptionsDto) stream_options?: StreamOptionsDto | null;
  @IsOptional() @IsInt({ message: 'max_tokens must be an integer' }) @Min(1, { message: 'max_tokens must be at least 1' }) max_tokens?: number | null;
  @IsOptional() @IsNumber({ allowNaN: false, allowInfinity: false }) @Min(0) @Max(2) temperature?: number | null;
  @IsOptional() @IsNumber({ allowNaN: false, allowInfinity: false }) @Min(0) @Max(1) top_p?: number | null;
  @IsOptional() @IsInt() @Min(0) top_k?: number | null;
  @IsOptional() @IsNumber({ allowNaN: false, allowInfinity: false }) @Min(0) @Max(1) min_p?: number | null;
  @IsOptional() @IsSeed() seed?: number | null;
  @IsOptional() @IsStop() stop?: string | string[] | null;
  @IsOptional() @IsNumber({ allowNaN: false, allowInfinity: false }) @Min(-2) @Max(2) presence_penalty?: number | null;
  @IsOptional() @IsNumber({ allowNaN: false, allowInfinity: false }) @Min(-2) @Max(2) frequency_penalty?: number | null;
  /** llama.cpp's repeat penalty (1 = off). */
  @IsOptional() @IsNumber({ allowNaN: false, allowInfinity: false }) @Min(0) @Max(10) repetition_penalty?: number | null;
  @IsOptional() @IsInt() @Min(1, { message: 'n must be 1: Baton generates one choice per request' }) @Max(1, { message: 'n must be 1: Baton generates one choice per request' }) n?: number | null;
  /** An end-user id for logs (accepted and otherwise ignored, as OpenAI allows). */
  @IsOptional() @IsString() @MaxLength(256) user?: string | null;
}

export class ChatCompletionRequestDto extends SamplingRequestDto {
  @IsArray({ message: 'messages must be an array of {role, content} objects' })
  @ArrayMinSize(1, { message: 'messages must not be empty' })
  @ArrayMaxSize(4096)
  @ValidateNested({ each: true })
  @Type(() => ChatMessageDto)
  messages!: ChatMessageDto[];
  /** OpenAI's newer name for max_tokens. */
  @IsOptional() @IsInt({ message: 'max_completion_tokens must be an integer' }) @Min(1, { message: 'max_completion_tokens must be at least 1' }) max_completion_tokens?: number | null;
}

export class CompletionRequestDto extends SamplingRequestDto {
  @IsString({ message: 'prompt must be a string' }) prompt!: string;
}

/** Body of POST /v1/plans/preview: a model (served id, local name or path) and an optional requirement. */
export class PlanPreviewHttpRequestDto {
  /** A served model id or a name from GET /v1/models; or give modelPath. */
  @IsOptional() @IsString() @MinLength(1) @MaxLength(256) model?: string;
  @IsOptional() @IsString() @MinLength(1) @MaxLength(4096) modelPath?: string;
  /** Default: the model's context length from its GGUF header (at most 4096 if it has none). */
  @IsOptional() @IsInt() @Min(1) @Max(16 * 1024 * 1024) contextTokens?: number;
  @IsOptional() @IsInt() @Min(1) @Max(65536) sequences?: number;
  @IsOptional() @IsIn(KV_DTYPES) kvDType?: KvDType;
  @IsOptional() @IsIn(OBJECTIVES) objective?: Objective;
  @IsOptional() @IsArray() @ArrayMaxSize(1024) @Matches(ID_PATTERN, { each: true }) pinnedNodes?: string[];
}

// ---- responses ---------------------------------------------------------------------------------

export type OpenAIFinishReason = 'stop' | 'length';

export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  system_fingerprint: string;
  choices: {
    index: number;
    message: { role: 'assistant'; content: string; refusal: null };
    logprobs: null;
    finish_reason: OpenAIFinishReason;
  }[];
  usage: CompletionUsage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  system_fingerprint: string;
  choices: {
    index: number;
    delta: { role?: 'assistant'; content?: string; refusal?: null };
    logprobs: null;
    finish_reason: OpenAIFinishReason | null;
  }[];
  /** Present (null, then the totals on a last chunk with no choices) when stream_options.include_usage is set. */
  usage?: CompletionUsage | null;
}

export interface TextCompletion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  system_fingerprint: string;
  choices: { index: number; text: string; logprobs: null; finish_reason: OpenAIFinishReason | null }[];
  usage?: CompletionUsage | null;
}

/** OpenAI's error body. */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** A GGUF file found on this machine (under $BATON_HOME/models or in Ollama's store). */
export interface LocalModelFile {
  /** File name without .gguf, or Ollama's model:tag. */
  name: string;
  path: string;
  source: 'baton' | 'ollama';
  sizeBytes: number;
  modifiedMs: number;
  /** From the GGUF header; null when the header could not be read (see error). */
  arch: string | null;
  fileType: string | null;
  contextLength: number | null;
  /** Why the header could not be read. */
  error?: string;
}

export interface ModelEntry {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  baton: {
    /** ready: planned and serving; not_ready: planned but not serving yet (see reason); available: a file that could be planned. */
    status: 'ready' | 'not_ready' | 'available';
    reason?: string;
    path: string;
    contextLength: number | null;
    planVersion?: number;
    source?: LocalModelFile['source'];
    sizeBytes?: number;
    arch?: string | null;
    fileType?: string | null;
  };
}

export interface ModelList {
  object: 'list';
  data: ModelEntry[];
}

/** GET /v1/cluster */
export interface ClusterView {
  nodes: NodeRecord[];
  links: LinkMeasurement[];
  plans: Plan[];
  unplaced: { modelId: string; modelPath: string; reason: string }[];
  /** Per-node KV-cache use from the KV-cache manager (absent when it does not answer). */
  kvCache?: KvUsageReport;
}

/** POST /v1/plans/preview */
export interface PlanPreviewHttpResponse {
  modelPath: string;
  placement: Placement;
}
