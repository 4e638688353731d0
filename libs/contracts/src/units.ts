// Human byte sizes ("16GB", "512 MiB", 1234) for flags and config files.
const UNITS: Record<string, number> = {
  b: 1,
  k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
};

/** Parses a byte size. Decimal units (GB = 10^9) and binary units (GiB = 2^30). Throws on anything else. */
export function parseByteSize(input: string | number): number {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input < 0) throw new RangeError(`invalid byte size ${input}: must be a non-negative number`);
    return Math.floor(input);
  }
  const match = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$/.exec(input);
  const unit = match ? UNITS[(match[2] ?? '').toLowerCase() || 'b'] : undefined;
  if (!match || unit === undefined) {
    throw new RangeError(`invalid byte size ${JSON.stringify(input)}: write a number with an optional unit, like 16GB, 512MiB or 1048576`);
  }
  return Math.floor(Number(match[1]) * unit);
}

/** Formats bytes for people: 1.5 GB, 312 MB, 4.0 KB (decimal units, as macOS shows them). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const sign = bytes < 0 ? '-' : '';
  let value = Math.abs(bytes);
  for (const unit of ['B', 'KB', 'MB', 'GB', 'TB']) {
    if (value < 1000 || unit === 'TB') {
      return `${sign}${unit === 'B' ? value.toFixed(0) : value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${unit}`;
    }
    value /= 1000;
  }
  return `${bytes} B`;
}
