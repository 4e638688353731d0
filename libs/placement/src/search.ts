// The search over layouts. For up to EXACT_SEARCH_MAX_NODES nodes it is exact: a dynamic program
// over (set of nodes used, last node, layers placed so far), run once per choice of first node
// (the last → first hop closes the ring), gives the best layout for every subset of nodes at
// once — every order and every contiguous split is covered. Two measures:
//   'sum' — Σ stage ms + Σ hop ms (one sequence's time per token; the latency objective);
//   'max' — the slowest stage or link transfer (what bounds throughput), ties broken by 'sum'.
// Beyond that many nodes, see candidatePools and fixedOrderSearch.
import { TOKEN_ID_BYTES, hopMs, hopTransferMs, stageMemory, stageMs } from './costs.js';
import type { Prepared } from './input.js';
import type { Layout } from './layout.js';

export const EXACT_SEARCH_MAX_NODES = 8;

export type Measure = 'sum' | 'max';

export interface Found {
  layout: Layout;
  primary: number;
  secondary: number;
}

const EPSILON = 1e-9;

function better(p: number, s: number, bestP: number, bestS: number): boolean {
  const tolerance = EPSILON * Math.max(1, Math.abs(bestP));
  if (p < bestP - tolerance) return true;
  if (p > bestP + tolerance) return false;
  return s < bestS - EPSILON * Math.max(1, Math.abs(bestS));
}

/** Per-node tables for a pool: what fits where, and the link times between pool members. */
interface Tables {
  k: number;
  layers: number;
  rate: number[];
  /** maxEndMiddle[w][b]: largest e ≤ layers − 1 with [b, e) fitting w as a middle stage (b when none). */
  maxEndMiddle: Int32Array[];
  /** Largest e ≤ layers − 1 with [0, e) fitting as the first stage (0 when none). */
  maxEndFirst: number[];
  /** fitsLast[w][b]: [b, layers) fits w as the last stage (not also the first). */
  fitsLast: Uint8Array[];
  fitsWhole: boolean[];
  hop: Float64Array[];
  hopTransfer: Float64Array[];
  close: Float64Array[];
  closeTransfer: Float64Array[];
}

function buildTables(prep: Prepared, pool: number[]): Tables {
  const { cost } = prep;
  const L = cost.layers;
  const k = pool.length;
  const fitsAs = (w: number, start: number, end: number, first: boolean, last: boolean) =>
    stageMemory(cost, start, end, first, last).totalBytes <= prep.nodes[pool[w]!]!.memoryBytes;
  const maxEndMiddle: Int32Array[] = [];
  const maxEndFirst: number[] = [];
  const fitsLast: Uint8Array[] = [];
  const fitsWhole: boolean[] = [];
  for (let w = 0; w < k; w++) {
    const middle = new Int32Array(L + 1);
    // Memory grows with e, so the ends that fit from b form a prefix; two pointers keep it linear.
    let e = 1;
    for (let b = 1; b < L; b++) {
      if (e < b) e = b;
      while (e + 1 <= L - 1 && fitsAs(w, b, e + 1, false, false)) e++;
      middle[b] = e;
    }
    maxEndMiddle.push(middle);
    let first = 0;
    while (first + 1 <= L - 1 && fitsAs(w, 0, first + 1, true, false)) first++;
    maxEndFirst.push(first);
    const last = new Uint8Array(L + 1);
    for (let b = 1; b < L; b++) last[b] = fitsAs(w, b, L, false, true) ? 1 : 0;
    fitsLast.push(last);
    fitsWhole.push(fitsAs(w, 0, L, true, true));
  }
  const square = (f: (a: number, b: number) => number) =>
    pool.map((_, v) => Float64Array.from(pool, (__, w) => (v === w ? 0 : f(v, w))));
  const linkOf = (v: number, w: number) => prep.link(pool[v]!, pool[w]!);
  return {
    k,
    layers: L,
    rate: pool.map((index) => prep.nodes[index]!.computeBytesPerSec),
    maxEndMiddle,
    maxEndFirst,
    fitsLast,
    fitsWhole,
    hop: square((v, w) => hopMs(cost.activationBytesPerToken, linkOf(v, w).rttMs, linkOf(v, w).bandwidthBytesPerSec)),
    hopTransfer: square((v, w) => hopTransferMs(cost.activationBytesPerToken, linkOf(v, w).bandwidthBytesPerSec)),
    close: square((v, w) => hopMs(TOKEN_ID_BYTES, linkOf(v, w).rttMs, linkOf(v, w).bandwidthBytesPerSec)),
    closeTransfer: square((v, w) => hopTransferMs(TOKEN_ID_BYTES, linkOf(v, w).bandwidthBytesPerSec)),
  };
}

