// Tracing configuration from the environment, validated once at start-up (a bad value is an error
// that names the variable and the value, never a silent default).
//
//   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT  full URL of the collector's trace route (used as is)
//   OTEL_EXPORTER_OTLP_ENDPOINT         collector base URL; spans go to <base>/v1/traces
//   BATON_TRACE                         on | off (default: on when an endpoint is set; `on` alone
//                                       exports to http://localhost:4318)
//   BATON_TRACE_SAMPLE                  all | every:N | none — which generated tokens get a span
//   OTEL_SDK_DISABLED=true              off, whatever else is set (the OpenTelemetry convention)

/** Which generated tokens are traced. The request span is always recorded while tracing is on. */
export type TraceSample = { kind: 'all' } | { kind: 'every'; n: number } | { kind: 'none' };

/**
 * The largest N of `every:N`: frames carry N − 1 in the 7 spare bits of their trace-flags byte
 * (see frame-trace.ts), so the last stage can decide, without asking anyone, whether the next token
 * is traced.
 */
export const MAX_TRACE_EVERY = 128;

export const DEFAULT_OTLP_ENDPOINT = 'http://localhost:4318';

export class TelemetryConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TelemetryConfigError';
  }
}

/** Parses BATON_TRACE_SAMPLE (undefined or empty = all). */
export function parseTraceSample(value: string | undefined): TraceSample {
  const text = (value ?? '').trim().toLowerCase();
  if (text === '' || text === 'all') return { kind: 'all' };
  if (text === 'none') return { kind: 'none' };
  const match = /^every:(\d+)$/.exec(text);
  if (match) {
    const n = Number(match[1]);
    if (n >= 1 && n <= MAX_TRACE_EVERY) return n === 1 ? { kind: 'all' } : { kind: 'every', n };
    throw new TelemetryConfigError(`BATON_TRACE_SAMPLE=${value}: N must be an integer from 1 to ${MAX_TRACE_EVERY}`);
  }
  throw new TelemetryConfigError(`BATON_TRACE_SAMPLE=${value} is not valid: use all, every:N (N from 1 to ${MAX_TRACE_EVERY}) or none`);
}

/** Every how many tokens one is traced: 1 for all, N for every:N, 0 for none. */
export function sampleInterval(sample: TraceSample): number {
  return sample.kind === 'all' ? 1 : sample.kind === 'every' ? sample.n : 0;
}

export interface TracingConfig {
  enabled: boolean;
  /** Where spans are POSTed (OTLP/HTTP JSON), when enabled. */
  tracesUrl: string;
  sample: TraceSample;
}

function parseSwitch(name: string, value: string | undefined): boolean | undefined {
  const text = (value ?? '').trim().toLowerCase();
  if (text === '') return undefined;
  if (['1', 'on', 'true', 'yes'].includes(text)) return true;
  if (['0', 'off', 'false', 'no'].includes(text)) return false;
  throw new TelemetryConfigError(`${name}=${value} is not valid: use on or off`);
}

function checkedUrl(name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TelemetryConfigError(`${name}=${value} is not a URL (expected e.g. http://jaeger:4318)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TelemetryConfigError(`${name}=${value}: only http and https endpoints are supported (OTLP/HTTP)`);
  return value;
}

/** Reads and validates the tracing variables. Throws TelemetryConfigError naming a bad value. */
export function resolveTracingConfig(env: NodeJS.ProcessEnv = process.env): TracingConfig {
  const sample = parseTraceSample(env.BATON_TRACE_SAMPLE);
  const disabled = parseSwitch('OTEL_SDK_DISABLED', env.OTEL_SDK_DISABLED) === true;
  const flag = parseSwitch('BATON_TRACE', env.BATON_TRACE);
  const tracesEndpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || undefined;
  const baseEndpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || undefined;
  let tracesUrl: string;
  if (tracesEndpoint) tracesUrl = checkedUrl('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', tracesEndpoint);
  else if (baseEndpoint) tracesUrl = `${checkedUrl('OTEL_EXPORTER_OTLP_ENDPOINT', baseEndpoint).replace(/\/+$/, '')}/v1/traces`;
  else tracesUrl = `${DEFAULT_OTLP_ENDPOINT}/v1/traces`;
  const enabled = !disabled && (flag ?? (tracesEndpoint !== undefined || baseEndpoint !== undefined));
  return { enabled, tracesUrl, sample };
}
