// Child process of @baton/llama-ref: runs llama.cpp through node-llama-cpp and answers requests
// from the parent over the IPC channel. It is a separate process because a model llama.cpp cannot
// load may abort the whole process (GGML_ASSERT) instead of throwing.
//
// argv[2]: JSON { threads }.
// In:  { id, op: 'load' | 'greedy' | 'probabilities' | 'tokenize' | 'benchmark', model: {...}, ...args }
//      where model = { modelPath, vocabOnly, contextSize, batchSize, kvType, flashAttention }.
// Out: { ready: true } once, then { id, ok: true, result } | { id, ok: false, error } per request.
// One model is loaded at a time; a request for another model disposes the current one first.
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';

const { threads } = JSON.parse(process.argv[2]);

const llama = await getLlama({
  build: 'never', // never compile llama.cpp from source: use the prebuilt binary
  gpu: false, // CPU only: the reference must be the CPU path
  usePrebuiltBinaries: true,
  skipDownload: true,
  progressLogs: false,
  maxThreads: threads, // its default is 4 threads, ~100× slower on a 2-core machine
  logLevel: LlamaLogLevel.error,
  logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message}\n`),
});

/** { modelKey, model, contextKey?, context?, sequence? } */
let current;

async function getModel(spec) {
  const modelKey = JSON.stringify([spec.modelPath, spec.vocabOnly === true]);
  if (current?.modelKey !== modelKey) {
    if (current) {
      await current.context?.dispose();
      await current.model.dispose();
      current = undefined;
    }
    const model = await llama.loadModel({ modelPath: spec.modelPath, gpuLayers: 0, vocabOnly: spec.vocabOnly === true, useMmap: true });
    current = { modelKey, model };
  }
  return current.model;
}

async function getSequence(spec) {
  const model = await getModel(spec);
  const contextKey = JSON.stringify([spec.contextSize, spec.batchSize, spec.kvType, spec.flashAttention]);
  if (current.contextKey !== contextKey) {
    await current.context?.dispose();
    const kv = spec.kvType === 'f16' ? 'F16' : 'F32';
    current.context = await model.createContext({
      contextSize: spec.contextSize,
      batchSize: spec.batchSize,
      sequences: 1,
      threads, // explicit: see maxThreads above
      flashAttention: spec.flashAttention === true,
      // An F32 KV cache (llama.cpp's default is F16) so an F32 model can be compared exactly.
      experimentalKvCacheKeyType: kv,
      experimentalKvCacheValueType: kv,
      ignoreMemorySafetyChecks: true,
      failedCreationRemedy: false,
    });
    current.contextKey = contextKey;
    current.sequence = current.context.getSequence();
  }
  await current.sequence.clearHistory();
  return current.sequence;
}

function vocabularySize(model) {
  return model.fileInfo?.metadata?.tokenizer?.ggml?.tokens?.length ?? 0;
}

// Greedy sampling only; keep going past end-of-generation tokens so exactly n come back.
const GREEDY = { temperature: 0, yieldEogToken: true };

const handlers = {
  async load({ model }) {
    const m = await getModel(model);
    return { vocabularySize: vocabularySize(m), trainContextSize: m.trainContextSize, bos: m.tokens.bos, eos: m.tokens.eos };
  },
  async greedy({ model, tokens, n }) {
    const seq = await getSequence(model);
    const out = [];
    if (n === 0) return out;
    for await (const token of seq.evaluate(tokens, GREEDY)) {
      out.push(token);
      if (out.length >= n) break;
    }
    return out;
  },
  async probabilities({ model, tokens }) {
    const seq = await getSequence(model);
    // With the greedy sampler alone, llama.cpp leaves every token's raw logit in place and
    // node-llama-cpp softmaxes them over the whole vocabulary.
    let probs = [];
    for await (const item of seq.evaluateWithMetadata(tokens, { probabilities: true }, GREEDY)) {
      probs = new Array(vocabularySize(current.model)).fill(0);
      for (const [token, p] of item.probabilities) probs[token] = p;
      break;
    }
    return probs;
  },
  async tokenize({ model, text, specialTokens }) {
    const m = await getModel(model);
    return Array.from(m.tokenize(text, specialTokens === true));
  },
  async benchmark({ model, promptTokens, decodeTokens }) {
    const seq = await getSequence(model);
    // Byte-range ids: present in every byte-level or SentencePiece vocabulary.
    const prompt = Array.from({ length: promptTokens }, (_, i) => (i * 7919 + 13) % 256);
    // Warm-up: fault the weights in and start the thread pool.
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
    return {
      prefillTokensPerSec: promptTokens / (Number(firstAt - started) / 1e9),
      decodeTokensPerSec: decodeTokens / (Number(ended - firstAt) / 1e9),
      threads: current.context.currentThreads,
    };
  },
};

let queue = Promise.resolve();
process.on('message', (message) => {
  queue = queue.then(async () => {
    try {
      const handler = handlers[message.op];
      if (!handler) throw new Error(`unknown request ${JSON.stringify(message.op)}`);
      process.send({ id: message.id, ok: true, result: await handler(message) });
    } catch (error) {
      process.send({ id: message.id, ok: false, error: error?.message ?? String(error) });
    }
  });
});
process.on('disconnect', () => process.exit(0));
process.send({ ready: true });
