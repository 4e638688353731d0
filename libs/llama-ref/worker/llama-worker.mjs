// Child process of @baton/llama-ref: loads one GGUF model with node-llama-cpp (llama.cpp) and
// answers requests from the parent over the IPC channel. It runs in its own process because a
// model llama.cpp cannot load may abort the whole process (GGML_ASSERT), not throw.
//
// Messages in:  { id, op: 'greedy' | 'probabilities' | 'tokenize' | 'benchmark' | 'info', ...args }
// Messages out: { id, ok: true, result } | { id, ok: false, error }
// The model options come once, in process.argv[2] as JSON.
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';

const options = JSON.parse(process.argv[2]);
const threads = options.threads;

const llama = await getLlama({
  build: 'never', // never compile llama.cpp from source: use the prebuilt binary
  gpu: false, // CPU only: the reference must be the CPU path, and this machine has no GPU
  usePrebuiltBinaries: true,
  skipDownload: true,
  progressLogs: false,
  maxThreads: threads, // its default is 4 threads, ~100× slower on a 2-core machine
  logLevel: LlamaLogLevel.error,
  logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message}\n`),
});
const model = await llama.loadModel({
  modelPath: options.modelPath,
  gpuLayers: 0,
  vocabOnly: options.vocabOnly === true,
  useMmap: true,
});
let context;
let sequence;
async function getSequence() {
  if (!sequence) {
    context = await model.createContext({
      contextSize: options.contextSize,
      batchSize: options.batchSize,
      sequences: 1,
      threads, // explicit: see maxThreads above
      flashAttention: options.flashAttention === true,
      // F32 KV cache (llama.cpp's default is F16) so an F32 model can be compared exactly.
      experimentalKvCacheKeyType: options.kvType === 'f16' ? 'F16' : 'F32',
      experimentalKvCacheValueType: options.kvType === 'f16' ? 'F16' : 'F32',
      ignoreMemorySafetyChecks: true,
      failedCreationRemedy: false,
    });
    sequence = context.getSequence();
  }
  await sequence.clearHistory();
  return sequence;
}

const GREEDY = { temperature: 0, yieldEogToken: true };

async function greedy({ tokens, n }) {
  const seq = await getSequence();
  const out = [];
  if (n === 0) return out;
  for await (const token of seq.evaluate(tokens, GREEDY)) {
    out.push(token);
    if (out.length >= n) break;
  }
  return out;
}

async function probabilities({ tokens }) {
  const seq = await getSequence();
  // With the greedy sampler alone, llama.cpp hands back every token's raw logit; node-llama-cpp
  // turns them into a softmax over the whole vocabulary.
  let probs = [];
  for await (const item of seq.evaluateWithMetadata(tokens, { probabilities: true }, GREEDY)) {
    probs = new Array(vocabularySize()).fill(0);
    for (const [token, p] of item.probabilities) probs[token] = p;
    break;
  }
  return probs;
}

function tokenize({ text, specialTokens }) {
  return Array.from(model.tokenize(text, specialTokens === true));
}

async function benchmark({ promptTokens, decodeTokens }) {
  const seq = await getSequence();
  // Byte-range ids: present in every byte-level or SentencePiece vocabulary.
  const prompt = Array.from({ length: promptTokens }, (_, i) => (i * 7919 + 13) % 256);
  // Warm-up: map the weights in and let the thread pool start.
  await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, 8));
  await seq.clearHistory();
  const started = process.hrtime.bigint();
  let firstAt = 0n;
  let count = 0;
  for await (const _token of seq.evaluate(prompt, GREEDY)) {
    if (count === 0) firstAt = process.hrtime.bigint();
    count++;
    if (count > decodeTokens) break;
  }
  const ended = process.hrtime.bigint();
  const prefillSeconds = Number(firstAt - started) / 1e9;
  const decodeSeconds = Number(ended - firstAt) / 1e9;
  return {
    prefillTokensPerSec: promptTokens / prefillSeconds,
    decodeTokensPerSec: decodeTokens / decodeSeconds,
    threads: context.currentThreads,
  };
}

function vocabularySize() {
  return model.fileInfo?.metadata?.tokenizer?.ggml?.tokens?.length ?? 0;
}

function info() {
  return {
    vocabularySize: vocabularySize(),
    bos: model.tokens.bos,
    eos: model.tokens.eos,
    trainContextSize: model.trainContextSize,
    threads: context?.currentThreads ?? threads,
  };
}

const handlers = { greedy, probabilities, tokenize, benchmark, info };
let queue = Promise.resolve();
process.on('message', (message) => {
  queue = queue.then(async () => {
    try {
      const handler = handlers[message.op];
      if (!handler) throw new Error(`unknown request ${JSON.stringify(message.op)}`);
      const result = await handler(message);
      process.send({ id: message.id, ok: true, result });
    } catch (error) {
      process.send({ id: message.id, ok: false, error: error?.stack ?? String(error) });
    }
  });
});
process.on('disconnect', () => process.exit(0));
process.send({ ready: true });
