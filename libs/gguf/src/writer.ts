// A streaming GGUF v3 writer: metadata and tensor infos are laid out first (so every tensor's
// offset is known up front), then tensor data is streamed to the file handle in chunks, with
// alignment padding between tensors. Nothing but the header is ever held in memory whole.
import { open, type FileHandle } from 'node:fs/promises';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, GGML_MAX_DIMS, GgufValueType, tensorBytes, ggmlTypeName } from './types.js';
import { GgufError, type GgufScalarType, type GgufValue } from './values.js';

const SCALAR_CODES: Record<GgufScalarType, GgufValueType> = {
  uint8: GgufValueType.UINT8,
  int8: GgufValueType.INT8,
  uint16: GgufValueType.UINT16,
  int16: GgufValueType.INT16,
  uint32: GgufValueType.UINT32,
  int32: GgufValueType.INT32,
  float32: GgufValueType.FLOAT32,
  bool: GgufValueType.BOOL,
  string: GgufValueType.STRING,
  uint64: GgufValueType.UINT64,
  int64: GgufValueType.INT64,
  float64: GgufValueType.FLOAT64,
};

export interface PlannedTensor {
  name: string;
  /** ne0 first (the contiguous dimension), as ggml orders them. */
  dims: number[];
  type: number;
  /** Offset from the start of the data section. */
  offset: number;
  bytes: number;
}

/** Growable little-endian byte sink for the header. */
class ByteSink {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u8(v: number) { this.reserve(1); this.buf.writeUInt8(v, this.length); this.length += 1; }
  i8(v: number) { this.reserve(1); this.buf.writeInt8(v, this.length); this.length += 1; }
  u16(v: number) { this.reserve(2); this.buf.writeUInt16LE(v, this.length); this.length += 2; }
  i16(v: number) { this.reserve(2); this.buf.writeInt16LE(v, this.length); this.length += 2; }
  u32(v: number) { this.reserve(4); this.buf.writeUInt32LE(v, this.length); this.length += 4; }
  i32(v: number) { this.reserve(4); this.buf.writeInt32LE(v, this.length); this.length += 4; }
  f32(v: number) { this.reserve(4); this.buf.writeFloatLE(v, this.length); this.length += 4; }
  f64(v: number) { this.reserve(8); this.buf.writeDoubleLE(v, this.length); this.length += 8; }
  u64(v: bigint | number) { this.reserve(8); this.buf.writeBigUInt64LE(BigInt(v), this.length); this.length += 8; }
  i64(v: bigint) { this.reserve(8); this.buf.writeBigInt64LE(v, this.length); this.length += 8; }
  str(s: string) {
    const n = Buffer.byteLength(s, 'utf8');
    this.u64(n);
    this.reserve(n);
    this.buf.write(s, this.length, 'utf8');
    this.length += n;
  }
  zeros(n: number) { this.reserve(n); this.buf.fill(0, this.length, this.length + n); this.length += n; }
  bytes(): Buffer { return this.buf.subarray(0, this.length); }
}

function writeScalar(sink: ByteSink, type: GgufScalarType, value: unknown, key: string): void {
  const num = value as number;
  const checkInt = (min: number, max: number) => {
    if (!Number.isInteger(num) || num < min || num > max) throw new GgufError(`metadata ${key}: ${String(value)} is not a valid ${type}`);
  };
  switch (type) {
    case 'uint8': checkInt(0, 0xff); sink.u8(num); break;
    case 'int8': checkInt(-0x80, 0x7f); sink.i8(num); break;
    case 'uint16': checkInt(0, 0xffff); sink.u16(num); break;
    case 'int16': checkInt(-0x8000, 0x7fff); sink.i16(num); break;
    case 'uint32': checkInt(0, 0xffffffff); sink.u32(num); break;
    case 'int32': checkInt(-0x80000000, 0x7fffffff); sink.i32(num); break;
    case 'float32': sink.f32(num); break;
    case 'float64': sink.f64(num); break;
    case 'bool': sink.u8(value ? 1 : 0); break;
    case 'string': sink.str(value as string); break;
    case 'uint64': {
      const v = BigInt(value as bigint);
      if (v < 0n || v > 0xffffffffffffffffn) throw new GgufError(`metadata ${key}: ${v} is not a valid uint64`);
      sink.u64(v);
      break;
    }
    case 'int64': {
      const v = BigInt(value as bigint);
      if (v < -(1n << 63n) || v >= 1n << 63n) throw new GgufError(`metadata ${key}: ${v} is not a valid int64`);
      sink.i64(v);
      break;
    }
  }
}

export interface GgufWriterOptions {
  /** Data alignment; written as general.alignment when not 32. */
  alignment?: number;
}

export class GgufWriter {
  readonly alignment: number;
  private readonly metadata = new Map<string, GgufValue>();
  private readonly tensors: PlannedTensor[] = [];
  private dataBytes = 0;
  private handle: FileHandle | undefined;
  private headerBytes = 0;
  private nextTensor = 0;
  private writtenOfTensor = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private position = 0;

  constructor(options: GgufWriterOptions = {}) {
    this.alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT;
    if (!Number.isInteger(this.alignment) || this.alignment <= 0 || (this.alignment & (this.alignment - 1)) !== 0) {
      throw new GgufError(`alignment must be a power of two, got ${this.alignment}`);
    }
    if (this.alignment !== GGUF_DEFAULT_ALIGNMENT) this.metadata.set('general.alignment', { type: 'uint32', value: this.alignment });
  }

