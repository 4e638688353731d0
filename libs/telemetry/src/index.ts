// @baton/telemetry: tracing (OpenTelemetry over OTLP/HTTP, off unless configured), the trace
// context carried in data-plane frame headers, token sampling, Prometheus text metrics and a
// plain /metrics endpoint for processes without an HTTP server.
export * from './config.js';
export * from './frame-trace.js';
export * from './prometheus.js';
export * from './tracing.js';
export * from './metrics-server.js';
export * from './process.js';
