export * from './config.js';
export * from './redis.js';
export * from './rpc.js';
export * from './event-log.js';
export * from './leases.js';
export * from './module.js';
export * from './redis-server.js';
export * from './home.js';
