// GGUF and ggml constants: metadata value types, tensor types with their block layouts, and
// llama.cpp's file-type names. Numbers are the on-disk values (GGUF v3, ggml as of 2025).

/** Metadata value types as stored in a GGUF file. */
export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** ggml tensor types (the on-disk `type` of a tensor info). */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
}

/** Elements per block and bytes per block of each ggml type. */
export const GGML_TYPE_LAYOUT: Readonly<Record<number, { name: string; blockSize: number; blockBytes: number }>> = {
  [GgmlType.F32]: { name: 'F32', blockSize: 1, blockBytes: 4 },
  [GgmlType.F16]: { name: 'F16', blockSize: 1, blockBytes: 2 },
  [GgmlType.Q4_0]: { name: 'Q4_0', blockSize: 32, blockBytes: 18 },
  [GgmlType.Q4_1]: { name: 'Q4_1', blockSize: 32, blockBytes: 20 },
  [GgmlType.Q5_0]: { name: 'Q5_0', blockSize: 32, blockBytes: 22 },
  [GgmlType.Q5_1]: { name: 'Q5_1', blockSize: 32, blockBytes: 24 },
  [GgmlType.Q8_0]: { name: 'Q8_0', blockSize: 32, blockBytes: 34 },
  [GgmlType.Q8_1]: { name: 'Q8_1', blockSize: 32, blockBytes: 36 },
  [GgmlType.Q2_K]: { name: 'Q2_K', blockSize: 256, blockBytes: 84 },
  [GgmlType.Q3_K]: { name: 'Q3_K', blockSize: 256, blockBytes: 110 },
  [GgmlType.Q4_K]: { name: 'Q4_K', blockSize: 256, blockBytes: 144 },
  [GgmlType.Q5_K]: { name: 'Q5_K', blockSize: 256, blockBytes: 176 },
  [GgmlType.Q6_K]: { name: 'Q6_K', blockSize: 256, blockBytes: 210 },
  [GgmlType.Q8_K]: { name: 'Q8_K', blockSize: 256, blockBytes: 292 },
  [GgmlType.IQ2_XXS]: { name: 'IQ2_XXS', blockSize: 256, blockBytes: 66 },
  [GgmlType.IQ2_XS]: { name: 'IQ2_XS', blockSize: 256, blockBytes: 74 },
  [GgmlType.IQ3_XXS]: { name: 'IQ3_XXS', blockSize: 256, blockBytes: 98 },
  [GgmlType.IQ1_S]: { name: 'IQ1_S', blockSize: 256, blockBytes: 50 },
  [GgmlType.IQ4_NL]: { name: 'IQ4_NL', blockSize: 32, blockBytes: 18 },
  [GgmlType.IQ3_S]: { name: 'IQ3_S', blockSize: 256, blockBytes: 110 },
  [GgmlType.IQ2_S]: { name: 'IQ2_S', blockSize: 256, blockBytes: 82 },
  [GgmlType.IQ4_XS]: { name: 'IQ4_XS', blockSize: 256, blockBytes: 136 },
  [GgmlType.I8]: { name: 'I8', blockSize: 1, blockBytes: 1 },
  [GgmlType.I16]: { name: 'I16', blockSize: 1, blockBytes: 2 },
  [GgmlType.I32]: { name: 'I32', blockSize: 1, blockBytes: 4 },
  [GgmlType.I64]: { name: 'I64', blockSize: 1, blockBytes: 8 },
  [GgmlType.F64]: { name: 'F64', blockSize: 1, blockBytes: 8 },
  [GgmlType.IQ1_M]: { name: 'IQ1_M', blockSize: 256, blockBytes: 56 },
  [GgmlType.BF16]: { name: 'BF16', blockSize: 1, blockBytes: 2 },
  [GgmlType.TQ1_0]: { name: 'TQ1_0', blockSize: 256, blockBytes: 54 },
  [GgmlType.TQ2_0]: { name: 'TQ2_0', blockSize: 256, blockBytes: 66 },
  [GgmlType.MXFP4]: { name: 'MXFP4', blockSize: 32, blockBytes: 17 },
};

export function ggmlTypeName(type: number): string {
  return GGML_TYPE_LAYOUT[type]?.name ?? `UNKNOWN(${type})`;
}

/**
 * Bytes of a tensor of `type` with shape `dims` (ne0 first, the contiguous dimension).
 * Throws when ne0 is not a whole number of blocks or the type is unknown.
 */
export function tensorBytes(type: number, dims: readonly number[]): number {
  const layout = GGML_TYPE_LAYOUT[type];
  if (!layout) throw new RangeError(`unknown ggml tensor type ${type}`);
  const ne0 = dims[0] ?? 1;
  if (ne0 % layout.blockSize !== 0) {
    throw new RangeError(`a ${layout.name} tensor needs its first dimension to be a multiple of ${layout.blockSize}, got ${ne0}`);
  }
  let rows = 1;
  for (let i = 1; i < dims.length; i++) rows *= dims[i]!;
  return (ne0 / layout.blockSize) * layout.blockBytes * rows;
}

/** llama.cpp's `general.file_type` (enum llama_ftype) names. */
export const LLAMA_FILE_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'ALL_F32',
  1: 'MOSTLY_F16',
  2: 'MOSTLY_Q4_0',
  3: 'MOSTLY_Q4_1',
  7: 'MOSTLY_Q8_0',
  8: 'MOSTLY_Q5_0',
  9: 'MOSTLY_Q5_1',
  10: 'MOSTLY_Q2_K',
  11: 'MOSTLY_Q3_K_S',
  12: 'MOSTLY_Q3_K_M',
  13: 'MOSTLY_Q3_K_L',
  14: 'MOSTLY_Q4_K_S',
  15: 'MOSTLY_Q4_K_M',
  16: 'MOSTLY_Q5_K_S',
  17: 'MOSTLY_Q5_K_M',
  18: 'MOSTLY_Q6_K',
  19: 'MOSTLY_IQ2_XXS',
  20: 'MOSTLY_IQ2_XS',
  21: 'MOSTLY_Q2_K_S',
  22: 'MOSTLY_IQ3_XS',
  23: 'MOSTLY_IQ3_XXS',
  24: 'MOSTLY_IQ1_S',
  25: 'MOSTLY_IQ4_NL',
  26: 'MOSTLY_IQ3_S',
  27: 'MOSTLY_IQ3_M',
  28: 'MOSTLY_IQ2_S',
  29: 'MOSTLY_IQ2_M',
  30: 'MOSTLY_IQ4_XS',
  31: 'MOSTLY_IQ1_M',
  32: 'MOSTLY_BF16',
  36: 'MOSTLY_TQ1_0',
  37: 'MOSTLY_TQ2_0',
  38: 'MOSTLY_MXFP4_MOE',
};

export const LLAMA_FILE_TYPE = {
  ALL_F32: 0,
  MOSTLY_F16: 1,
  MOSTLY_Q4_0: 2,
  MOSTLY_Q8_0: 7,
  MOSTLY_Q4_K_M: 15,
} as const;

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml's maximum tensor rank. */
export const GGML_MAX_DIMS = 4;
