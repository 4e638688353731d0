import { describe, expect, it } from 'vitest';
import { MetricsRegistry, escapeLabelValue, formatValue } from './prometheus.js';

describe('Prometheus text exposition', () => {
  it('renders counters, gauges and histograms in the 0.0.4 text format', () => {
    const registry = new MetricsRegistry();
    const requests = registry.counter('http_requests_total', 'HTTP requests by route and status.', ['route', 'status']);
    const depth = registry.gauge('queue_depth', 'Frames waiting.');
    const latency = registry.histogram('latency_seconds', 'Latency.', ['model'], [0.1, 1]);
    requests.inc({ route: '/v1/completions', status: 200 });
    requests.inc({ route: '/v1/completions', status: 200 }, 2);
    requests.inc({ route: '/v1/models', status: 404 });
    depth.set(undefined, 7);
    latency.observe({ model: 'm' }, 0.05);
    latency.observe({ model: 'm' }, 0.1);
    latency.observe({ model: 'm' }, 0.5);
    latency.observe({ model: 'm' }, 3);
    expect(registry.render()).toBe([
      '# HELP http_requests_total HTTP requests by route and status.',
      '# TYPE http_requests_total counter',
      'http_requests_total{route="/v1/completions",status="200"} 3',
      'http_requests_total{route="/v1/models",status="404"} 1',
      '# HELP queue_depth Frames waiting.',
      '# TYPE queue_depth gauge',
      'queue_depth 7',
      '# HELP latency_seconds Latency.',
      '# TYPE latency_seconds histogram',
      'latency_seconds_bucket{model="m",le="0.1"} 2',
      'latency_seconds_bucket{model="m",le="1"} 3',
      'latency_seconds_bucket{model="m",le="+Inf"} 4',
      'latency_seconds_sum{model="m"} 3.65',
      'latency_seconds_count{model="m"} 4',
      '',
    ].join('\n'));
  });

  it('binds a series once for hot paths, counting into the same series', () => {
    const registry = new MetricsRegistry();
    const c = registry.counter('c_total', 'x', ['m']);
    const h = registry.histogram('h_seconds', 'x', ['m'], [1]);
    const bound = c.bind({ m: 'a' });
    bound.inc();
    bound.inc(2);
    c.inc({ m: 'a' });
    h.bind({ m: 'a' }).observe(0.5);
    h.observe({ m: 'a' }, 2);
    expect(c.get({ m: 'a' })).toBe(4);
    expect(registry.render()).toContain('h_seconds_bucket{m="a",le="1"} 1\nh_seconds_bucket{m="a",le="+Inf"} 2\nh_seconds_sum{m="a"} 2.5\nh_seconds_count{m="a"} 2');
    expect(() => bound.inc(-1)).toThrow('can only go up');
    expect(() => h.bind({ m: 'a' }).observe(NaN)).toThrow('cannot observe NaN');
  });

  it('renders an empty registry as nothing', () => {
    expect(new MetricsRegistry().render()).toBe('');
  });

  it('renders a metric with no series as HELP and TYPE only', () => {
    const registry = new MetricsRegistry();
    registry.counter('nothing_total', 'Never counted.');
    expect(registry.render()).toBe('# HELP nothing_total Never counted.\n# TYPE nothing_total counter\n');
  });

  it('escapes label values and help text', () => {
    expect(escapeLabelValue('a "b" \\ c\nd')).toBe('a \\"b\\" \\\\ c\\nd');
    const registry = new MetricsRegistry();
    registry.gauge('g', 'line one\nback\\slash', ['x']).set({ x: 'say "hi"' }, 1);
    expect(registry.render()).toBe('# HELP g line one\\nback\\\\slash\n# TYPE g gauge\ng{x="say \\"hi\\""} 1\n');
  });

  it('spells special values as Prometheus does', () => {
    expect([formatValue(Infinity), formatValue(-Infinity), formatValue(NaN), formatValue(2), formatValue(0.25)]).toEqual(['+Inf', '-Inf', 'NaN', '2', '0.25']);
  });

  it('runs collectors before rendering; a failing one does not break the scrape', () => {
    const registry = new MetricsRegistry();
    const gauge = registry.gauge('kv_blocks_used', 'Used blocks.', ['node']);
    let used = 3;
    registry.collect(() => {
      gauge.reset();
      gauge.set({ node: 'a' }, used);
    });
    registry.collect(() => {
      throw new Error('source down');
    });
    expect(registry.render()).toContain('kv_blocks_used{node="a"} 3');
    used = 5;
    expect(registry.render()).toContain('kv_blocks_used{node="a"} 5');
  });

  it('rejects bad names, labels, buckets and values with a clear error', () => {
    const registry = new MetricsRegistry();
    expect(() => registry.counter('1bad', 'x')).toThrow('metric name "1bad" is not valid');
    expect(() => registry.counter('ok_total', 'x', ['__reserved'])).toThrow('label name "__reserved" of ok_total is not valid');
    expect(() => registry.histogram('h', 'x', ['le'])).toThrow('may not use the label "le"');
    expect(() => registry.histogram('h2', 'x', [], [1, 1])).toThrow('bucket bounds must increase');
    const c = registry.counter('c_total', 'x', ['a']);
    expect(() => c.inc({})).toThrow('metric c_total needs the label "a"');
    expect(() => c.inc({ a: 1, b: 2 })).toThrow('metric c_total has no label "b"');
    expect(() => c.inc({ a: 1 }, -1)).toThrow('can only go up');
    expect(() => registry.counter('c_total', 'again')).toThrow('registered twice');
  });
});
