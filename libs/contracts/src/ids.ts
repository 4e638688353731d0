// Branded ids: plain strings at run time, distinct types at compile time, so a NodeId can
// never be passed where a ModelId is expected.
declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

export type NodeId = Brand<string, 'NodeId'>;
export type ModelId = Brand<string, 'ModelId'>;
export type PlanId = Brand<string, 'PlanId'>;
export type RequestId = Brand<string, 'RequestId'>;
export type SequenceId = Brand<number, 'SequenceId'>;

/** Ids are short, printable and safe inside a Redis key: letters, digits, `.`, `_`, `-`, `:`. */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

function checkId(kind: string, value: string): void {
  if (!ID_PATTERN.test(value)) {
    throw new TypeError(`invalid ${kind} ${JSON.stringify(value)}: use 1-128 characters of A-Z a-z 0-9 . _ : -`);
  }
}

export function nodeId(value: string): NodeId {
  checkId('node id', value);
  return value as NodeId;
}
export function modelId(value: string): ModelId {
  checkId('model id', value);
  return value as ModelId;
}
export function planId(value: string): PlanId {
  checkId('plan id', value);
  return value as PlanId;
}
export function requestId(value: string): RequestId {
  checkId('request id', value);
  return value as RequestId;
}
export function sequenceId(value: number): SequenceId {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new TypeError(`invalid sequence id ${value}: an integer in [0, 2^32)`);
  }
  return value as SequenceId;
}
