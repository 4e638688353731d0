// The data-plane frame header: fixed 128 bytes, little-endian, versioned. Every frame on an
// activation connection (TCP or RDMA) is this header followed by `payloadLength` bytes.
// The C++ transport and engine read the same layout (native/transport/cpp/frame.h); a change
// here is a protocol change: bump FRAME_VERSION.
//
//  offset size field
//   0     4   magic            "BTN1" (0x314E5442 little-endian)
//   4     2   version          FRAME_VERSION
//   6     1   kind             FrameKind
//   7     1   flags            FrameFlags bit set
//   8     4   sequenceId       u32, the pipeline slot of one request
//  12     4   firstPosition    u32, position of the first token in this frame: [first, first + n)
//  16     4   tokenCount       u32, n
//  20     1   dtype            PayloadDType
//  21     3   reserved         zero
//  24     4   width            u32, elements per token (n_embd for HIDDEN, 1 for token ids)
//  28     4   payloadLength    u32, bytes after the header
//  32    16   requestId        16 bytes (a UUID's bytes)
//  48    16   traceId          W3C trace id
//  64     8   spanId           W3C parent span id
//  72     1   traceFlags       W3C trace flags
//  73     3   reserved         zero
//  76     4   temperature      f32 (TOKENS frames; 0 = greedy)
//  80     4   topP             f32
//  84     4   topK             u32 (0 = off)
//  88     4   minP             f32
//  92     4   repetitionPenalty f32 (1 = off)
//  96     4   presencePenalty  f32
// 100     4   frequencyPenalty f32
// 104     8   seed             u64
// 112     4   maxTokens        u32
// 116     4   planVersion      u32
// 120     8   reserved         zero

export const FRAME_MAGIC = 0x314e5442;
export const FRAME_VERSION = 1;
export const FRAME_HEADER_BYTES = 128;

export enum FrameKind {
  TOKENS = 1,
  HIDDEN = 2,
  TOKEN_OUT = 3,
  CONTROL = 4,
  ERROR = 5,
  PROBE = 6,
}

export enum PayloadDType {
  NONE = 0,
  F32 = 1,
  F16 = 2,
  I32 = 3,
  U8 = 4,
}

export const PAYLOAD_DTYPE_BYTES: Record<PayloadDType, number> = {
  [PayloadDType.NONE]: 0,
  [PayloadDType.F32]: 4,
  [PayloadDType.F16]: 2,
  [PayloadDType.I32]: 4,
  [PayloadDType.U8]: 1,
};

export const FrameFlags = {
  /** The last chunk of a prompt: the last stage samples after it. */
  LAST_CHUNK: 1 << 0,
  /** Return logits instead of a sampled token. */
  WANT_LOGITS: 1 << 1,
  /** CONTROL: stop this sequence and free its KV. */
  STOP: 1 << 2,
  /** PROBE: this frame is a reply. */
  REPLY: 1 << 3,
} as const;

export interface SamplingFields {
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  repetitionPenalty: number;
  presencePenalty: number;
  frequencyPenalty: number;
  seed: bigint;
  maxTokens: number;
}

export interface FrameHeader extends SamplingFields {
  version: number;
  kind: FrameKind;
  flags: number;
  sequenceId: number;
  firstPosition: number;
  tokenCount: number;
  dtype: PayloadDType;
  width: number;
  payloadLength: number;
  /** 16 bytes. */
  requestId: Uint8Array;
  /** 16 bytes; all zero when not traced. */
  traceId: Uint8Array;
  /** 8 bytes. */
  spanId: Uint8Array;
  traceFlags: number;
  planVersion: number;
}

export const DEFAULT_SAMPLING: SamplingFields = {
  temperature: 0,
  topP: 1,
  topK: 0,
  minP: 0,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  seed: 0n,
  maxTokens: 0,
};

/** A header with every field at its neutral value, for building frames with spread syntax. */
export function emptyFrameHeader(kind: FrameKind): FrameHeader {
  return {
    ...DEFAULT_SAMPLING,
    version: FRAME_VERSION,
    kind,
    flags: 0,
    sequenceId: 0,
    firstPosition: 0,
    tokenCount: 0,
    dtype: PayloadDType.NONE,
    width: 0,
    payloadLength: 0,
    requestId: new Uint8Array(16),
    traceId: new Uint8Array(16),
    spanId: new Uint8Array(8),
    traceFlags: 0,
    planVersion: 0,
  };
}

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

function u32(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new FrameError(`frame ${name} ${value} is not a u32`);
  return value;
}

function bytesOf(name: string, value: Uint8Array, length: number): Uint8Array {
  if (value.length !== length) throw new FrameError(`frame ${name} must be ${length} bytes, got ${value.length}`);
  return value;
}