/**
 * Exact search over a pool of at most EXACT_SEARCH_MAX_NODES nodes (indices into prep.nodes).
 * Returns the best layout for every subset of the pool that can hold the model, keyed by the
 * subset's bit mask over pool positions.
 */
export function exactSearch(prep: Prepared, pool: number[], measure: Measure): Map<number, Found> {
  if (pool.length > EXACT_SEARCH_MAX_NODES) throw new RangeError(`exact search takes at most ${EXACT_SEARCH_MAX_NODES} nodes, got ${pool.length}`);
  const { cost } = prep;
  const t = buildTables(prep, pool);
  const { k } = t;
  const L = t.layers;
  const width = L + 1;
  const states = (1 << k) * k * width;
  const primary = new Float64Array(states);
  const secondary = new Float64Array(states);
  const parent = new Int32Array(states);
  const best = new Map<number, Found>();
  const middleMs = (w: number, b: number, e: number) => stageMs(cost, b, e, false, t.rate[w]!);
  const lastMs = (w: number, b: number) => stageMs(cost, b, L, true, t.rate[w]!);
  const index = (mask: number, v: number, b: number) => (mask * k + v) * width + b;

  const offer = (mask: number, p: number, s: number, build: () => Layout) => {
    const current = best.get(mask);
    if (!current || better(p, s, current.primary, current.secondary)) best.set(mask, { layout: build(), primary: p, secondary: s });
  };
  // A state (mask, v, b) is "layers [0, b) placed, the last stage on v ends at b"; its parent is
  // the state the stage on v started from (-1 for the first stage, which starts at 0).
  const walk = (state: number, lastNode: number): Layout => {
    const nodes: number[] = [];
    const ends: number[] = [];
    for (let at = state; at >= 0; at = parent[at]!) {
      nodes.push(Math.floor(at / width) % k);
      ends.push(at % width);
    }
    nodes.reverse();
    ends.reverse();
    return { order: [...nodes, lastNode].map((v) => pool[v]!), bounds: [0, ...ends, L] };
  };

  for (let f = 0; f < k; f++) {
    primary.fill(Infinity);
    const fBit = 1 << f;
    if (t.fitsWhole[f]) {
      const ms = lastMs(f, 0);
      offer(fBit, ms, ms, () => ({ order: [pool[f]!], bounds: [0, L] }));
    }
    for (let e = 1; e <= t.maxEndFirst[f]!; e++) {
      const at = index(fBit, f, e);
      const ms = middleMs(f, 0, e);
      primary[at] = ms;
      secondary[at] = ms;
      parent[at] = -1;
    }
    for (let mask = fBit; mask < 1 << k; mask++) {
      if (!(mask & fBit)) continue;
      for (let v = 0; v < k; v++) {
        if (!(mask & (1 << v))) continue;
        const base = index(mask, v, 0);
        for (let b = 1; b < L; b++) {
          const p = primary[base + b]!;
          if (p === Infinity) continue;
          const s = secondary[base + b]!;
          for (let w = 0; w < k; w++) {
            if (mask & (1 << w)) continue;
            const next = mask | (1 << w);
            const hop = t.hop[v]![w]!;
            const transfer = t.hopTransfer[v]![w]!;
            const maxEnd = t.maxEndMiddle[w]![b]!;
            const nextBase = index(next, w, 0);
            for (let e = b + 1; e <= maxEnd; e++) {
              const ms = middleMs(w, b, e);
              const np = measure === 'sum' ? p + hop + ms : Math.max(p, transfer, ms);
              const ns = s + hop + ms;
              const at = nextBase + e;
              if (primary[at] === Infinity || better(np, ns, primary[at]!, secondary[at]!)) {
                primary[at] = np;
                secondary[at] = ns;
                parent[at] = base + b;
              }
            }
            if (t.fitsLast[w]![b]) {
              const ms = lastMs(w, b);
              const close = t.close[w]![f]!;
              const np = measure === 'sum' ? p + hop + ms + close : Math.max(p, transfer, ms, t.closeTransfer[w]![f]!);
              const ns = s + hop + ms + close;
              offer(next, np, ns, () => walk(base + b, w));
            }
          }
        }
      }
    }
  }
  return best;
}