  /** Sets a metadata key (insertion order is file order). */
  set(key: string, value: GgufValue): this {
    if (this.handle) throw new GgufError('metadata must be set before open()');
    if (key === 'general.alignment' && (value.type !== 'uint32' || value.value !== this.alignment)) {
      throw new GgufError('set general.alignment through the writer\'s alignment option');
    }
    this.metadata.set(key, value);
    return this;
  }

  /** Plans a tensor; its data must later be streamed in the same order as the tensors were added. */
  addTensor(name: string, dims: number[], type: number): PlannedTensor {
    if (this.handle) throw new GgufError('tensors must be added before open()');
    if (this.tensors.some((t) => t.name === name)) throw new GgufError(`tensor ${name} added twice`);
    if (dims.length === 0 || dims.length > GGML_MAX_DIMS || dims.some((d) => !Number.isSafeInteger(d) || d <= 0)) {
      throw new GgufError(`tensor ${name}: dims ${JSON.stringify(dims)} must be 1..${GGML_MAX_DIMS} positive integers`);
    }
    let bytes: number;
    try {
      bytes = tensorBytes(type, dims);
    } catch (error) {
      throw new GgufError(`tensor ${name} (${ggmlTypeName(type)}): ${(error as Error).message}`);
    }
    const offset = alignUp(this.dataBytes, this.alignment);
    const planned = { name, dims: [...dims], type, offset, bytes };
    this.tensors.push(planned);
    this.dataBytes = offset + bytes;
    return planned;
  }

  get plannedTensors(): readonly PlannedTensor[] {
    return this.tensors;
  }

  /** Size the finished file will have (valid after all tensors are added). */
  fileBytes(): number {
    return alignUp(this.serializeHeader().length, this.alignment) + this.dataBytes;
  }

  private serializeHeader(): Buffer {
    const sink = new ByteSink();
    sink.u32(GGUF_MAGIC);
    sink.u32(GGUF_VERSION);
    sink.u64(this.tensors.length);
    sink.u64(this.metadata.size);
    for (const [key, value] of this.metadata) {
      sink.str(key);
      if (value.type === 'array') {
        sink.u32(GgufValueType.ARRAY);
        sink.u32(SCALAR_CODES[value.itemType]);
        sink.u64(value.value.length);
        for (const item of value.value) writeScalar(sink, value.itemType, item, key);
      } else {
        sink.u32(SCALAR_CODES[value.type]);
        writeScalar(sink, value.type, value.value, key);
      }
    }
    for (const t of this.tensors) {
      sink.str(t.name);
      sink.u32(t.dims.length);
      for (const d of t.dims) sink.u64(d);
      sink.u32(t.type);
      sink.u64(t.offset);
    }
    return sink.bytes();
  }

  /** Creates the file and writes header, metadata, tensor infos and the padding before the data. */
  async open(path: string): Promise<void> {
    if (this.handle) throw new GgufError('writer already open');
    const header = this.serializeHeader();
    this.headerBytes = alignUp(header.length, this.alignment);
    this.handle = await open(path, 'w');
    await this.push(Buffer.from(header));
    await this.push(Buffer.alloc(this.headerBytes - header.length));
  }

  /** The tensor whose data is expected next, or undefined when all data has been written. */
  get currentTensor(): PlannedTensor | undefined {
    return this.tensors[this.nextTensor];
  }

  /**
   * Appends bytes of the current tensor's data (in order; a chunk may not cross into the next
   * tensor). The chunk is copied, so the caller may reuse its buffer at once.
   */
  async writeTensorData(chunk: Uint8Array): Promise<void> {
    const tensor = this.tensors[this.nextTensor];
    if (!this.handle || !tensor) throw new GgufError(tensor ? 'open() the writer first' : 'all tensor data has already been written');
    if (this.writtenOfTensor === 0) {
      const padding = this.headerBytes + tensor.offset - this.position;
      if (padding > 0) await this.push(Buffer.alloc(padding));
    }
    if (this.writtenOfTensor + chunk.length > tensor.bytes) {
      throw new GgufError(`tensor ${tensor.name}: ${this.writtenOfTensor + chunk.length} bytes written but it holds ${tensor.bytes}`);
    }
    await this.push(Buffer.from(chunk));
    this.writtenOfTensor += chunk.length;
    if (this.writtenOfTensor === tensor.bytes) {
      this.nextTensor++;
      this.writtenOfTensor = 0;
    }
  }

  /** Bytes handed to the file so far (header included). */
  get bytesWritten(): number {
    return this.position;
  }

  private async push(buf: Buffer): Promise<void> {
    if (buf.length === 0) return;
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    this.position += buf.length;
    if (this.pendingBytes >= 4 << 20) await this.flush();
  }

  private async flush(): Promise<void> {
    if (!this.handle || this.pendingBytes === 0) return;
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(data, done, data.length - done);
      done += bytesWritten;
    }
  }

  /** Flushes and closes; fails if any tensor's data is missing. */
  async close(): Promise<void> {
    if (!this.handle) return;
    try {
      const missing = this.tensors[this.nextTensor];
      if (missing) throw new GgufError(`tensor ${missing.name} is missing data (${this.writtenOfTensor} of ${missing.bytes} bytes written)`);
      await this.flush();
    } finally {
      await this.handle.close();
      this.handle = undefined;
    }
  }

  /** Closes without checking (for error paths). */
  async abort(): Promise<void> {
    if (!this.handle) return;
    const handle = this.handle;
    this.handle = undefined;
    this.pending = [];
    await handle.close();
  }
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}
