// The search over layouts. For up to EXACT_SEARCH_MAX_NODES nodes it is exact: a dynamic program
// over (set of nodes used, last node, layers placed so far), run once per choice of first node
// (the last → first hop closes the ring), gives the best layout for every subset of nodes at
// once — every order and every contiguous split is covered — for the least Σ stage ms + Σ hop ms
// (one sequence's time per token: the latency objective), optionally under a cap on every stage
// and link transfer (how throughputSearch finds the throughput optimum).
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
  if (bestP === Infinity) return p < Infinity;
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
  /** msPrefix[w][e]: ms for node w to stream layers [0, e) (weights + KV reads); a stage is a difference. */
  msPrefix: Float64Array[];
  /** ms for node w to stream the head (last stage only). */
  headMs: number[];
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
  const rate = pool.map((index) => prep.nodes[index]!.computeBytesPerSec);
  return {
    k,
    layers: L,
    rate,
    msPrefix: rate.map((r) => Float64Array.from({ length: L + 1 }, (_, e) => stageMs(cost, 0, e, false, r))),
    headMs: rate.map((r) => stageMs(cost, L, L, true, r)),
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
 * Exact search over a pool of at most EXACT_SEARCH_MAX_NODES nodes (indices into prep.nodes) for
 * the least ring time (Σ stage ms + Σ hop ms). Returns the best layout for every subset of the
 * pool that can hold the model, keyed by the subset's bit mask over pool positions. With a
 * threshold, only layouts whose every stage and link transfer takes at most that many ms count.
 *
 * State (mask, v, b): layers [0, b) placed on the nodes in mask, the last stage on v ending at b.
 * A middle stage on w over [b, e) costs P_w[e] − P_w[b] (P_w = node w's prefix of stage ms), so
 * for each (mask, w) the best predecessor of every end e is a minimum of g[b] − P_w[b] over a
 * window of starts b that slides right as e grows (memory and the threshold bound the stage
 * length): a monotone deque finds it in O(layers). Total O(2^k · k² · layers) per first node.
 */
export function exactSearch(prep: Prepared, pool: number[], threshold = Infinity): Map<number, Found> {
  if (pool.length > EXACT_SEARCH_MAX_NODES) throw new RangeError(`exact search takes at most ${EXACT_SEARCH_MAX_NODES} nodes, got ${pool.length}`);
  const t = buildTables(prep, pool);
  const { k } = t;
  const L = t.layers;
  const width = L + 1;
  const states = (1 << k) * k * width;
  const value = new Float64Array(states);
  const parent = new Int32Array(states);
  const best = new Map<number, Found>();
  const index = (mask: number, v: number, b: number) => (mask * k + v) * width + b;

  // lowestStart[w][e]: the smallest start b ≥ 1 of a middle stage [b, e) on w that fits memory
  // and the threshold (e when none does).
  const lowestStart: Int32Array[] = [];
  for (let w = 0; w < k; w++) {
    const prefix = t.msPrefix[w]!;
    const lowest = new Int32Array(width);
    let b = 1;
    for (let e = 2; e < L; e++) {
      while (b < e && (t.maxEndMiddle[w]![b]! < e || prefix[e]! - prefix[b]! > threshold)) b++;
      lowest[e] = b;
    }
    lowestStart.push(lowest);
  }

  const offer = (mask: number, total: number, build: () => Layout) => {
    const current = best.get(mask);
    if (!current || total < current.primary) best.set(mask, { layout: build(), primary: total, secondary: total });
  };
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

  const g = new Float64Array(width);
  const gFrom = new Int32Array(width);
  const deque = new Int32Array(width);
  for (let f = 0; f < k; f++) {
    value.fill(Infinity);
    const fBit = 1 << f;
    const prefixF = t.msPrefix[f]!;
    const wholeMs = prefixF[L]! + t.headMs[f]!;
    if (t.fitsWhole[f] && wholeMs <= threshold) offer(fBit, wholeMs, () => ({ order: [pool[f]!], bounds: [0, L] }));
    for (let e = 1; e <= t.maxEndFirst[f]! && prefixF[e]! <= threshold; e++) {
      value[index(fBit, f, e)] = prefixF[e]!;
      parent[index(fBit, f, e)] = -1;
    }
    for (let mask = fBit; mask < 1 << k; mask++) {
      if (!(mask & fBit)) continue;
      for (let w = 0; w < k; w++) {
        if (mask & (1 << w)) continue;
        // g[b]: best cost of reaching "b layers placed" in mask and hopping to w.
        let any = false;
        for (let b = 1; b < L; b++) {
          let bestValue = Infinity;
          let bestFrom = -1;
          for (let v = 0; v < k; v++) {
            if (!(mask & (1 << v)) || t.hopTransfer[v]![w]! > threshold) continue;
            const c = value[index(mask, v, b)]!;
            if (c === Infinity) continue;
            const through = c + t.hop[v]![w]!;
            if (through < bestValue) { bestValue = through; bestFrom = v; }
          }
          g[b] = bestValue;
          gFrom[b] = bestFrom;
          if (bestFrom >= 0) any = true;
        }
        if (!any) continue;
        const next = mask | (1 << w);
        const prefix = t.msPrefix[w]!;
        // w as the last stage, [b, L), closing the ring back to f.
        if (t.closeTransfer[w]![f]! <= threshold) {
          let bestTotal = Infinity;
          let bestB = -1;
          for (let b = 1; b < L; b++) {
            if (g[b] === Infinity || !t.fitsLast[w]![b]) continue;
            const ms = prefix[L]! - prefix[b]! + t.headMs[w]!;
            if (ms > threshold) continue;
            const total = g[b]! + ms + t.close[w]![f]!;
            if (total < bestTotal) { bestTotal = total; bestB = b; }
          }
          if (bestB >= 0) {
            const from = index(mask, gFrom[bestB]!, bestB);
            offer(next, bestTotal, () => walk(from, w));
          }
        }
        // w as a middle stage [b, e): sliding-window minimum of g[b] − P_w[b].
        let head = 0;
        let tail = 0;
        let pushed = 1;
        const nextBase = index(next, w, 0);
        for (let e = 2; e < L; e++) {
          for (; pushed <= e - 1; pushed++) {
            if (g[pushed] === Infinity) continue;
            const key = g[pushed]! - prefix[pushed]!;
            while (tail > head && g[deque[tail - 1]!]! - prefix[deque[tail - 1]!]! >= key) tail--;
            deque[tail++] = pushed;
          }
          const lowest = lowestStart[w]![e]!;
          while (tail > head && deque[head]! < lowest) head++;
          if (tail === head) continue;
          const b = deque[head]!;
          const candidate = g[b]! - prefix[b]! + prefix[e]!;
          if (candidate < value[nextBase + e]!) {
            value[nextBase + e] = candidate;
            parent[nextBase + e] = index(mask, gFrom[b]!, b);
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

/**
 * The exact throughput optimum over a pool: maximise min(sequences / ring, 1 / bottleneck), i.e.
 * minimise max(ring / sequences, bottleneck). With R(τ) the least ring time among layouts whose
 * bottleneck is ≤ τ (the 'sum' search with a threshold), the optimum is min over τ of
 * max(R(τ) / sequences, τ); R only changes at a stage or transfer time, and R(τ) / sequences
 * falls while τ rises, so a binary search over those times finds the crossing. Returns the
 * layouts on both sides of it (the caller keeps the better), or nothing when none fits.
 */
export function throughputSearch(prep: Prepared, pool: number[], onSubset?: (found: Found) => void): Found[] {
  const { cost } = prep;
  const L = cost.layers;
  const candidates = bottleneckCandidates(prep, pool);
  const sequences = prep.requirement.sequences;
  const cache = new Map<number, Found | undefined>();
  const leastRing = (i: number): Found | undefined => {
    if (!cache.has(i)) {
      let best: Found | undefined;
      for (const found of exactSearch(prep, pool, candidates[i]!).values()) {
        onSubset?.(found);
        if (!best || found.primary < best.primary) best = found;
      }
      cache.set(i, best);
    }
    return cache.get(i);
  };
  // Smallest i with R(τ_i) / sequences ≤ τ_i (R = ∞ when nothing fits under τ_i).
  let lo = 0;
  let hi = candidates.length - 1;
  if (!leastRing(hi)) return [];
  if (leastRing(hi)!.primary / sequences > candidates[hi]!) return [leastRing(hi)!];
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const found = leastRing(mid);
    if (found && found.primary / sequences <= candidates[mid]!) hi = mid;
    else lo = mid + 1;
  }
  const out = [leastRing(lo)!];
  if (lo > 0 && leastRing(lo - 1)) out.push(leastRing(lo - 1)!);
  return out;
}

/** Every time a stage or a link transfer could take in a layout over the pool, ascending. */
function bottleneckCandidates(prep: Prepared, pool: number[]): number[] {
  const L = prep.cost.layers;
  const t = buildTables(prep, pool);
  const times = new Set<number>();
  for (let w = 0; w < t.k; w++) {
    // The same arithmetic as the search uses, so every layout's own stage times are candidates.
    const prefix = t.msPrefix[w]!;
    for (let b = 0; b < L; b++) {
      for (let e = b + 1; e < L; e++) times.add(prefix[e]! - prefix[b]!);
      times.add(prefix[L]! - prefix[b]! + t.headMs[w]!);
    }
    for (let v = 0; v < t.k; v++) {
      if (v !== w) { times.add(t.hopTransfer[v]![w]!); times.add(t.closeTransfer[v]![w]!); }
    }
  }
  return [...times].sort((a, b) => a - b);
}

/**
 * Among layouts over exactly these nodes whose ring time is within a relative 1e-9 of ringMs,
 * the one with the smallest bottleneck (the latency objective's tie-break: equal nodes get equal
 * shares). Binary search over the bottleneck candidates, as in throughputSearch.
 */
export function balancedWithinRing(prep: Prepared, pool: number[], ringMs: number): Found | undefined {
  const candidates = bottleneckCandidates(prep, pool);
  const full = (1 << pool.length) - 1;
  const limit = ringMs * (1 + 1e-9);
  const at = (i: number) => {
    const found = exactSearch(prep, pool, candidates[i]!).get(full);
    return found && found.primary <= limit ? found : undefined;
  };
  let lo = 0;
  let hi = candidates.length - 1;
  let best = at(hi);
  if (!best) return undefined;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const found = at(mid);
    if (found) { best = found; hi = mid; } else lo = mid + 1;
  }
  return best;
}
