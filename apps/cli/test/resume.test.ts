// ARCHITECTURE §7 with real processes: a node serving a stage is killed (SIGKILL) in the middle
// of a streamed generation; discovery drops it, the planner re-places the model on the nodes
// left, and the gateway resumes the generation on the new plan by prefilling prompt + the tokens
// generated so far. The client's stream goes on to the end with exactly the greedy text of an
// uninterrupted run: no error, no lost or repeated token.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeRandomModel } from '@baton/gguf';
import { streamCompletion } from '../src/up/sse.js';
import { redisClient, startUp, stopUp, tempHome, type UpStack } from '../../discovery/test/processes.js';

const home = tempHome();
const modelPath = join(home, 'resume.gguf');
const redis = redisClient();
const MAX_TOKENS = 400;

interface ClusterView {
  nodes: { id: string; pid: number }[];
  plans: { version: number; stages: { nodeId: string }[] }[];
}

let stack: UpStack | undefined;
let url = '';

async function cluster(): Promise<ClusterView> {
  return (await (await fetch(`${url}/v1/cluster`)).json()) as ClusterView;
}

async function complete(prompt: string): Promise<{ text: string; finish: string; tokens: number }> {
  const response = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'resume', prompt, max_tokens: MAX_TOKENS, temperature: 0 }) });
  const body = (await response.json()) as { choices: { text: string; finish_reason: string }[]; usage: { completion_tokens: number } };
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${JSON.stringify(body)}`);
  return { text: body.choices[0]!.text, finish: body.choices[0]!.finish_reason, tokens: body.usage.completion_tokens };
}

beforeAll(async () => {
  await writeRandomModel({ out: modelPath, arch: 'llama', dim: 128, layers: 6, heads: 4, kvHeads: 2, ffn: 256, type: 'f32', context: 1024, seed: 23, name: 'resume' });
  // Three shards, two stages: when a node of the plan goes, the model still fits on the two left.
  stack = await startUp(['--shards', '3', '--stages', '2', '--model', modelPath, '--kv-dtype', 'f32', '--context', '1024', '--sequences', '2'], { BATON_HOME: home });
  url = stack.url;
}, 180_000);

afterAll(async () => {
  await stopUp(stack, redis);
  redis.disconnect();
  rmSync(home, { recursive: true, force: true });
}, 60_000);

describe('a node lost in the middle of a generation', () => {
  it('resumes the stream on the new plan with exactly the uninterrupted output', async () => {
    // A prompt whose greedy output is long enough to be cut in the middle.
    let prompt = '';
    let reference = { text: '', finish: '', tokens: 0 };
    for (const candidate of ['Tell me a long story about', 'The pipeline of machines', 'one two three four', 'A quiet river runs', 'Baton passes the token']) {
      reference = await complete(candidate);
      prompt = candidate;
      if (reference.tokens >= 150) break;
    }
    expect(reference.tokens).toBeGreaterThanOrEqual(150);

    const before = await cluster();
    const plan = before.plans[0]!;
    const victim = before.nodes.find((n) => n.id === plan.stages.at(-1)!.nodeId)!;
    let text = '';
    let chunks = 0;
    let finish: string | undefined;
    let killed = false;
    for await (const chunk of streamCompletion(url, { model: 'resume', prompt, max_tokens: MAX_TOKENS, temperature: 0 })) {
      const choice = chunk.choices[0] as { text?: string; finish_reason?: string | null } | undefined;
      text += choice?.text ?? '';
      if (choice?.finish_reason) finish = choice.finish_reason;
      if (++chunks === 20 && !killed) {
        process.kill(victim.pid, 'SIGKILL');
        killed = true;
      }
    }
    expect(killed).toBe(true);
    expect(text).toBe(reference.text);
    expect(finish).toBe(reference.finish);
    const after = await cluster();
    expect(after.plans[0]!.version).toBeGreaterThan(plan.version);
    expect(after.plans[0]!.stages.map((s) => s.nodeId)).not.toContain(victim.id);
    expect(stack!.proc.output()).toMatch(/resuming a generation on plan v\d+ after \d+ token\(s\)/);
  }, 120_000);
});
