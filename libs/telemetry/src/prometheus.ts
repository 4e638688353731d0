// The Prometheus text exposition format (version 0.0.4), written by hand: counters, gauges and
// histograms with labels, and collectors that refresh gauges from live state just before a
// scrape. Pure bookkeeping: no timers, no I/O; a service serves render() at GET /metrics.
// https://prometheus.io/docs/instrumenting/exposition_formats/

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Prometheus's default buckets would lump every token of a fast pipeline into one: seconds, 1 ms to 30 s. */
export const LATENCY_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export type Labels = Readonly<Record<string, string | number>>;

export class MetricsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MetricsError';
  }
}

/** A sample value as the format spells it (+Inf, -Inf, NaN; integers without a decimal point). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** Label values escape backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text escapes backslash and line feed. */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function labelText(names: readonly string[], values: readonly string[], extra?: [string, string]): string {
  const parts = names.map((name, i) => `${name}="${escapeLabelValue(values[i]!)}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

abstract class Metric<Series> {
  protected readonly series = new Map<string, { values: string[]; data: Series }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    readonly type: 'counter' | 'gauge' | 'histogram',
  ) {
    if (!METRIC_NAME.test(name)) throw new MetricsError(`metric name "${name}" is not valid (letters, digits, _ and :, not starting with a digit)`);
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith('__')) throw new MetricsError(`label name "${label}" of ${name} is not valid`);
      if (type === 'histogram' && label === 'le') throw new MetricsError(`histogram ${name} may not use the label "le"`);
    }
    if (new Set(labelNames).size !== labelNames.length) throw new MetricsError(`metric ${name} repeats a label name`);
  }

  protected entry(labels: Labels | undefined, create: () => Series): Series {
    const given = labels ?? {};
    const values = this.labelNames.map((name) => {
      const value = given[name];
      if (value === undefined) throw new MetricsError(`metric ${this.name} needs the label "${name}"`);
      return String(value);
    });
    for (const key of Object.keys(given)) if (!this.labelNames.includes(key)) throw new MetricsError(`metric ${this.name} has no label "${key}"`);
    const key = values.join('\u0000');
    let found = this.series.get(key);
    if (!found) {
      found = { values, data: create() };
      this.series.set(key, found);
    }
    return found.data;
  }

  /** Forgets every series (e.g. a gauge refilled from scratch by a collector). */
  reset(): void {
    this.series.clear();
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    for (const { values, data } of this.series.values()) lines.push(...this.samples(values, data));
    return lines;
  }

  protected abstract samples(values: string[], data: Series): string[];
}

export class Counter extends Metric<{ value: number }> {
  inc(labels?: Labels, by = 1): void {
    if (!(by >= 0)) throw new MetricsError(`counter ${this.name} can only go up (got ${by})`);
    this.entry(labels, () => ({ value: 0 })).value += by;
  }

  /** The series of `labels`, looked up once (for hot paths: a token's counters). */
  bind(labels?: Labels): { inc(by?: number): void } {
    const series = this.entry(labels, () => ({ value: 0 }));
    return {
      inc: (by = 1) => {
        if (!(by >= 0)) throw new MetricsError(`counter ${this.name} can only go up (got ${by})`);
        series.value += by;
      },
    };
  }

  get(labels?: Labels): number {
    return this.entry(labels, () => ({ value: 0 })).value;
  }

  protected samples(values: string[], data: { value: number }): string[] {
    return [`${this.name}${labelText(this.labelNames, values)} ${formatValue(data.value)}`];
  }
}

export class Gauge extends Metric<{ value: number }> {
  set(labels: Labels | undefined, value: number): void {
    this.entry(labels, () => ({ value: 0 })).value = value;
  }

  inc(labels?: Labels, by = 1): void {
    this.entry(labels, () => ({ value: 0 })).value += by;
  }

  dec(labels?: Labels, by = 1): void {
    this.entry(labels, () => ({ value: 0 })).value -= by;
  }

  get(labels?: Labels): number {
    return this.entry(labels, () => ({ value: 0 })).value;
  }

  protected samples(values: string[], data: { value: number }): string[] {
    return [`${this.name}${labelText(this.labelNames, values)} ${formatValue(data.value)}`];
  }
}

interface HistogramSeries {
  /** Per bucket (not cumulative); the last one is +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram extends Metric<HistogramSeries> {
  readonly buckets: readonly number[];

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(name, help, labelNames, 'histogram');
    if (buckets.length === 0) throw new MetricsError(`histogram ${name} needs at least one bucket`);
    for (let i = 0; i < buckets.length; i++) {
      if (!Number.isFinite(buckets[i]!)) throw new MetricsError(`histogram ${name}: bucket bound ${buckets[i]} is not a finite number (+Inf is always added)`);
      if (i > 0 && buckets[i]! <= buckets[i - 1]!) throw new MetricsError(`histogram ${name}: bucket bounds must increase (${buckets[i - 1]} then ${buckets[i]})`);
    }
    this.buckets = [...buckets];
  }

  observe(labels: Labels | undefined, value: number): void {
    this.record(this.entry(labels, () => this.emptySeries()), value);
  }

  /** The series of `labels`, looked up once (for hot paths: a token's latencies). */
  bind(labels?: Labels): { observe(value: number): void } {
    const series = this.entry(labels, () => this.emptySeries());
    return { observe: (value) => this.record(series, value) };
  }

  private emptySeries(): HistogramSeries {
    return { counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }

  private record(series: HistogramSeries, value: number): void {
    if (Number.isNaN(value)) throw new MetricsError(`histogram ${this.name}: cannot observe NaN`);
    let i = 0;
    while (i < this.buckets.length && value > this.buckets[i]!) i++;
    series.counts[i]!++;
    series.sum += value;
    series.count++;
  }

  protected samples(values: string[], data: HistogramSeries): string[] {
    const lines: string[] = [];
    let cumulative = 0;
    for (let i = 0; i <= this.buckets.length; i++) {
      cumulative += data.counts[i]!;
      const le = i < this.buckets.length ? formatValue(this.buckets[i]!) : '+Inf';
      lines.push(`${this.name}_bucket${labelText(this.labelNames, values, ['le', le])} ${cumulative}`);
    }
    const labels = labelText(this.labelNames, values);
    lines.push(`${this.name}_sum${labels} ${formatValue(data.sum)}`, `${this.name}_count${labels} ${data.count}`);
    return lines;
  }
}

/** A set of metrics rendered together; collectors run first to refresh gauges from live state. */
export class MetricsRegistry {
  private readonly metrics = new Map<string, { readonly name: string; render(): string[] }>();
  private readonly collectors: (() => void)[] = [];

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, labelNames, 'counter'));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.add(new Gauge(name, help, labelNames, 'gauge'));
  }

  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets: readonly number[] = LATENCY_BUCKETS_SECONDS): Histogram {
    return this.add(new Histogram(name, help, labelNames, buckets));
  }

  /** Runs before every render (a failing collector leaves its metrics as they were). */
  collect(fn: () => void): void {
    this.collectors.push(fn);
  }

  render(): string {
    for (const fn of this.collectors) {
      try {
        fn();
      } catch {
        // a scrape never fails because one source of numbers did
      }
    }
    const lines: string[] = [];
    for (const metric of this.metrics.values()) lines.push(...metric.render());
    return lines.length > 0 ? `${lines.join('\n')}\n` : '';
  }

  private add<M extends { readonly name: string; render(): string[] }>(metric: M): M {
    if (this.metrics.has(metric.name)) throw new MetricsError(`metric ${metric.name} is registered twice`);
    this.metrics.set(metric.name, metric);
    return metric;
  }
}

/**
 * The usual process series (names as Prometheus's client libraries spell them): CPU seconds,
 * resident memory, V8 heap in use, start time. Read at every scrape.
 */
export function registerProcessMetrics(registry: MetricsRegistry): void {
  const cpu = registry.counter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.');
  const rss = registry.gauge('process_resident_memory_bytes', 'Resident memory size in bytes.');
  const heap = registry.gauge('nodejs_heap_used_bytes', 'V8 heap in use in bytes.');
  const start = registry.gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.');
  start.set(undefined, Math.round(Date.now() / 1000 - process.uptime()));
  let counted = 0;
  registry.collect(() => {
    const usage = process.cpuUsage();
    const total = (usage.user + usage.system) / 1e6;
    if (total > counted) cpu.inc(undefined, total - counted);
    counted = Math.max(counted, total);
    const memory = process.memoryUsage();
    rss.set(undefined, memory.rss);
    heap.set(undefined, memory.heapUsed);
  });
}
