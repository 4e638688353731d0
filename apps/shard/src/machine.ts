// What this machine has: memory, CPU features, GGUF files present. Read-only probes of the OS.
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { arch, cpus, freemem, networkInterfaces, totalmem } from 'node:os';
import { basename, join } from 'node:path';
import type { LocalModelDto } from '@baton/contracts';

export interface MemoryProbe {
  totalBytes: number;
  availableBytes: number;
}

/** Total and available memory; on Linux "available" is MemAvailable (page cache counts as free). */
export function probeMemory(): MemoryProbe {
  const totalBytes = totalmem();
  let availableBytes = freemem();
  try {
    const match = /^MemAvailable:\s+(\d+)\s+kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (match) availableBytes = Number(match[1]) * 1024;
  } catch {
    // not Linux
  }
  return { totalBytes, availableBytes: Math.min(availableBytes, totalBytes) };
}

const INTERESTING_FEATURES = ['avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx_vnni', 'sse4_2', 'neon', 'asimd', 'asimddp', 'dotprod', 'i8mm', 'bf16'];

export function probeCpu(): { model: string; threads: number; arch: string; features: string[] } {
  const info = cpus();
  const features = new Set<string>();
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const flags = /^(?:flags|Features)\s*:\s*(.*)$/m.exec(text)?.[1]?.split(/\s+/) ?? [];
    for (const f of flags) if (INTERESTING_FEATURES.includes(f)) features.add(f);
  } catch {
    // not Linux
  }
  if (arch() === 'arm64') features.add('neon');
  return { model: info[0]?.model?.trim() || 'unknown', threads: Math.max(1, info.length), arch: arch(), features: [...features].sort() };
}

/** GGUF files directly under `dir` (not recursive), largest first. */
export function listLocalModels(dir: string): LocalModelDto[] {
  if (!existsSync(dir)) return [];
  const models: LocalModelDto[] = [];
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.gguf')) continue;
    const path = join(dir, name);
    try {
      const stat = statSync(path);
      if (stat.isFile()) models.push({ name: basename(name, '.gguf'), path, sizeBytes: stat.size });
    } catch {
      // vanished
    }
  }
  return models.sort((a, b) => b.sizeBytes - a.sizeBytes).slice(0, 256);
}

/** Memory left for Baton unless the user sets --memory-budget: 75% of physical memory. */
export function defaultMemoryBudget(totalBytes: number): number {
  return Math.floor(totalBytes * 0.75);
}

/** Rounds available memory so small fluctuations don't announce an update every second. */
export function roundAvailable(bytes: number): number {
  const step = 64 * 1024 * 1024;
  return Math.floor(bytes / step) * step;
}

/** The address other machines most likely reach this one at: the first non-internal IPv4 address. */
export function defaultAdvertiseHost(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) if (address.family === 'IPv4' && !address.internal) return address.address;
  }
  return '127.0.0.1';
}
