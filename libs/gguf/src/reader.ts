// GGUF header reader: magic, version, metadata, tensor infos and alignment, read from the start of
// a file without touching tensor data. Every count, length and offset is checked against the file
// size before it is used, so truncated or hostile files give a GgufError naming what is wrong.
import { open } from 'node:fs/promises';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGML_MAX_DIMS, GGML_TYPE_LAYOUT, GgufValueType, ggmlTypeName } from './types.js';
import { GgufError, type GgufMetadata, type GgufScalarType, type GgufValue } from './values.js';

export interface GgufTensorInfo {
  name: string;
  /** ne0 first (the contiguous dimension). */
  dims: number[];
  type: number;
  typeName: string;
  /** Offset from the start of the data section. */
  offset: number;
  /** Absolute offset of the tensor's first byte in the file. */
  fileOffset: number;
  bytes: number;
  elements: number;
}

export interface GgufFile {
  path: string;
  version: number;
  fileBytes: number;
  alignment: number;
  metadata: GgufMetadata;
  tensors: GgufTensorInfo[];
  /** Absolute offset of the data section (header size rounded up to the alignment). */
  dataOffset: number;
}

const TYPE_NAMES: Record<number, GgufScalarType> = {
  [GgufValueType.UINT8]: 'uint8',
  [GgufValueType.INT8]: 'int8',
  [GgufValueType.UINT16]: 'uint16',
  [GgufValueType.INT16]: 'int16',
  [GgufValueType.UINT32]: 'uint32',
  [GgufValueType.INT32]: 'int32',
  [GgufValueType.FLOAT32]: 'float32',
  [GgufValueType.BOOL]: 'bool',
  [GgufValueType.STRING]: 'string',
  [GgufValueType.UINT64]: 'uint64',
  [GgufValueType.INT64]: 'int64',
  [GgufValueType.FLOAT64]: 'float64',
};
/** Smallest encoded size of one value of each type (strings: the 8-byte length). */
const MIN_SIZE: Record<GgufScalarType, number> = {
  uint8: 1, int8: 1, bool: 1, uint16: 2, int16: 2, uint32: 4, int32: 4, float32: 4,
  uint64: 8, int64: 8, float64: 8, string: 8,
};

/** Thrown when the parse needs bytes past the part of the file read so far. */
class NeedMore extends Error {}

/**
 * The most header (metadata + tensor infos) this reader accepts. Real headers are a few MB to
 * tens of MB (a 256K-token vocabulary with merges); a larger one is corrupt or hostile.
 */
export const MAX_GGUF_HEADER_BYTES = 512 * 1024 * 1024;

class Cursor {
  pos = 0;
  /** Where the header must end: the file's end or MAX_GGUF_HEADER_BYTES, whichever is first. */
  readonly headerLimit: number;
  constructor(private readonly buf: Buffer, readonly fileBytes: number, private readonly path: string) {
    this.headerLimit = Math.min(fileBytes, MAX_GGUF_HEADER_BYTES);
  }

