// DTO classes for every RPC request, keyed by pattern: the server side validates each request
// against its class before a handler runs.
import { IsBoolean, IsOptional, Matches } from 'class-validator';
import { ID_PATTERN } from './ids.js';
import type { DtoClass } from './validate.js';
import type { RpcPattern, ListNodesRequest, HintPattern } from './patterns.js';

export class ListNodesRequestDto implements ListNodesRequest {
  @IsOptional() @IsBoolean() includeMismatched?: boolean;
}

export class EmptyRequestDto {}

export const RPC_REQUEST_DTOS: { [P in RpcPattern]: DtoClass<object> } = {
  'discovery.nodes.list': ListNodesRequestDto,
  'discovery.ping': EmptyRequestDto,
};

export class NodeChangedHintDto {
  @Matches(ID_PATTERN) nodeId!: string;
  @IsBoolean() goodbye!: boolean;
}

export const HINT_DTOS: { [P in HintPattern]: DtoClass<object> } = {
  'node.changed': NodeChangedHintDto,
};
