// Typed GGUF metadata values: what the writer takes and the reader returns, plus small
// constructors (u32(5), str('llama'), arr('string', [...])) and typed getters.
import { BatonError, ErrorCode } from '@baton/contracts';

export type GgufNumberType = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';
export type GgufBigIntType = 'uint64' | 'int64';
export type GgufScalarType = GgufNumberType | GgufBigIntType | 'bool' | 'string';

export type GgufScalarValue =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigIntType; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string };

export type GgufArrayValue =
  | { type: 'array'; itemType: GgufNumberType; value: number[] }
  | { type: 'array'; itemType: GgufBigIntType; value: bigint[] }
  | { type: 'array'; itemType: 'bool'; value: boolean[] }
  | { type: 'array'; itemType: 'string'; value: string[] };

export type GgufValue = GgufScalarValue | GgufArrayValue;
export type GgufMetadata = Map<string, GgufValue>;

/** A file that is not valid GGUF, or not what the caller needs; the message says which and where. */
export class GgufError extends BatonError {
  constructor(message: string, details?: unknown) {
    super(ErrorCode.VALIDATION, message, details);
    this.name = 'GgufError';
  }
}

export const u8 = (value: number): GgufValue => ({ type: 'uint8', value });
export const i8 = (value: number): GgufValue => ({ type: 'int8', value });
export const u16 = (value: number): GgufValue => ({ type: 'uint16', value });
export const i16 = (value: number): GgufValue => ({ type: 'int16', value });
export const u32 = (value: number): GgufValue => ({ type: 'uint32', value });
export const i32 = (value: number): GgufValue => ({ type: 'int32', value });
export const f32 = (value: number): GgufValue => ({ type: 'float32', value });
export const f64 = (value: number): GgufValue => ({ type: 'float64', value });
export const u64 = (value: bigint | number): GgufValue => ({ type: 'uint64', value: BigInt(value) });
export const i64 = (value: bigint | number): GgufValue => ({ type: 'int64', value: BigInt(value) });
export const bool = (value: boolean): GgufValue => ({ type: 'bool', value });
export const str = (value: string): GgufValue => ({ type: 'string', value });
export function arr(itemType: GgufNumberType, value: number[]): GgufValue;
export function arr(itemType: GgufBigIntType, value: bigint[]): GgufValue;
export function arr(itemType: 'bool', value: boolean[]): GgufValue;
export function arr(itemType: 'string', value: string[]): GgufValue;
export function arr(itemType: GgufScalarType, value: unknown[]): GgufValue {
  return { type: 'array', itemType, value } as GgufValue;
}

/** A numeric metadata value as a JS number (64-bit integers must be within 2^53). */
export function metaNumber(metadata: GgufMetadata, key: string): number | undefined {
  const entry = metadata.get(key);
  if (entry === undefined) return undefined;
  if (entry.type === 'uint64' || entry.type === 'int64') {
    const n = Number(entry.value);
    if (!Number.isSafeInteger(n)) throw new GgufError(`metadata ${key} = ${entry.value} is too large for this reader`);
    return n;
  }
  if (entry.type === 'bool' || entry.type === 'string' || entry.type === 'array') {
    throw new GgufError(`metadata ${key} should be a number but is a ${entry.type === 'array' ? `array of ${entry.itemType}` : entry.type}`);
  }
  return entry.value as number;
}

export function metaString(metadata: GgufMetadata, key: string): string | undefined {
  const entry = metadata.get(key);
  if (entry === undefined) return undefined;
  if (entry.type !== 'string') throw new GgufError(`metadata ${key} should be a string but is a ${entry.type}`);
  return entry.value;
}

/** A number, or for a per-layer array the array of numbers. */
export function metaNumberOrArray(metadata: GgufMetadata, key: string): number | number[] | undefined {
  const entry = metadata.get(key);
  if (entry?.type === 'array') {
    if (entry.itemType === 'string' || entry.itemType === 'bool') throw new GgufError(`metadata ${key} should hold numbers but holds ${entry.itemType}s`);
    return (entry.value as (number | bigint)[]).map(Number);
  }
  return metaNumber(metadata, key);
}

export function metaArrayLength(metadata: GgufMetadata, key: string): number | undefined {
  const entry = metadata.get(key);
  return entry?.type === 'array' ? entry.value.length : undefined;
}