  private need(n: number, what: string): void {
    if (this.pos + n <= this.buf.length) return;
    if (this.pos + n > this.headerLimit && this.headerLimit < this.fileBytes) {
      throw new GgufError(`${this.path}: ${what} at byte ${this.pos} lies past the first ${MAX_GGUF_HEADER_BYTES} bytes; no real GGUF header is that large, so the file is corrupt`);
    }
    if (this.buf.length >= this.fileBytes) {
      throw new GgufError(`${this.path}: file is truncated: ${what} at byte ${this.pos} needs ${n} bytes but the file has ${this.fileBytes} bytes`);
    }
    throw new NeedMore();
  }
  /** Bytes the rest of the header can take after the cursor. */
  remaining(): number {
    return this.headerLimit - this.pos;
  }
  u8(what: string) { this.need(1, what); return this.buf.readUInt8(this.pos++); }
  i8(what: string) { this.need(1, what); return this.buf.readInt8(this.pos++); }
  u16(what: string) { this.need(2, what); const v = this.buf.readUInt16LE(this.pos); this.pos += 2; return v; }
  i16(what: string) { this.need(2, what); const v = this.buf.readInt16LE(this.pos); this.pos += 2; return v; }
  u32(what: string) { this.need(4, what); const v = this.buf.readUInt32LE(this.pos); this.pos += 4; return v; }
  i32(what: string) { this.need(4, what); const v = this.buf.readInt32LE(this.pos); this.pos += 4; return v; }
  f32(what: string) { this.need(4, what); const v = this.buf.readFloatLE(this.pos); this.pos += 4; return v; }
  f64(what: string) { this.need(8, what); const v = this.buf.readDoubleLE(this.pos); this.pos += 8; return v; }
  u64(what: string) { this.need(8, what); const v = this.buf.readBigUInt64LE(this.pos); this.pos += 8; return v; }
  i64(what: string) { this.need(8, what); const v = this.buf.readBigInt64LE(this.pos); this.pos += 8; return v; }
  /** A u64 that must fit a JS number and be at most `max`. */
  count(what: string, max: number): number {
    const at = this.pos;
    const v = this.u64(what);
    if (v > BigInt(max)) throw new GgufError(`${this.path}: ${what} at byte ${at} is ${v}, more than this file (${this.fileBytes} bytes) can hold: the file is truncated or corrupt`);
    return Number(v);
  }
  str(what: string): string {
    const n = this.count(`length of ${what}`, this.remaining() - 8);
    this.need(n, what);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
}

function readScalar(c: Cursor, type: GgufScalarType, what: string): number | bigint | boolean | string {
  switch (type) {
    case 'uint8': return c.u8(what);
    case 'int8': return c.i8(what);
    case 'uint16': return c.u16(what);
    case 'int16': return c.i16(what);
    case 'uint32': return c.u32(what);
    case 'int32': return c.i32(what);
    case 'float32': return c.f32(what);
    case 'float64': return c.f64(what);
    case 'uint64': return c.u64(what);
    case 'int64': return c.i64(what);
    case 'bool': {
      const at = c.pos;
      const b = c.u8(what);
      if (b > 1) throw new GgufError(`bad bool value ${b} for ${what} at byte ${at}`);
      return b === 1;
    }
    case 'string': return c.str(what);
  }
}

function valueType(c: Cursor, code: number, key: string): GgufScalarType | 'array' {
  if (code === GgufValueType.ARRAY) return 'array';
  const type = TYPE_NAMES[code];
  if (!type) throw new GgufError(`metadata ${key}: unknown value type ${code} at byte ${c.pos - 4}`);
  return type;
}

function parse(buf: Buffer, fileBytes: number, path: string): GgufFile {
  const c = new Cursor(buf, fileBytes, path);
  if (fileBytes < 24) throw new GgufError(`${path}: ${fileBytes} bytes is too small to be a GGUF file (a GGUF header alone is 24 bytes)`);
  const magic = c.u32('magic');
  if (magic !== GGUF_MAGIC) {
    throw new GgufError(`${path} is not a GGUF file (it starts with ${JSON.stringify(buf.subarray(0, 4).toString('latin1'))}, not "GGUF")`);
  }
  const version = c.u32('version');
  if (version === 0x02000000 || version === 0x03000000) {
    throw new GgufError(`${path} is a big-endian GGUF file; Baton reads little-endian GGUF (what llama.cpp writes on every common machine)`);
  }
  if (version !== 2 && version !== 3) {
    throw new GgufError(`${path}: GGUF version ${version} is not supported (this reader handles versions 2 and 3; re-convert the model with a current llama.cpp)`);
  }
  // A tensor info takes at least 8 (name) + 4 + 8 + 4 + 8 bytes; a key/value at least 8 + 4 + 1.
  const tensorCount = c.count('tensor count', Math.floor(c.remaining() / 32));
  const kvCount = c.count('metadata count', Math.floor(c.remaining() / 13));
  const metadata: GgufMetadata = new Map();
  for (let i = 0; i < kvCount; i++) {
    const key = c.str(`metadata key #${i}`);
    if (metadata.has(key)) throw new GgufError(`${path}: metadata key ${key} appears twice`);
    const type = valueType(c, c.u32(`type of ${key}`), key);
    let value: GgufValue;
    if (type === 'array') {
      const itemCode = c.u32(`item type of ${key}`);
      if (itemCode === GgufValueType.ARRAY) throw new GgufError(`${path}: metadata ${key} is an array of arrays, which GGUF readers do not support`);
      const itemType = valueType(c, itemCode, key) as GgufScalarType;
      const n = c.count(`length of ${key}`, Math.floor(c.remaining() / MIN_SIZE[itemType]));
      const items = new Array(n);
      for (let j = 0; j < n; j++) items[j] = readScalar(c, itemType, `${key}[${j}]`);
      value = { type: 'array', itemType, value: items } as GgufValue;
    } else {
      value = { type, value: readScalar(c, type, key) } as GgufValue;
    }
    metadata.set(key, value);
  }
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const alignEntry = metadata.get('general.alignment');
  if (alignEntry) {
    if (alignEntry.type !== 'uint32' || alignEntry.value === 0 || (alignEntry.value & (alignEntry.value - 1)) !== 0) {
      throw new GgufError(`${path}: general.alignment must be a uint32 power of two, got ${JSON.stringify(String(alignEntry.value))}`);
    }
    alignment = alignEntry.value;
  }
  const raw: { name: string; dims: number[]; type: number; offset: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = c.str(`name of tensor #${i}`);
    if (names.has(name)) throw new GgufError(`${path}: tensor ${name} appears twice`);
    names.add(name);
    const nDims = c.u32(`rank of tensor ${name}`);
    if (nDims < 1 || nDims > GGML_MAX_DIMS) throw new GgufError(`${path}: tensor ${name} has ${nDims} dimensions; GGUF allows 1 to ${GGML_MAX_DIMS}`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) {
      const v = c.u64(`dimension ${d} of tensor ${name}`);
      if (v === 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError(`${path}: tensor ${name} has an invalid dimension ${v}`);
      dims.push(Number(v));
    }
    const type = c.u32(`type of tensor ${name}`);
    if (!GGML_TYPE_LAYOUT[type]) throw new GgufError(`${path}: tensor ${name} has unknown ggml type ${type}`);
    const offset = c.count(`data offset of tensor ${name}`, fileBytes);
    raw.push({ name, dims, type, offset });
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const tensors: GgufTensorInfo[] = raw.map((t) => {
    const layout = GGML_TYPE_LAYOUT[t.type]!;
    let elements = 1;
    for (const d of t.dims) {
      elements *= d;
      if (!Number.isSafeInteger(elements) || elements > fileBytes * layout.blockSize) {
        throw new GgufError(`${path}: tensor ${t.name} shape ${JSON.stringify(t.dims)} is larger than the file could hold`);
      }
    }
    if (t.dims[0]! % layout.blockSize !== 0) {
      throw new GgufError(`${path}: tensor ${t.name} is ${layout.name} but its first dimension ${t.dims[0]} is not a multiple of the block size ${layout.blockSize}`);
    }
    if (t.offset % alignment !== 0) throw new GgufError(`${path}: tensor ${t.name} data offset ${t.offset} is not aligned to ${alignment}`);
    const bytes = (elements / layout.blockSize) * layout.blockBytes;
    const fileOffset = dataOffset + t.offset;
    if (fileOffset + bytes > fileBytes) {
      throw new GgufError(`${path}: tensor ${t.name} (${ggmlTypeName(t.type)} ${JSON.stringify(t.dims)}, ${bytes} bytes at byte ${fileOffset}) runs past the end of the file (${fileBytes} bytes): the file is truncated or corrupt`);
    }
    return { name: t.name, dims: t.dims, type: t.type, typeName: layout.name, offset: t.offset, fileOffset, bytes, elements };
  });
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    if (prev.offset + prev.bytes > sorted[i]!.offset) {
      throw new GgufError(`${path}: tensors ${prev.name} and ${sorted[i]!.name} overlap in the data section`);
    }
  }
  return { path, version, fileBytes, alignment, metadata, tensors, dataOffset };
}

/** Parses a GGUF header from bytes already in memory (the whole file). */
export function parseGguf(bytes: Uint8Array, path = '<buffer>'): GgufFile {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return parse(buf, buf.length, path);
}

/**
 * Reads a GGUF file's header (metadata and tensor infos), reading only as much of the file as
 * the header takes. Ollama blobs (GGUF files without an extension) work the same way.
 */
export async function readGguf(path: string): Promise<GgufFile> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new GgufError(code === 'ENOENT' ? `${path}: no such file` : `${path}: cannot open (${(error as Error).message})`);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new GgufError(`${path} is not a regular file`);
    const fileBytes = stat.size;
    let size = Math.min(fileBytes, 1 << 20);
    for (;;) {
      const buf = Buffer.alloc(size);
      let got = 0;
      while (got < size) {
        const { bytesRead } = await handle.read(buf, got, size - got, got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      try {
        return parse(buf.subarray(0, got), got < size ? got : fileBytes, path);
      } catch (error) {
        if (!(error instanceof NeedMore)) throw error;
        size = Math.min(fileBytes, MAX_GGUF_HEADER_BYTES, size * 4);
      }
    }
  } finally {
    await handle.close();
  }
}

/** Reads one tensor's raw bytes (its ggml blocks) from a file read with readGguf. */
export async function readTensorBytes(file: GgufFile, name: string): Promise<Buffer> {
  const tensor = file.tensors.find((t) => t.name === name);
  if (!tensor) throw new GgufError(`${file.path}: no tensor named ${name}`);
  const handle = await open(file.path, 'r');
  try {
    const buf = Buffer.alloc(tensor.bytes);
    let got = 0;
    while (got < tensor.bytes) {
      const { bytesRead } = await handle.read(buf, got, tensor.bytes - got, tensor.fileOffset + got);
      if (bytesRead === 0) throw new GgufError(`${file.path}: file ends inside tensor ${name} (it was truncated after being read)`);
      got += bytesRead;
    }
    return buf;
  } finally {
    await handle.close();
  }
}
