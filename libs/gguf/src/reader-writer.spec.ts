import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseGguf, readGguf } from './reader.js';
import { GgmlType } from './types.js';
import { arr, bool, f32, f64, GgufError, i16, i32, i64, i8, str, u16, u32, u64, u8, type GgufValue } from './values.js';
import { GgufWriter } from './writer.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-gguf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const EVERY_TYPE: [string, GgufValue][] = [
  ['t.u8', u8(255)],
  ['t.i8', i8(-128)],
  ['t.u16', u16(65535)],
  ['t.i16', i16(-32768)],
  ['t.u32', u32(4294967295)],
  ['t.i32', i32(-2147483648)],
  ['t.f32', f32(0.5)],
  ['t.f64', f64(Math.PI)],
  ['t.u64', u64(0xffffffffffffffffn)],
  ['t.i64', i64(-(1n << 63n))],
  ['t.bool.true', bool(true)],
  ['t.bool.false', bool(false)],
  ['t.str', str('héllo wörld ✓ <|im_start|>')],
  ['t.str.empty', str('')],
  ['t.arr.u8', arr('uint8', [0, 1, 255])],
  ['t.arr.i8', arr('int8', [-128, 0, 127])],
  ['t.arr.u16', arr('uint16', [0, 65535])],
  ['t.arr.i16', arr('int16', [-32768, 32767])],
  ['t.arr.u32', arr('uint32', [0, 4294967295])],
  ['t.arr.i32', arr('int32', [-1, 1, 3])],
  ['t.arr.f32', arr('float32', [1.5, -2.25, 0])],
  ['t.arr.f64', arr('float64', [1e-300, 1e300])],
  ['t.arr.u64', arr('uint64', [0n, 1n << 60n])],
  ['t.arr.i64', arr('int64', [-5n, 5n])],
  ['t.arr.bool', arr('bool', [true, false, true])],
  ['t.arr.str', arr('string', ['a', '', 'Ġthe', '日本'])],
  ['t.arr.empty', arr('string', [])],
];

async function writeSmall(path: string, alignment?: number): Promise<void> {
  const w = new GgufWriter({ alignment });
  for (const [k, v] of EVERY_TYPE) w.set(k, v);
  w.addTensor('a', [3], GgmlType.F32);
  w.addTensor('b', [32, 2], GgmlType.Q8_0);
  await w.open(path);
  await w.writeTensorData(new Uint8Array(new Float32Array([1, 2, 3]).buffer));
  await w.writeTensorData(new Uint8Array(34).fill(7));
  await w.writeTensorData(new Uint8Array(34).fill(9));
  await w.close();
}

describe('GGUF writer and reader', () => {
  it('round-trips every metadata value type', async () => {
    const path = join(dir, 'every.gguf');
    await writeSmall(path);
    const file = await readGguf(path);
    expect(file.version).toBe(3);
    expect([...file.metadata.entries()]).toEqual(EVERY_TYPE);
  });

  it('writes tensor infos, aligned offsets and data', async () => {
    for (const alignment of [undefined, 64]) {
      const path = join(dir, `tensors-${alignment}.gguf`);
      await writeSmall(path, alignment);
      const file = await readGguf(path);
      const align = alignment ?? 32;
      expect(file.alignment).toBe(align);
      expect(file.metadata.has('general.alignment')).toBe(alignment !== undefined);
      expect(file.dataOffset % align).toBe(0);
      const [a, b] = file.tensors;
      expect(a).toMatchObject({ name: 'a', dims: [3], type: GgmlType.F32, offset: 0, bytes: 12 });
      expect(b).toMatchObject({ name: 'b', dims: [32, 2], type: GgmlType.Q8_0, typeName: 'Q8_0', offset: align, bytes: 68 });
      const bytes = readFileSync(path);
      expect(new Float32Array(bytes.buffer.slice(bytes.byteOffset + a!.fileOffset, bytes.byteOffset + a!.fileOffset + 12))).toEqual(new Float32Array([1, 2, 3]));
      expect(bytes[b!.fileOffset]).toBe(7);
      expect(bytes[b!.fileOffset + 34]).toBe(9);
      expect(file.fileBytes).toBe(b!.fileOffset + 68);
    }
  });

  it('refuses bad writes: value out of range, wrong data size, missing data', async () => {
    expect(() => new GgufWriter().set('x', u8(256)).addTensor('t', [1], 0)).not.toThrow();
    const w = new GgufWriter().set('x', u8(256));
    await expect(w.open(join(dir, 'bad.gguf'))).rejects.toThrow(/not a valid uint8/);
    expect(() => new GgufWriter().addTensor('t', [33], GgmlType.Q8_0)).toThrow(/multiple of 32/);
    const w2 = new GgufWriter();
    w2.addTensor('t', [4], GgmlType.F32);
    await w2.open(join(dir, 'short.gguf'));
    await expect(w2.writeTensorData(new Uint8Array(20))).rejects.toThrow(/holds 16/);
    await expect(w2.close()).rejects.toThrow(/missing data/);
  });
});

