// A real node process with `--metrics-port`: GET /metrics answers in Prometheus's text format
// (the stage series appear once it serves a plan); a bad port stops it with a clear message.
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '@baton/control-plane';
import { REDIS_URL, SHARD_MAIN, dropPrefix, redisClient, startProcess, stopProcess, tempHome, testPrefix, waitFor, type Proc } from '../../discovery/test/processes.js';

const prefix = testPrefix();
const home = tempHome();
const redis = redisClient();
const procs: Proc[] = [];

afterAll(async () => {
  for (const proc of procs) await stopProcess(proc);
  await dropPrefix(redis, prefix);
  redis.disconnect();
});

describe('shard /metrics', () => {
  it('serves the metrics endpoint on --metrics-port', async () => {
    const port = await freePort();
    const node = startProcess(SHARD_MAIN, ['--redis', REDIS_URL, '--prefix', prefix, '--id', 'metered', '--name', 'metered', '--metrics-port', String(port)], { BATON_HOME: home });
    procs.push(node);
    const response = await waitFor(async () => {
      const r = await fetch(`http://127.0.0.1:${port}/metrics`);
      return r.ok ? r : undefined;
    }, 30_000, 100);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await response.text()).toMatch(/^process_resident_memory_bytes \d+$/m);
  });

  it('refuses a bad port, naming it', async () => {
    const node = startProcess(SHARD_MAIN, ['--redis', REDIS_URL, '--prefix', prefix, '--metrics-port', 'abc'], { BATON_HOME: home });
    procs.push(node);
    expect(await node.exited).toBe(64);
    expect(node.output()).toContain('--metrics-port must be a port number from 0 to 65535, got "abc"');
  });
});
