#!/usr/bin/env node
// Writes the demo model `npm run setup` promises: a RANDOM-WEIGHT Llama-shaped GGUF (dim 1024 ×
// 16 layers, Q8_0, ~190 MB) at $BATON_HOME/models/baton-demo.gguf, served as "baton-demo". It
// produces well-formed but meaningless text: it exists so `baton up` works straight away. Kept if
// it already exists (same seed → same bytes).
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { batonHome } from '@baton/control-plane';
import { writeRandomModel } from '@baton/gguf';

const dir = join(batonHome(), 'models');
const out = join(dir, 'baton-demo.gguf');
if (existsSync(out) && !process.argv.includes('--force')) {
  console.log(`demo model already at ${out}`);
} else {
  mkdirSync(dir, { recursive: true });
  let lastPct = -1;
  const result = await writeRandomModel(
    { out, arch: 'llama', dim: 1024, layers: 16, heads: 16, kvHeads: 4, ffn: 2816, type: 'q8_0', context: 4096, seed: 1, name: 'baton-demo' },
    (p) => {
      const pct = Math.floor((100 * p.bytesWritten) / p.totalBytes);
      if (pct >= lastPct + 10) {
        lastPct = pct;
        process.stdout.write(`  demo model: ${pct}%\n`);
      }
    },
  );
  console.log(`wrote the demo model (random weights) to ${result.path}`);
}