describe('GGUF reader on bad files', () => {
  const valid = async () => {
    const path = join(dir, 'valid.gguf');
    await writeSmall(path);
    return readFileSync(path);
  };

  it('gives a GgufError for every truncation of a valid file', async () => {
    const bytes = await valid();
    for (let n = 0; n < bytes.length; n += n < 400 ? 1 : 7) {
      const path = join(dir, 'trunc.gguf');
      writeFileSync(path, bytes.subarray(0, n));
      const error = await readGguf(path).then(() => undefined, (e: unknown) => e);
      expect(error, `truncated at ${n}`).toBeInstanceOf(GgufError);
    }
  });

  it('names the problem for hostile headers', async () => {
    const header = (tensors: bigint, kvs: bigint) => {
      const b = Buffer.alloc(24);
      b.writeUInt32LE(0x46554747, 0);
      b.writeUInt32LE(3, 4);
      b.writeBigUInt64LE(tensors, 8);
      b.writeBigUInt64LE(kvs, 16);
      return b;
    };
    const key = (s: string) => {
      const b = Buffer.alloc(8 + s.length);
      b.writeBigUInt64LE(BigInt(s.length));
      b.write(s, 8);
      return b;
    };
    const u32b = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
    const u64b = (v: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return b; };
    const pad = Buffer.alloc(64);
    const cases: [string, Buffer, RegExp][] = [
      ['not gguf', Buffer.from('PK\u0003\u0004 this is a zip file, not a model...'), /not a GGUF file/],
      ['tiny', Buffer.from('GGUF'), /too small/],
      ['big-endian', Buffer.concat([Buffer.from('GGUF'), Buffer.from([0, 0, 0, 3]), Buffer.alloc(32)]), /big-endian/],
      ['version 1', Buffer.concat([Buffer.from('GGUF'), u32b(1), Buffer.alloc(32)]), /version 1 is not supported/],
      ['huge tensor count', Buffer.concat([header(1n << 62n, 0n), pad]), /tensor count .* more than this file/],
      ['huge kv count', Buffer.concat([header(0n, 1n << 40n), pad]), /metadata count .* more than this file/],
      ['huge string', Buffer.concat([header(0n, 1n), u64b(1n << 50n), pad]), /length of metadata key/],
      ['huge array', Buffer.concat([header(0n, 1n), key('k'), u32b(9), u32b(8), u64b(1n << 40n), pad]), /length of k/],
      ['unknown value type', Buffer.concat([header(0n, 1n), key('k'), u32b(99), pad]), /unknown value type 99/],
      ['nested array', Buffer.concat([header(0n, 1n), key('k'), u32b(9), u32b(9), u64b(1n), pad]), /array of arrays/],
      ['bad bool', Buffer.concat([header(0n, 1n), key('k'), u32b(7), Buffer.from([5]), pad]), /bad bool value 5/],
      ['duplicate key', Buffer.concat([header(0n, 2n), key('k'), u32b(0), Buffer.from([1]), key('k'), u32b(0), Buffer.from([1]), pad]), /appears twice/],
      ['rank 5', Buffer.concat([header(1n, 0n), key('t'), u32b(5), pad]), /5 dimensions/],
      ['zero dim', Buffer.concat([header(1n, 0n), key('t'), u32b(1), u64b(0n), pad]), /invalid dimension 0/],
      ['unknown type', Buffer.concat([header(1n, 0n), key('t'), u32b(1), u64b(4n), u32b(77), u64b(0n), pad]), /unknown ggml type 77/],
      ['data past end', Buffer.concat([header(1n, 0n), key('t'), u32b(2), u64b(4096n), u64b(4096n), u32b(0), u64b(0n), pad]), /larger than the file|runs past the end/],
      ['misaligned', Buffer.concat([header(1n, 0n), key('t'), u32b(1), u64b(1n), u32b(0), u64b(4n), pad]), /not aligned/],
      ['block size', Buffer.concat([header(1n, 0n), key('t'), u32b(1), u64b(16n), u32b(8), u64b(0n), pad]), /not a multiple of the block size 32/],
      ['bad alignment', Buffer.concat([header(0n, 1n), key('general.alignment'), u32b(4), u32b(24), pad]), /power of two/],
    ];
    for (const [name, bytes, message] of cases) {
      expect(() => parseGguf(bytes, name), name).toThrow(GgufError);
      expect(() => parseGguf(bytes, name), name).toThrow(message);
    }
  });

  it('survives random byte corruption of the header (GgufError or a valid parse, nothing else)', async () => {
    const bytes = await valid();
    let seed = 12345;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
    const headerEnd = parseGguf(bytes).dataOffset;
    let refused = 0;
    for (let i = 0; i < 2000; i++) {
      const copy = Buffer.from(bytes);
      const flips = 1 + Math.floor(rand() * 4);
      for (let f = 0; f < flips; f++) copy[Math.floor(rand() * headerEnd)] = Math.floor(rand() * 256);
      try {
        parseGguf(copy);
      } catch (error) {
        expect(error).toBeInstanceOf(GgufError);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(100);
  });

  it('refuses a header claiming more than MAX_GGUF_HEADER_BYTES in a large (sparse) file', async () => {
    const path = join(dir, 'sparse.gguf');
    const head = Buffer.alloc(40);
    head.writeUInt32LE(0x46554747, 0);
    head.writeUInt32LE(3, 4);
    head.writeBigUInt64LE(0n, 8);
    head.writeBigUInt64LE(1n, 16);
    head.writeBigUInt64LE(600n << 20n, 24); // a 600 MiB metadata key
    writeFileSync(path, head);
    truncateSync(path, 1 << 30);
    await expect(readGguf(path)).rejects.toThrow(/length of metadata key #0 .* more than this file/);
  });

  it('reports a missing file clearly', async () => {
    await expect(readGguf(join(dir, 'nope.gguf'))).rejects.toThrow(/no such file/);
  });
});
