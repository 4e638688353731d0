// Child process: loads a GGUF vocab-only with node-llama-cpp (llama.cpp's own tokenizer) and
// tokenizes / detokenizes what it is given. Run in a child because a bad file can abort the process.
// stdin:  {"model": path, "texts": [string], "detokenize": [[id]]}
// stdout: {"tokenizeMs": ms, "tokens": [[id]], "tokensSpecial": [[id]], "pieces": [string], "piecesSpecial": [string]}
//   tokens*: llama_tokenize(add_special=false, parse_special=false/true)
//   pieces*: llama_detokenize(remove_special=false, unparse_special=false/true)
import { getLlama } from 'node-llama-cpp';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1, logLevel: 'error', progressLogs: false });
const model = await llama.loadModel({ modelPath: req.model, vocabOnly: true, gpuLayers: 0 });
const texts = req.texts ?? [];
const ids = req.detokenize ?? [];
const t0 = performance.now();
const tokens = texts.map((t) => Array.from(model.tokenize(t, false)));
const tokenizeMs = performance.now() - t0;
const result = {
  tokenizeMs,
  tokens,
  tokensSpecial: texts.map((t) => Array.from(model.tokenize(t, true))),
  pieces: ids.map((x) => model.detokenize(x, false)),
  piecesSpecial: ids.map((x) => model.detokenize(x, true)),
};
process.stdout.write(JSON.stringify(result));
await model.dispose();
await llama.dispose();
