import { existsSync } from 'node:fs';
import { cpus, hostname, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatBytes } from '@baton/contracts';
import type { CommandSpec } from '../command.js';
import { CliError } from '../command.js';
import { bytesOption, choiceOption, intOption, stringOption } from '../args.js';
import { OBJECTIVES, KV_DTYPES, type NodeRecord, type Plan } from '@baton/contracts';
import type { RpcClient } from '@baton/control-plane';

/**
 * Waits until the model's plan is served by every stage, every node has measured its compute
 * rate, and the plan version has not changed for SETTLE_MS (at most SETTLE_TIMEOUT_MS).
 */
const SETTLE_MS = 2000;
const SETTLE_TIMEOUT_MS = 120_000;
async function waitForSettledPlan(rpc: RpcClient, modelId: string, aborted: () => boolean): Promise<Plan> {
  const end = Date.now() + SETTLE_TIMEOUT_MS;
  let last: Plan | null = null;
  let stableSince = Date.now();
  for (;;) {
    const current = await rpc.send('planner.current', { modelId }).catch(() => null);
    if (current && (!last || current.planId !== last.planId)) stableSince = Date.now();
    last = current ?? last;
    if (current) {
      const { nodes } = await rpc.send('discovery.nodes.list', {}).catch(() => ({ nodes: [] as NodeRecord[] }));
      const byId = new Map(nodes.map((n) => [n.id as string, n]));
      // A stage that cannot load (a bad file, no engine build) will not get better by waiting.
      const broken = current.stages.map((s) => byId.get(s.nodeId)).find((n) => n?.status?.startsWith('failed to load'));
      if (broken) throw new CliError(`node ${broken.name} ${broken.status}`);
      const serving = current.stages.every((s) => byId.get(s.nodeId)?.servingPlanId === current.planId);
      const measured = current.stages.every((s) => byId.get(s.nodeId)?.computeBytesPerSec != null);
      if (serving && measured && Date.now() - stableSince >= SETTLE_MS) return current;
    }
    if (aborted()) throw new CliError('stopped while waiting for the shards to load the model');
    if (Date.now() > end) {
      if (last) return last;
      throw new CliError(`no plan for ${modelId} after ${SETTLE_TIMEOUT_MS / 1000} s (see the planner's log lines above)`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** The process entry (dist/main.js) of a workspace app, found through its package. */
function appMain(pkg: string): string {
  return join(dirname(fileURLToPath(import.meta.resolve(pkg))), 'main.js');
}

export const upCommand: CommandSpec = {
  name: 'up',
  summary: 'Start a local cluster: Redis (if needed), discovery, planner, KV-cache manager, N shards and the OpenAI gateway',
  description:
    'Redis: --redis/$REDIS_URL when given; else the one answering on 127.0.0.1:6379; else an embedded\n' +
    'redis-server on a free port with its data under ~/.baton/redis. Each node agent gets an equal share\n' +
    'of the memory budget. Press Ctrl-C to stop everything this command started.',
  options: {
    shards: { type: 'string', value: 'N', description: 'Node agents to start on this machine', default: '2' },
    redis: { type: 'string', value: 'URL', description: 'Use this Redis (or $REDIS_URL)' },
    prefix: { type: 'string', value: 'PREFIX', description: 'Key namespace of the cluster (or $BATON_PREFIX)', default: 'baton:' },
    'memory-budget': { type: 'string', value: 'SIZE', description: 'Memory for all local shards together (default: 75% of RAM)' },
    model: { type: 'string', value: 'FILE', description: 'GGUF model to serve (default: ~/.baton/models/baton-demo.gguf when present)' },
    port: { type: 'string', value: 'PORT', description: 'HTTP port of the OpenAI-compatible gateway', default: '8080' },
    host: { type: 'string', value: 'HOST', description: 'Address the gateway binds', default: '127.0.0.1' },
    context: { type: 'string', value: 'N', description: 'Context tokens per sequence (default: the model\'s, at most 4096)' },
    sequences: { type: 'string', value: 'N', description: 'Concurrent sequences the KV cache holds', default: '8' },
    'kv-dtype': { type: 'string', value: 'TYPE', description: 'KV cache type: f16, q8_0 or f32', default: 'f16' },
    objective: { type: 'string', value: 'OBJ', description: 'Placement objective: throughput or latency', default: 'throughput' },
    stages: { type: 'string', value: 'N', description: 'Pipeline stages (default: one per shard; 0 = the planner chooses)' },
    threads: { type: 'string', value: 'N', description: 'Engine threads per shard (default: this machine\'s cores / shards)' },
    'delay-ms': { type: 'string', value: 'MS', description: 'Add this one-way delay to every data-plane hop (a userspace proxy per shard), to try a slow network' },
    'metrics-port': { type: 'string', value: 'PORT', description: 'Serve each shard\'s Prometheus /metrics on PORT, PORT+1, … (the gateway\'s is on its own port)' },
  },
  examples: ['baton up', 'baton up --shards 3 --model ~/.ollama/models/blobs/sha256-…', 'baton up --redis redis://127.0.0.1:6390'],
  async run(ctx) {
    const shards = intOption(ctx, 'shards', { min: 1, max: 64 }) ?? 2;
    const port = intOption(ctx, 'port', { min: 0, max: 65535 }) ?? 8080;
    const contextFlag = intOption(ctx, 'context', { min: 16, max: 16 * 1024 * 1024 });
    const sequences = intOption(ctx, 'sequences', { min: 1, max: 4096 }) ?? 8;
    const kvDType = choiceOption(ctx, 'kv-dtype', KV_DTYPES) ?? 'f16';
    const objective = choiceOption(ctx, 'objective', OBJECTIVES) ?? 'throughput';
    const stagesFlag = intOption(ctx, 'stages', { min: 0, max: 64 });
    const metricsPort = intOption(ctx, 'metrics-port', { min: 1, max: 65535 });
    if (metricsPort !== undefined && metricsPort + shards - 1 > 65535) throw new CliError(`--metrics-port ${metricsPort} leaves no room for ${shards} shards (ports up to 65535)`);
    const delayMs = intOption(ctx, 'delay-ms', { min: 0, max: 10_000 }) ?? 0;
    const totalBudget = bytesOption(ctx, 'memory-budget') ?? Math.floor(totalmem() * 0.75);
    const { resolveControlPlaneOptions, RpcClient } = await import('@baton/control-plane');
    const { batonHome, loadOrCreateNodeId } = await import('@baton/shard');
    const { resolveRedis } = await import('../up/redis.js');
    const { Supervisor } = await import('../up/supervisor.js');
    const log = (line: string) => console.log(line);
    const home = batonHome();
    const redis = await resolveRedis(stringOption(ctx, 'redis') ?? process.env.REDIS_URL, home);
    const options = resolveControlPlaneOptions({ redisUrl: redis.url, prefix: stringOption(ctx, 'prefix') });
    const common = ['--redis', options.redisUrl, '--prefix', options.prefix];

    let failed: string | undefined;
    let upAndRunning = false;
    let wake: () => void = () => undefined;
    const stopped = new Promise<void>((resolve) => (wake = resolve));
    const supervisor = new Supervisor(log, (name, code, signal) => {
      log(`[up]       ${name} exited unexpectedly (${signal ?? `code ${code}`})`);
      // Discovery, the planner and the gateway are essential at any time; a shard only until the
      // cluster is up (after that the planner re-places the model without it, as for a machine
      // that went away). The KV-cache manager may restart: it rebuilds its state from the shards.
      if (name === 'discovery' || name === 'planner' || name === 'gateway' || (!upAndRunning && name !== 'kv-cache')) {
        failed = `${name} stopped (see its log lines above)`;
        wake();
      }
    });
    const onSignal = () => wake();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);

    const baseId = loadOrCreateNodeId(home);
    const host = hostname().replace(/\.local$/, '');
    const perShard = Math.floor(totalBudget / shards);
    const threads = intOption(ctx, 'threads', { min: 1, max: 1024 }) ?? Math.max(1, Math.floor(cpus().length / shards));
    const modelFlag = stringOption(ctx, 'model');
    const demo = join(home, 'models', 'baton-demo.gguf');
    const modelPath = modelFlag ? resolve(modelFlag) : existsSync(demo) ? demo : undefined;
    if (modelFlag && !existsSync(modelPath!)) throw new CliError(`--model ${modelFlag}: no such file`);
    supervisor.start('discovery', appMain('@baton/discovery'), common);
    supervisor.start('planner', appMain('@baton/planner'), common);
    supervisor.start('kv-cache', appMain('@baton/kv-cache'), common);
    const proxies: { close(): Promise<void> }[] = [];
    for (let i = 1; i <= shards; i++) {
      const dataArgs = ['--data-host', '127.0.0.1', '--advertise', '127.0.0.1'];
      if (delayMs > 0) {
        const { freePort } = await import('@baton/control-plane');
        const { startDelayProxy } = await import('../up/delay-proxy.js');
        const dataPort = await freePort();
        const proxy = await startDelayProxy(await freePort(), dataPort, delayMs);
        proxies.push(proxy);
        dataArgs.push('--data-port', String(dataPort), '--advertise-port', String(proxy.port));
      }
      supervisor.start(`shard-${i}`, appMain('@baton/shard'), [...common, '--id', `${baseId}-${i}`, '--name', `${host}-${i}`, '--memory-budget', String(perShard), '--threads', String(threads), ...dataArgs, ...(metricsPort !== undefined ? ['--metrics-port', String(metricsPort + i - 1)] : [])]);
    }
    if (delayMs > 0) log(`[up]       every data-plane hop delayed by ${delayMs} ms one way (userspace proxies)`);

    const rpc = new RpcClient(options);
    const ready = await (async () => {
      for (let i = 0; i < 100 && !failed; i++) {
        try {
          const { nodes } = await rpc.send('discovery.nodes.list', {}, { timeoutMs: 1000 });
          if (nodes.filter((n) => n.id.startsWith(`${baseId}-`)).length >= shards) return nodes;
        } catch {
          // discovery still starting
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      return undefined;
    })();
    let url: string | undefined;
    let servedModel = '';
    if (ready && modelPath && !failed) {
      try {
        const { readModelManifest } = await import('@baton/gguf');
        const manifest = await readModelManifest(modelPath);
        const contextTokens = contextFlag ?? Math.min(manifest.contextLength, 4096);
        const stages = stagesFlag === undefined ? Math.min(shards, manifest.layers) : stagesFlag;
        const requirement = { contextTokens, sequences, kvDType, objective, ...(stages > 0 ? { stages } : {}) };
        const applied = await rpc.send('planner.apply', { modelPath, requirement }, { timeoutMs: 30_000 });
        servedModel = applied.modelId;
        // The shards load, measure their compute rate and announce it; the planner may then
        // re-balance once. Serve only when the plan has settled and every stage serves it.
        const plan = await waitForSettledPlan(rpc, applied.modelId, () => failed !== undefined);
        log(`[up]       plan ${plan.modelId} v${plan.version}: ${plan.stages.map((s) => `${s.nodeId} layers [${s.layerStart},${s.layerEnd})`).join(' → ')}; predicted ${plan.predicted.msPerToken.toFixed(2)} ms/token, ${plan.predicted.tokensPerSecond.toFixed(1)} tokens/s with ${sequences} sequences`);
        supervisor.start('gateway', appMain('@baton/gateway'), [...common, '--port', String(port), '--host', stringOption(ctx, 'host') ?? '127.0.0.1']);
        url = `http://${stringOption(ctx, 'host') ?? '127.0.0.1'}:${port}`;
        const { waitForHttp } = await import('../up/http.js');
        if (!(await waitForHttp(`${url}/healthz`, 30_000))) failed = `the gateway did not answer on ${url} within 30 s`;
      } catch (error) {
        failed = `could not place ${modelPath}: ${(error as Error).message}`;
      }
    }
    await rpc.close();
    if (ready && !failed) {
      upAndRunning = true;
      log('');
      log(`Baton is up: Redis ${options.redisUrl} (${redis.how}), namespace ${options.prefix}`);
      for (const n of ready) log(`  node ${n.name} (${n.id}) pid ${n.pid}, budget ${formatBytes(n.memory.budgetBytes)}`);
      if (url) {
        log(`OpenAI-compatible API: ${url}/v1  (try \`npx baton chat --url ${url}\`)`);
        log(`  curl ${url}/v1/chat/completions -H 'content-type: application/json' -d '{"model":"${servedModel}","messages":[{"role":"user","content":"Hello"}],"stream":true}'`);
        log(`Prometheus metrics: ${url}/metrics${metricsPort !== undefined ? `; shards on ports ${metricsPort}–${metricsPort + shards - 1} (/metrics)` : ''}`);
      } else {
        log('No model to serve: pass --model FILE (or run `npm run setup` to write the demo model).');
      }
      log('Try `npx baton nodes` in another terminal. Press Ctrl-C to stop.');
      log('');
    } else if (!failed) {
      failed = 'the nodes did not register within 20 s (see the log lines above)';
    }
    if (!failed) await stopped;
    log('[up]       stopping …');
    await supervisor.stopAll();
    for (const proxy of proxies) await proxy.close();
    if (redis.embedded) {
      await redis.embedded.stop();
      log('[up]       stopped the embedded redis-server');
    }
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (failed) throw new CliError(failed);
    return 0;
  },
};
