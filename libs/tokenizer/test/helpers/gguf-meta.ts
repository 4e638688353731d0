// A small GGUF metadata reader and writer for tests (header + key/values only, no tensors).
// The library itself takes metadata as a plain object; tests need to read real files and
// write small vocab-only models that llama.cpp can load.
import { readFileSync, writeFileSync } from 'node:fs';

const enum T { U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STR = 8, ARR = 9, U64 = 10, I64 = 11, F64 = 12 }

export type GgufMeta = Record<string, unknown>;

export function readGgufMetadata(path: string): GgufMeta {
  const buf = readFileSync(path);
  let o = 0;
  const u32 = () => { const v = buf.readUInt32LE(o); o += 4; return v; };
  const u64 = () => { const v = buf.readBigUInt64LE(o); o += 8; return Number(v); };
  const str = () => { const n = u64(); const s = buf.toString('utf8', o, o + n); o += n; return s; };
  const scalar = (t: number): unknown => {
    switch (t) {
      case T.U8: return buf.readUInt8(o++);
      case T.I8: return buf.readInt8(o++);
      case T.U16: { const v = buf.readUInt16LE(o); o += 2; return v; }
      case T.I16: { const v = buf.readInt16LE(o); o += 2; return v; }
      case T.U32: return u32();
      case T.I32: { const v = buf.readInt32LE(o); o += 4; return v; }
      case T.F32: { const v = buf.readFloatLE(o); o += 4; return v; }
      case T.BOOL: return buf.readUInt8(o++) !== 0;
      case T.STR: return str();
      case T.U64: return u64();
      case T.I64: { const v = Number(buf.readBigInt64LE(o)); o += 8; return v; }
      case T.F64: { const v = buf.readDoubleLE(o); o += 8; return v; }
      default: throw new Error(`unknown GGUF type ${t}`);
    }
  };
  if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error(`${path}: not a GGUF file`);
  o = 4;
  u32(); // version
  u64(); // tensor count
  const nKv = u64();
  const meta: GgufMeta = {};
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const t = u32();
    if (t === T.ARR) {
      const at = u32();
      const n = u64();
      const arr = new Array<unknown>(n);
      for (let j = 0; j < n; j++) arr[j] = scalar(at);
      meta[key] = arr;
    } else {
      meta[key] = scalar(t);
    }
  }
  return meta;
}

/** A typed metadata value for the writer. */
export type GgufValue =
  | { type: 'str'; value: string }
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'str[]'; value: string[] }
  | { type: 'i32[]'; value: number[] }
  | { type: 'f32[]'; value: number[] };

/** Writes a GGUF v3 file with the given key/values and no tensors. */
export function writeGgufMetadata(path: string, kv: Record<string, GgufValue>): void {
  const parts: Buffer[] = [];
  const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); parts.push(b); };
  const u64 = (v: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); parts.push(b); };
  const str = (s: string) => { const b = Buffer.from(s, 'utf8'); u64(b.length); parts.push(b); };
  const i32 = (v: number) => { const b = Buffer.alloc(4); b.writeInt32LE(v); parts.push(b); };
  const f32 = (v: number) => { const b = Buffer.alloc(4); b.writeFloatLE(v); parts.push(b); };
  parts.push(Buffer.from('GGUF', 'latin1'));
  u32(3);
  u64(0);
  u64(Object.keys(kv).length);
  for (const [key, v] of Object.entries(kv)) {
    str(key);
    switch (v.type) {
      case 'str': u32(T.STR); str(v.value); break;
      case 'u32': u32(T.U32); u32(v.value); break;
      case 'i32': u32(T.I32); i32(v.value); break;
      case 'f32': u32(T.F32); f32(v.value); break;
      case 'bool': u32(T.BOOL); parts.push(Buffer.from([v.value ? 1 : 0])); break;
      case 'str[]': u32(T.ARR); u32(T.STR); u64(v.value.length); v.value.forEach(str); break;
      case 'i32[]': u32(T.ARR); u32(T.I32); u64(v.value.length); v.value.forEach(i32); break;
      case 'f32[]': u32(T.ARR); u32(T.F32); u64(v.value.length); v.value.forEach(f32); break;
    }
  }
  writeFileSync(path, Buffer.concat(parts));
}
