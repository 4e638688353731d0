// The planner service with real processes (discovery, planner, node agents) and real Redis:
// apply publishes a versioned plan; losing a node replans without it; infeasible and invalid
// requests are refused with their numbers and problems.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { BatonError, ErrorCode, type Plan, type PlanRequirement } from '@baton/contracts';
import { RpcClient } from '@baton/control-plane';
import { writeRandomModel } from '@baton/gguf';
import {
  DISCOVERY_MAIN, REDIS_URL, SHARD_MAIN, dropPrefix, redisClient, startProcess, stopProcess, streamEvents, tempHome, testPrefix, waitFor, type Proc,
} from '../../discovery/test/processes.js';

const PLANNER_MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const requirement: PlanRequirement = { contextTokens: 512, sequences: 1, kvDType: 'f16', objective: 'latency' };

describe('planner service', () => {
  const prefix = testPrefix();
  const home = tempHome();
  const modelPath = join(home, 'tiny.gguf');
  const args = ['--redis', REDIS_URL, '--prefix', prefix];
  const procs: Proc[] = [];
  let redis: Redis;
  let rpc: RpcClient;
  let big: Proc;

  beforeAll(async () => {
    redis = redisClient();
    await writeRandomModel({ out: modelPath, arch: 'llama', dim: 64, layers: 4, heads: 4, kvHeads: 2, ffn: 128, type: 'f32', context: 1024, seed: 3, name: 'tiny' });
    procs.push(startProcess(DISCOVERY_MAIN, args, { BATON_HOME: home }));
    procs.push(startProcess(PLANNER_MAIN, args, { BATON_HOME: home }));
    big = startProcess(SHARD_MAIN, [...args, '--id', 'big', '--memory-budget', '2GB'], { BATON_HOME: home });
    procs.push(big);
    procs.push(startProcess(SHARD_MAIN, [...args, '--id', 'small', '--memory-budget', '1GB'], { BATON_HOME: home }));
    rpc = new RpcClient({ redisUrl: REDIS_URL, prefix });
    await waitFor(async () => (await rpc.send('discovery.nodes.list', {}, { timeoutMs: 500 })).nodes.length === 2 || undefined);
    await waitFor(() => rpc.send('planner.ping', {}, { timeoutMs: 500 }));
  });
  afterAll(async () => {
    for (const p of procs.reverse()) await stopProcess(p, 'SIGKILL');
    await rpc.close();
    await dropPrefix(redis, prefix);
    redis.disconnect();
    rmSync(home, { recursive: true, force: true });
  });

  it('previews without publishing', async () => {
    const placement = await rpc.send('planner.preview', { modelPath, requirement });
    expect(placement.stages.length).toBeGreaterThanOrEqual(1);
    expect(placement.stages[0]!.layerStart).toBe(0);
    expect(placement.stages.at(-1)!.layerEnd).toBe(4);
    expect((await streamEvents(redis, prefix)).some((e) => e.type === 'plan.published')).toBe(false);
  });

  it('applies: publishes version 1 and answers current', async () => {
    const plan = await rpc.send('planner.apply', { modelPath, requirement, modelId: 'tiny' });
    expect(plan).toMatchObject({ modelId: 'tiny', version: 1, modelPath });
    // latency: the model fits one node, so one node serves it.
    expect(plan.stages).toHaveLength(1);
    const published = (await streamEvents(redis, prefix)).filter((e) => e.type === 'plan.published');
    expect((published.at(-1)!.data.plan as Plan).planId).toBe(plan.planId);
    expect(await rpc.send('planner.current', { modelId: 'tiny' })).toMatchObject({ planId: plan.planId });
    expect(await rpc.send('planner.current', { modelId: 'nope' })).toBeNull();
  });

  it('replans without a node that is gone, as a new version', async () => {
    const before = (await rpc.send('planner.current', { modelId: 'tiny' }))!;
    const used = before.stages[0]!.nodeId;
    const victim = used === 'big' ? big : procs.find((p) => p !== big && p.output().includes('small'))!;
    victim.child.kill('SIGKILL');
    const after = await waitFor(async () => {
      const plan = await rpc.send('planner.current', { modelId: 'tiny' });
      return plan && plan.version > before.version ? plan : undefined;
    }, 20_000, 200);
    expect(after.stages.map((s) => s.nodeId)).not.toContain(used);
    expect(after.stages).toHaveLength(1);
  });

  it('refuses an infeasible requirement with the numbers', async () => {
    const error = await rpc.send('planner.preview', { modelPath, requirement: { ...requirement, contextTokens: 16_000_000, sequences: 64 } }).catch((e: BatonError) => e);
    expect(error).toBeInstanceOf(BatonError);
    expect((error as BatonError).code).toBe(ErrorCode.INFEASIBLE);
    expect((error as BatonError).message).toMatch(/GB/);
  });

  it('refuses invalid requests, listing every problem', async () => {
    const error = await rpc.send('planner.preview', { modelPath: '', requirement: { contextTokens: -1, sequences: 1, kvDType: 'f8', objective: 'speed' } } as never).catch((e: BatonError) => e);
    expect((error as BatonError).code).toBe(ErrorCode.VALIDATION);
    for (const field of ['modelPath', 'contextTokens', 'kvDType', 'objective']) expect((error as BatonError).message).toContain(field);
    const missing = await rpc.send('planner.preview', { modelPath: join(home, 'missing.gguf'), requirement }).catch((e: BatonError) => e);
    expect((missing as BatonError).code).toBe(ErrorCode.NOT_FOUND);
  });
});