/** Writes `header` into `target` at `offset` (128 bytes). Returns `target`. */
export function encodeFrameHeader(header: FrameHeader, target: Uint8Array = new Uint8Array(FRAME_HEADER_BYTES), offset = 0): Uint8Array {
  if (target.length - offset < FRAME_HEADER_BYTES) throw new FrameError('frame header target is shorter than 128 bytes');
  if (!(header.kind in FrameKind)) throw new FrameError(`unknown frame kind ${header.kind}`);
  if (!(header.dtype in PayloadDType)) throw new FrameError(`unknown payload dtype ${header.dtype}`);
  if (header.seed < 0n || header.seed > 0xffffffffffffffffn) throw new FrameError('frame seed is not a u64');
  const view = new DataView(target.buffer, target.byteOffset + offset, FRAME_HEADER_BYTES);
  target.fill(0, offset, offset + FRAME_HEADER_BYTES);
  view.setUint32(0, FRAME_MAGIC, true);
  view.setUint16(4, header.version, true);
  view.setUint8(6, header.kind);
  view.setUint8(7, header.flags & 0xff);
  view.setUint32(8, u32('sequenceId', header.sequenceId), true);
  view.setUint32(12, u32('firstPosition', header.firstPosition), true);
  view.setUint32(16, u32('tokenCount', header.tokenCount), true);
  view.setUint8(20, header.dtype);
  view.setUint32(24, u32('width', header.width), true);
  view.setUint32(28, u32('payloadLength', header.payloadLength), true);
  target.set(bytesOf('requestId', header.requestId, 16), offset + 32);
  target.set(bytesOf('traceId', header.traceId, 16), offset + 48);
  target.set(bytesOf('spanId', header.spanId, 8), offset + 64);
  view.setUint8(72, header.traceFlags & 0xff);
  view.setFloat32(76, header.temperature, true);
  view.setFloat32(80, header.topP, true);
  view.setUint32(84, u32('topK', header.topK), true);
  view.setFloat32(88, header.minP, true);
  view.setFloat32(92, header.repetitionPenalty, true);
  view.setFloat32(96, header.presencePenalty, true);
  view.setFloat32(100, header.frequencyPenalty, true);
  view.setBigUint64(104, header.seed, true);
  view.setUint32(112, u32('maxTokens', header.maxTokens), true);
  view.setUint32(116, u32('planVersion', header.planVersion), true);
  return target;
}

/**
 * Reads and checks a header. Throws FrameError naming the problem for a short buffer, a wrong
 * magic or version, an unknown kind or dtype, or a payload length that disagrees with
 * tokenCount × width × dtype size (for F32/F16/I32/U8 payloads).
 */
export function decodeFrameHeader(source: Uint8Array, offset = 0): FrameHeader {
  if (source.length - offset < FRAME_HEADER_BYTES) {
    throw new FrameError(`frame header truncated: ${source.length - offset} of ${FRAME_HEADER_BYTES} bytes`);
  }
  const view = new DataView(source.buffer, source.byteOffset + offset, FRAME_HEADER_BYTES);
  const magic = view.getUint32(0, true);
  if (magic !== FRAME_MAGIC) throw new FrameError(`bad frame magic 0x${magic.toString(16)}`);
  const version = view.getUint16(4, true);
  if (version !== FRAME_VERSION) throw new FrameError(`unsupported frame version ${version} (this build speaks ${FRAME_VERSION})`);
  const kind = view.getUint8(6);
  if (!(kind in FrameKind)) throw new FrameError(`unknown frame kind ${kind}`);
  const dtype = view.getUint8(20);
  if (!(dtype in PayloadDType)) throw new FrameError(`unknown payload dtype ${dtype}`);
  const header: FrameHeader = {
    version,
    kind,
    flags: view.getUint8(7),
    sequenceId: view.getUint32(8, true),
    firstPosition: view.getUint32(12, true),
    tokenCount: view.getUint32(16, true),
    dtype,
    width: view.getUint32(24, true),
    payloadLength: view.getUint32(28, true),
    requestId: source.slice(offset + 32, offset + 48),
    traceId: source.slice(offset + 48, offset + 64),
    spanId: source.slice(offset + 64, offset + 72),
    traceFlags: view.getUint8(72),
    temperature: view.getFloat32(76, true),
    topP: view.getFloat32(80, true),
    topK: view.getUint32(84, true),
    minP: view.getFloat32(88, true),
    repetitionPenalty: view.getFloat32(92, true),
    presencePenalty: view.getFloat32(96, true),
    frequencyPenalty: view.getFloat32(100, true),
    seed: view.getBigUint64(104, true),
    maxTokens: view.getUint32(112, true),
    planVersion: view.getUint32(116, true),
  };
  const elementBytes = PAYLOAD_DTYPE_BYTES[header.dtype];
  if (elementBytes > 0) {
    const expected = header.tokenCount * header.width * elementBytes;
    if (expected !== header.payloadLength) {
      throw new FrameError(`frame payload length ${header.payloadLength} does not match ${header.tokenCount} tokens × ${header.width} × ${elementBytes} bytes = ${expected}`);
    }
  }
  return header;
}

/** CONTROL frame operations (JSON payload `{"op": …}`); STOP is the STOP flag, not a payload. */
export type ControlOp = { op: 'subscribe' };

/** TOKEN_OUT payload: I32 × 2 = [token id, TokenFinish]. */
export enum TokenFinish {
  CONTINUE = 0,
  /** The token ends generation (end-of-generation token): it is not part of the output. */
  EOG = 1,
  /** The sequence reached max_tokens or the context limit after this token. */
  LENGTH = 2,
}
