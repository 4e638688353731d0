// `baton chat` (the built CLI, as a real process) against a gateway with a test-double pipeline:
// streamed answers, kept history, /reset, --system, and server errors shown plainly.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { freePort } from '@baton/control-plane';
import { readGguf, writeRandomModel } from '@baton/gguf';
import { Tokenizer } from '@baton/tokenizer';
import { createGatewayApp, gatewayUrl } from '../src/index.js';
import { FakePipeline } from './fake-pipeline.js';

const CLI = fileURLToPath(new URL('../../cli/bin/baton.js', import.meta.url));
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

let home: string;
let tokenizer: Tokenizer;
let pipeline: FakePipeline;
let app: NestFastifyApplication;
let url: string;

function chat(args: string[], input: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'chat', '--url', url, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('exit', (code) => resolve({ code, output }));
    child.stdin.end(input);
  });
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'baton-chat-'));
  const modelPath = join(home, 'tiny.gguf');
  await writeRandomModel({ out: modelPath, arch: 'llama', dim: 32, layers: 1, heads: 2, kvHeads: 1, ffn: 64, type: 'f32', context: 512, seed: 3 });
  tokenizer = Tokenizer.fromGguf((await readGguf(modelPath)).metadata);
  pipeline = new FakePipeline(
    [
      { modelId: 'cold', modelPath, contextLength: 512, planVersion: 1, ready: false, reason: 'loading' },
      { modelId: 'tiny', modelPath, contextLength: 512, planVersion: 1, ready: true },
    ],
    tokenizer,
  );
  app = await createGatewayApp({ port: 0, pipeline, controlPlane: { redisUrl: REDIS_URL, prefix: 'test-chat-cli:' }, logger: false, localModels: { batonHome: home, ollamaModels: null } });
  url = gatewayUrl(app);
});

afterAll(async () => {
  await app?.close();
  await rm(home, { recursive: true, force: true });
});

describe('baton chat', () => {
  it('streams answers, keeps the conversation and clears it on /reset', async () => {
    const before = pipeline.requests.length;
    const { code, output } = await chat(['--system', 'You are terse.', '--max-tokens', '40', '--temperature', '0'], 'say:alpha one;\nsay:beta two;\n/reset\nsay:gamma;\n');
    expect(code).toBe(0);
    expect(output).toBe('alpha one\nbeta two\n(conversation cleared)\ngamma\n');
    const sent = pipeline.requests.slice(before).map((r) => ({ prompt: tokenizer.decode(r.promptTokens, { special: true }), max: r.maxTokens, t: r.sampling.temperature }));
    expect(sent).toHaveLength(3);
    expect(sent[0]!.prompt.startsWith('<|im_start|>system\nYou are terse.<|im_end|>')).toBe(true); // the first *ready* model was picked
    expect(sent[1]!.prompt).toContain('<|im_start|>assistant\nalpha one<|im_end|>'); // history kept
    expect(sent[2]!.prompt).not.toContain('alpha');
    expect(sent[2]!.prompt.startsWith('<|im_start|>system\nYou are terse.')).toBe(true); // the system prompt survives /reset
    for (const s of sent) expect([s.max, s.t]).toEqual([40, 0]);
  });

  it('shows server errors plainly and carries on', async () => {
    const { code, output } = await chat(['--model', 'nope'], 'hello\n');
    expect(code).toBe(0);
    expect(output).toBe("error: 404: model 'nope' not found; served models: cold, tiny\n");
  });

  it('says when the gateway cannot be reached', async () => {
    const port = await freePort(); // nothing listens there
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'chat', '--url', `http://127.0.0.1:${port}`], { stdio: ['pipe', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.stderr.on('data', (d: Buffer) => (text += d.toString()));
      child.once('exit', (c) => resolve({ code: c, output: text }));
      child.stdin.end('hi\n');
    });
    expect(code).toBe(1);
    expect(output).toBe(`error: cannot reach the gateway at http://127.0.0.1:${port} (ECONNREFUSED); start one with \`baton up\` or pass --url\n`);
  });
});
