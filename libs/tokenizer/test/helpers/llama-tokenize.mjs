// Child process: loads a GGUF vocab-only with node-llama-cpp (llama.cpp's own tokenizer) and
// tokenizes / detokenizes what it is given. Run in a child because a bad file can abort the process.
// stdin: {"model": path, "texts": [string], "parseSpecial": bool, "detokenize": [[id]]}
// stdout: {"tokens": [[id]], "pieces": [string], "bos": id|null, "eos": id|null}
import { getLlama } from 'node-llama-cpp';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1, logLevel: 'error', progressLogs: false });
const model = await llama.loadModel({ modelPath: req.model, vocabOnly: true, gpuLayers: 0 });
const tokens = (req.texts ?? []).map((t) => Array.from(model.tokenize(t, req.parseSpecial === true)));
const pieces = (req.detokenize ?? []).map((ids) => model.detokenize(ids, req.parseSpecial === true));
process.stdout.write(JSON.stringify({ tokens, pieces, bos: model.tokens.bos ?? null, eos: model.tokens.eos ?? null }));
await model.dispose();
await llama.dispose();