/**
 * Best split of the layers over nodes in a fixed ring order, each used (≥ 1 layer): exact for
 * that order, O(nodes × layers²). Used beyond EXACT_SEARCH_MAX_NODES.
 */
export function fixedOrderSearch(prep: Prepared, order: number[], measure: Measure): Found | undefined {
  const { cost } = prep;
  const L = cost.layers;
  const k = order.length;
  if (k > L) return undefined;
  const t = buildTables(prep, order);
  // value[i][b]: best with stages 0..i placed on layers [0, b).
  const value: Float64Array[] = [];
  const sums: Float64Array[] = [];
  const from: Int32Array[] = [];
  for (let i = 0; i < k; i++) {
    value.push(new Float64Array(L + 1).fill(Infinity));
    sums.push(new Float64Array(L + 1));
    from.push(new Int32Array(L + 1).fill(-1));
  }
  if (k === 1) {
    if (!t.fitsWhole[0]) return undefined;
    const ms = stageMs(cost, 0, L, true, t.rate[0]!);
    return { layout: { order: [...order], bounds: [0, L] }, primary: ms, secondary: ms };
  }
  for (let e = 1; e <= t.maxEndFirst[0]!; e++) {
    value[0]![e] = sums[0]![e] = stageMs(cost, 0, e, false, t.rate[0]!);
  }
  let bestP = Infinity;
  let bestS = Infinity;
  let bestB = -1;
  for (let i = 1; i < k; i++) {
    const hop = t.hop[i - 1]![i]!;
    const transfer = t.hopTransfer[i - 1]![i]!;
    for (let b = 1; b < L; b++) {
      const p = value[i - 1]![b]!;
      if (p === Infinity) continue;
      const s = sums[i - 1]![b]!;
      if (i === k - 1) {
        if (!t.fitsLast[i]![b]) continue;
        const ms = stageMs(cost, b, L, true, t.rate[i]!);
        const close = t.close[i]![0]!;
        const np = measure === 'sum' ? p + hop + ms + close : Math.max(p, transfer, ms, t.closeTransfer[i]![0]!);
        const ns = s + hop + ms + close;
        if (better(np, ns, bestP, bestS)) { bestP = np; bestS = ns; bestB = b; }
        continue;
      }
      for (let e = b + 1; e <= t.maxEndMiddle[i]![b]!; e++) {
        const ms = stageMs(cost, b, e, false, t.rate[i]!);
        const np = measure === 'sum' ? p + hop + ms : Math.max(p, transfer, ms);
        const ns = s + hop + ms;
        if (value[i]![e] === Infinity || better(np, ns, value[i]![e]!, sums[i]![e]!)) {
          value[i]![e] = np;
          sums[i]![e] = ns;
          from[i]![e] = b;
        }
      }
    }
  }
  if (bestB < 0) return undefined;
  const bounds = [L, bestB];
  let b = bestB;
  for (let i = k - 2; i >= 1; i--) {
    b = from[i]![b]!;
    bounds.push(b);
  }
  bounds.push(0);
  bounds.reverse();
  return { layout: { order: [...order], bounds }, primary: bestP, secondary: bestS };
}
