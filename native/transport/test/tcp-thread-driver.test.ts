// The same suite as tcp.test.ts with the native I/O thread + ThreadSafeFunction driver instead of
// the default uv_poll driver (each vitest file runs in its own process, so the choice is per file).
import { expect, it } from 'vitest';
import { configureTransport, transportDriver } from '../src/index.js';

configureTransport({ io: 'thread' });
await import('./tcp.test.js');

it('ran with the thread driver', () => {
  expect(transportDriver()).toBe('thread');
});
