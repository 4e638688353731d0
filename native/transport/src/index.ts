// @baton/transport: the native activation transport (TCP and Unix sockets now, RDMA where the
// hardware has it) behind one listen()/connect() interface, plus a link probe.
export { listen, connect, stats, configureTransport, transportDriver, Connection, Server, TransportError } from './transport.js';
export type { ConnectionEvents, ServerEvents, TransportStats, IoDriver } from './transport.js';
export type { EndpointOptions, ListenOptions, ConnectOptions, TransportLogger } from './options.js';
export { DEFAULTS as TRANSPORT_DEFAULTS } from './options.js';
export { loadNative } from './native.js';
export { probeLink } from './probe.js';
export type { ProbeOptions, LinkProbeResult } from './probe.js';
export { rdmaDevices, rdmaStatus, rdmaFakeSelfTest, TRANSPORT_CONTROL_SEQUENCE } from './rdma.js';
export type { RdmaMode, RdmaSettings } from './rdma.js';
