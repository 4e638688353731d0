// Loading progress: reads the byte ranges of a stage's tensors once (through the page cache the
// engine's mmap then finds warm), reporting bytes done and an ETA as it goes.
import { open } from 'node:fs/promises';
import { readGguf } from '@baton/gguf';

export interface LoadProgress {
  bytesLoaded: number;
  totalBytes: number;
  etaMs: number | null;
}

/** Tensor names a stage of [start, end) maps. */
export function stageTensor(name: string, start: number, end: number, first: boolean, last: boolean): boolean {
  const layer = /^blk\.(\d+)\./.exec(name);
  if (layer) {
    const n = Number(layer[1]);
    return n >= start && n < end;
  }
  if (name.startsWith('token_embd.')) return first || last; // a tied head reads the embedding too
  if (name.startsWith('output') || name === 'rope_freqs.weight') return last || name === 'rope_freqs.weight';
  return false;
}

export async function warmStage(path: string, start: number, end: number, first: boolean, last: boolean, onProgress: (p: LoadProgress) => void): Promise<void> {
  const file = await readGguf(path);
  const ranges = file.tensors.filter((t) => stageTensor(t.name, start, end, first, last)).map((t) => [t.fileOffset, t.bytes] as const).sort((a, b) => a[0] - b[0]);
  const totalBytes = ranges.reduce((n, [, bytes]) => n + bytes, 0);
  const handle = await open(path, 'r');
  const chunk = Buffer.allocUnsafe(8 * 1024 * 1024);
  const started = Date.now();
  let done = 0;
  let lastReport = 0;
  try {
    for (const [offset, bytes] of ranges) {
      for (let at = 0; at < bytes; ) {
        const { bytesRead } = await handle.read(chunk, 0, Math.min(chunk.length, bytes - at), offset + at);
        if (bytesRead === 0) throw new Error(`${path} ends before tensor data at ${offset + at}`);
        at += bytesRead;
        done += bytesRead;
        const now = Date.now();
        if (now - lastReport > 250) {
          lastReport = now;
          const rate = done / Math.max(1, now - started);
          onProgress({ bytesLoaded: done, totalBytes, etaMs: rate > 0 ? Math.round((totalBytes - done) / rate) : null });
        }
      }
    }
  } finally {
    await handle.close();
  }
  onProgress({ bytesLoaded: totalBytes, totalBytes, etaMs: 0 });
}
