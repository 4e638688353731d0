// `baton plan`: where a model's layers would run — on the live cluster, or on machines described
// in a nodes.json — with memory per stage (weights + KV + headroom), the predicted speed, and
// (--explain) the alternatives that lost and what exo's layers-∝-memory rule would do.
import { readFile } from 'node:fs/promises';
import {
  KV_DTYPES, OBJECTIVES, ValidationFailed, formatBytes,
  type KvDType, type ModelManifest, type NodeId, type Objective, type Placement, type PlacementCluster, type PlanHop, type PlanStage,
} from '@baton/contracts';
import { CliError, EXIT_USAGE, type CommandSpec } from '../command.js';
import { choiceOption, flag, intOption, requiredString, stringOption } from '../args.js';
import { formatTable } from '../table.js';

/** Exit code when the model does not fit (the numbers are on stderr). */
export const EXIT_INFEASIBLE = 2;
export const DEFAULT_PLAN_CONTEXT = 4096;

async function readModel(path: string): Promise<ModelManifest> {
  let head: Buffer;
  try {
    const { open } = await import('node:fs/promises');
    const handle = await open(path, 'r');
    try {
      head = Buffer.alloc(4);
      await handle.read(head, 0, 4, 0);
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw new CliError(`cannot read --model ${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
  if (head.toString('latin1') === 'GGUF') {
    const { readModelManifest, GgufError } = await import('@baton/gguf');
    try {
      return await readModelManifest(path);
    } catch (error) {
      if (error instanceof GgufError) throw new CliError(error.message);
      throw error;
    }
  }
  const { manifestProblems } = await import('@baton/placement');
  let plain: unknown;
  try {
    plain = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new CliError(`--model ${path} is neither a GGUF file nor a JSON manifest (${(error as Error).message}). Pass a .gguf file, or the output of \`baton model inspect FILE --json\`.`);
  }
  const problems = manifestProblems(plain);
  if (problems.length > 0) {
    throw new CliError(`--model ${path} is not a valid model manifest:\n  ${problems.join('\n  ')}\nWrite it with \`baton model inspect FILE --json\`.`);
  }
  return plain as ModelManifest;
}

async function readNodesFile(path: string): Promise<PlacementCluster> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read --nodes ${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
  let plain: unknown;
  try {
    plain = JSON.parse(text);
  } catch (error) {
    throw new CliError(`--nodes ${path} is not valid JSON: ${(error as Error).message}`);
  }
  const { readClusterFile } = await import('@baton/placement');
  try {
    return readClusterFile(plain, path);
  } catch (error) {
    if (error instanceof ValidationFailed) {
      throw new CliError(`--nodes ${path} has ${error.problems.length} problem${error.problems.length === 1 ? '' : 's'}:\n  ${error.problems.join('\n  ')}\nSee docs/planning.md for the format.`);
    }
    throw error;
  }
}

async function readLiveCluster(redisUrl: string | undefined, prefix: string | undefined): Promise<{ cluster: PlacementCluster; labels: Map<string, string>; notes: string[] }> {
  const { loadClusterSnapshot } = await import('../cluster.js');
  const { clusterFromRecords } = await import('@baton/placement');
  const snapshot = await loadClusterSnapshot({ redisUrl, prefix });
  const cluster = clusterFromRecords(snapshot.nodes, snapshot.links);
  const notes: string[] = [];
  if (snapshot.source === 'leases') notes.push('discovery is not answering: planned from the node leases, without link measurements');
  const names = new Map(snapshot.nodes.map((n) => [n.id as string, n.name]));
  if (cluster.left.length > 0) notes.push(`left out ${cluster.left.map((n) => `${names.get(n.id) ?? n.id} (${n.reason})`).join(', ')}`);
  if (cluster.nodes.length === 0) {
    throw new CliError(`no usable nodes in the cluster at ${redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'}${cluster.left.length > 0 ? ` (${cluster.left.length} left out: ${notes.join('; ')})` : ''}. Start \`baton node --redis URL\` on each machine, or plan for machines you describe with --nodes nodes.json.`);
  }
  return {
    cluster: { nodes: cluster.nodes, links: cluster.links },
    labels: new Map(snapshot.nodes.filter((n) => n.name !== n.id).map((n) => [n.id as string, `${n.name} (${n.id})`])),
    notes,
  };
}

const ms = (value: number) => (value < 1 ? `${value.toFixed(3)} ms` : value < 10 ? `${value.toFixed(2)} ms` : `${value.toFixed(1)} ms`);
const rate = (value: number) => (value < 10 ? value.toFixed(2) : value.toFixed(1));

function stageTable(stages: PlanStage[], label: (id: string) => string, withFit = false): string {
  return formatTable(
    ['STAGE', 'NODE', 'LAYERS', 'WEIGHTS', 'KV', 'HEADROOM', 'MEMORY / BUDGET', 'COMPUTE', 'TIME', ...(withFit ? ['FITS'] : [])],
    stages.map((s, i) => [
      i,
      label(s.nodeId),
      `${s.layerStart}-${s.layerEnd - 1} (${s.layerEnd - s.layerStart})`,
      formatBytes(s.weightsBytes),
      formatBytes(s.kvBytes),
      formatBytes(s.headroomBytes),
      `${formatBytes(s.memoryBytes)} / ${formatBytes(s.memoryBudgetBytes)}`,
      `${formatBytes(s.computeBytesPerSec)}/s${s.computeMeasured ? '' : '*'}`,
      ms(s.predictedMs),
      ...(withFit ? [s.memoryBytes <= s.memoryBudgetBytes ? 'yes' : 'NO'] : []),
    ]),
  );
}

function hopTable(hops: PlanHop[], label: (id: string) => string): string {
  return formatTable(
    ['HOP', 'BYTES/TOKEN', 'RTT', 'BANDWIDTH', 'TIME'],
    hops.map((h) => [
      `${label(h.from)} → ${label(h.to)}`,
      formatBytes(h.bytesPerToken),
      `${h.rttMs} ms${h.measured ? '' : '*'}`,
      `${formatBytes(h.bandwidthBytesPerSec)}/s${h.measured ? '' : '*'}`,
      ms(h.predictedMs),
    ]),
  );
}

function predictionLine(placement: Pick<Placement, 'predicted' | 'stages'>, sequences: number): string {
  const p = placement.predicted;
  const single = `${ms(p.msPerToken)}/token for one sequence (${rate(1000 / p.msPerToken)} tokens/s)`;
  const inFlight = sequences > 1 ? `; ${rate(p.tokensPerSecond)} tokens/s in all with ${sequences} sequences in flight` : '';
  return `${single}${inFlight}; bottleneck ${ms(p.bottleneckMs)}`;
}

export const planCommand: CommandSpec = {
  name: 'plan',
  summary: 'Preview which node would run which layers of a model, with memory and predicted speed',
  description: [
    'Plans for the live cluster (--redis), or for machines you describe in a nodes.json (--nodes),',
    'so you can ask "would two 64 GB Mac minis run this 70B model at 32K context?" before buying.',
    'Memory per stage counts the weights, the KV cache for --context × --sequences, and headroom.',
    '`latency` uses the fewest, fastest nodes that fit; `throughput` balances stages for many',
    'sequences in flight. Exit code 2 when the model does not fit (the numbers are on stderr).',
    'nodes.json: {"nodes": [{"id", "memoryBytes", "computeBytesPerSec"}], "links": [{"from", "to",',
    '"rttMs", "bandwidthBytesPerSec"}]}; sizes may be written "48GB". See docs/planning.md.',
  ].join('\n'),
  options: {
    model: { type: 'string', value: 'FILE', description: 'A GGUF model file, or a manifest.json from `baton model inspect --json`' },
    nodes: { type: 'string', value: 'FILE', description: 'Plan for the machines in this nodes.json instead of the live cluster' },
    context: { type: 'string', value: 'N', description: `Context tokens per sequence, prompt + output (default: ${DEFAULT_PLAN_CONTEXT}, or the model's own if smaller)` },
    sequences: { type: 'string', value: 'N', description: 'Sequences held at once, each with its own KV (throughput: in flight)', default: '1' },
    'kv-dtype': { type: 'string', value: KV_DTYPES.join('|'), description: 'KV cache type', default: 'f16' },
    objective: { type: 'string', value: OBJECTIVES.join('|'), description: 'What to optimise', default: 'latency' },
    pin: { type: 'string', value: 'ID,ID', description: 'Use only these nodes' },
    explain: { type: 'boolean', description: 'Also show the alternatives considered and what exo\'s rule would predict' },
    json: { type: 'boolean', description: 'Print the plan as JSON' },
    apply: { type: 'boolean', description: 'Ask the live cluster\'s planner to serve this model with this requirement (it publishes the plan and keeps it current)' },
    stages: { type: 'string', value: 'N', description: 'Use exactly N stages' },
    redis: { type: 'string', value: 'URL', description: 'Redis of the live cluster (or $REDIS_URL)', default: 'redis://127.0.0.1:6379' },
    prefix: { type: 'string', value: 'PREFIX', description: 'Key namespace of the cluster (or $BATON_PREFIX)', default: 'baton:' },
  },
  examples: [
    'baton plan --model ~/.ollama/models/blobs/sha256-… --context 32768',
    'baton plan --model llama-70b.json --nodes two-minis.json --context 32768 --explain',
    'baton plan --model model.gguf --objective throughput --sequences 8 --json',
  ],
  async run(ctx) {
    const modelPath = requiredString(ctx, 'model');
    const contextFlag = intOption(ctx, 'context', { min: 1, max: 16 * 1024 * 1024 });
    const sequences = intOption(ctx, 'sequences', { min: 1, max: 65536 }) ?? 1;
    const kvDType: KvDType = choiceOption(ctx, 'kv-dtype', KV_DTYPES) ?? 'f16';
    const objective: Objective = choiceOption(ctx, 'objective', OBJECTIVES) ?? 'latency';
    const pinRaw = stringOption(ctx, 'pin');
    const pinnedNodes = pinRaw === undefined ? undefined : pinRaw.split(',').map((s) => s.trim()).filter(Boolean) as NodeId[];
    if (pinnedNodes && pinnedNodes.length === 0) throw new CliError('--pin needs at least one node id, like --pin mini1,mini2', EXIT_USAGE);
    const json = flag(ctx, 'json');
    const explain = flag(ctx, 'explain');
    const stages = intOption(ctx, 'stages', { min: 1, max: 1024 });
    if (flag(ctx, 'apply') && stringOption(ctx, 'nodes')) throw new CliError('--apply places the model on the live cluster: leave out --nodes', EXIT_USAGE);

    const manifest = await readModel(modelPath);
    const contextTokens = contextFlag ?? (manifest.contextLength > 0 ? Math.min(DEFAULT_PLAN_CONTEXT, manifest.contextLength) : DEFAULT_PLAN_CONTEXT);
    const nodesPath = stringOption(ctx, 'nodes');
    const { cluster, labels, notes } = nodesPath
      ? { cluster: await readNodesFile(nodesPath), labels: new Map<string, string>(), notes: [] as string[] }
      : await readLiveCluster(stringOption(ctx, 'redis'), stringOption(ctx, 'prefix'));
    const label = (id: string) => labels.get(id) ?? id;

    const { planPlacement, evaluateExo, prepare, InfeasibleError, PlacementInputError } = await import('@baton/placement');
    const input = {
      manifest,
      nodes: cluster.nodes,
      links: cluster.links,
      requirement: { contextTokens, sequences, kvDType, objective, ...(pinnedNodes ? { pinnedNodes } : {}), ...(stages ? { stages } : {}) },
    };
    let placement: Placement;
    try {
      placement = planPlacement(input);
    } catch (error) {
      if (error instanceof InfeasibleError) {
        console.error(`baton plan: ${error.message}`);
        console.error(formatTable(
          ['NODE', 'BUDGET', 'HOLDS AT MOST', 'WHOLE MODEL NEEDS'],
          error.details.nodes.map((n) => [label(n.nodeId), formatBytes(n.memoryBytes), `${n.maxLayers} of ${error.details.layers} layers`, formatBytes(n.wholeModelBytes)]),
        ));
        if (json) console.log(JSON.stringify({ error: error.toBody() }, null, 2));
        return EXIT_INFEASIBLE;
      }
      if (error instanceof PlacementInputError) throw new CliError(`cannot plan:\n  ${error.problems.join('\n  ')}`);
      throw error;
    }
    const exo = explain ? evaluateExo(prepare(input)) : undefined;

    if (flag(ctx, 'apply')) {
      const { resolve } = await import('node:path');
      const { RpcClient, resolveControlPlaneOptions } = await import('@baton/control-plane');
      const rpc = new RpcClient(resolveControlPlaneOptions({ redisUrl: stringOption(ctx, 'redis'), prefix: stringOption(ctx, 'prefix') }));
      try {
        const plan = await rpc.send('planner.apply', { modelPath: resolve(modelPath), requirement: input.requirement }, { timeoutMs: 30_000 });
        const summary = `published ${plan.modelId} plan v${plan.version}: ${plan.stages.map((s) => `${label(s.nodeId)} [${s.layerStart},${s.layerEnd})`).join(' → ')}`;
        if (json) console.log(JSON.stringify(plan, null, 2));
        else console.log(summary);
        return 0;
      } catch (error) {
        throw new CliError(`the planner did not apply the plan: ${(error as Error).message}`);
      } finally {
        await rpc.close();
      }
    }

    if (json) {
      const out: Record<string, unknown> = {
        model: { name: manifest.name, arch: manifest.arch, fileType: manifest.fileType, layers: manifest.layers, fileBytes: manifest.fileBytes },
        source: nodesPath ? { nodesFile: nodesPath } : { cluster: stringOption(ctx, 'redis') ?? 'redis://127.0.0.1:6379' },
        requirement: placement.requirement,
        stages: placement.stages,
        hops: placement.hops,
        predicted: placement.predicted,
        alternatives: placement.alternatives,
        assumptions: [...notes, ...placement.assumptions],
      };
      if (exo) out.exo = { stages: exo.stages, hops: exo.hops, predicted: exo.predicted, fits: exo.fits, problems: exo.problems };
      console.log(JSON.stringify(out, null, 2));
      return 0;
    }

    const lines: string[] = [];
    lines.push(`${manifest.name}: ${manifest.layers} layers, ${manifest.fileType}, ${formatBytes(manifest.fileBytes)} — ${objective}, ${contextTokens} tokens × ${sequences} sequence${sequences === 1 ? '' : 's'}, ${kvDType} KV, on ${nodesPath ?? 'the live cluster'}`);
    lines.push('');
    lines.push(stageTable(placement.stages, label));
    if (placement.hops.length > 0) lines.push('', hopTable(placement.hops, label));
    lines.push('', `Predicted: ${predictionLine(placement, sequences)}`);
    const assumed = [...notes, ...placement.assumptions];
    if (assumed.length > 0 || placement.stages.some((s) => !s.computeMeasured) || placement.hops.some((h) => !h.measured)) {
      lines.push('', 'Assumed (* in the tables):', ...assumed.map((a) => `  ${a}`));
    }
    if (explain) {
      lines.push('', 'Alternatives considered:');
      lines.push(formatTable(['  ALTERNATIVE', 'WHY NOT'], placement.alternatives.map((a) => [`  ${a.description}`, a.reason])));
      lines.push('', 'exo\'s rule (layers ∝ memory over all nodes, KV cache not counted) on the same nodes:');
      if (!exo || !exo.layout) {
        lines.push(`  cannot place: ${exo?.problems.join('; ') ?? 'no nodes'}`);
      } else {
        lines.push(stageTable(exo.stages, label, true));
        lines.push(exo.fits
          ? `  would predict ${predictionLine(exo, sequences)}`
          : `  would not fit: ${exo.problems.join('; ')}`);
      }
    } else if (placement.alternatives.length > 0) {
      lines.push('', `(${placement.alternatives.length} alternatives considered: --explain shows them and what exo's rule would do)`);
    }
    console.log(lines.join('\n'));
    return 0;
  },
};
