// Child process: loads GGUFs vocab-only with node-llama-cpp (llama.cpp's own tokenizer) and
// tokenizes / detokenizes what it is given. Run in a child because a bad file can abort the process.
// stdin:  {"jobs": [{"model": path, "texts": [string], "detokenize": [[id]]}]}
// stdout: {"results": [{"error"?: string, "tokenizeMs": ms, "tokens": [[id]], "tokensSpecial": [[id]], "pieces": [string], "piecesSpecial": [string]}]}
//   tokens*: llama_tokenize(add_special=false, parse_special=false/true)
//   pieces*: llama_detokenize(remove_special=false, unparse_special=false/true)
import { getLlama } from 'node-llama-cpp';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1, logLevel: 'error', progressLogs: false });
const results = [];
for (const job of req.jobs) {
  let model;
  try {
    model = await llama.loadModel({ modelPath: job.model, vocabOnly: true, gpuLayers: 0 });
  } catch (e) {
    results.push({ error: String(e?.message ?? e) });
    continue;
  }
  const texts = job.texts ?? [];
  const ids = job.detokenize ?? [];
  const t0 = performance.now();
  const tokens = texts.map((t) => Array.from(model.tokenize(t, false)));
  const tokenizeMs = performance.now() - t0;
  results.push({
    tokenizeMs,
    tokens,
    tokensSpecial: texts.map((t) => Array.from(model.tokenize(t, true))),
    pieces: ids.map((x) => model.detokenize(x, false)),
    piecesSpecial: ids.map((x) => model.detokenize(x, true)),
  });
  await model.dispose();
}
process.stdout.write(JSON.stringify({ results }));
await llama.dispose();
