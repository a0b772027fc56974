// vitstem's onnxruntime-web runner: ONNX / ORT-format models on the WASM backend, in Node.
//
//   node ort_web_runner.cjs NODE_MODULES_DIR [THREADS]
//
// Reads one JSON request per line on stdin, answers one JSON line on stdout:
//   {"load": MODEL_PATH}                               -> {"ok": true, "inputs": [...], "outputs": [...]}
//   {"time": MODEL_PATH, "input", "dtype", "dims", "warmup": N, "repeat": N} -> {"ok": true, "seconds": [...]}
//   {"run": MODEL_PATH, "input": RAW_IN, "dtype": "float32"|"float16"|"uint8", "dims": [...],
//    "output": RAW_OUT}                                 -> {"ok": true, "dtype": ..., "dims": [...]}
// Tensors travel as raw little-endian files (float16 as its 16-bit patterns). Any failure answers
// {"ok": false, "error": "..."} and the runner keeps serving.
"use strict";
const fs = require("fs");
const path = require("path");
const readline = require("readline");
const { createRequire } = require("module");

const modulesDir = process.argv[2];
const ort = createRequire(path.join(path.resolve(modulesDir), "noop.js"))("onnxruntime-web");
ort.env.wasm.numThreads = Number(process.argv[3] || 1); // fixed when the WASM module starts
ort.env.logLevel = "error";

const ARRAYS = { float32: Float32Array, float16: Uint16Array, uint8: Uint8Array, float64: Float64Array };
const sessions = new Map(); // model path -> session

function view(dtype, bytes) {
  const Kind = ARRAYS[dtype];
  if (!Kind) throw new Error(`unsupported tensor type ${dtype}`);
  // A Buffer may share a pooled ArrayBuffer: build the view from (buffer, byteOffset, length).
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return new Kind(copy.buffer, 0, bytes.length / Kind.BYTES_PER_ELEMENT);
}

async function session(model) {
  if (!sessions.has(model)) {
    const bytes = fs.readFileSync(model);
    sessions.set(model, await ort.InferenceSession.create(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length),
      { executionProviders: ["wasm"], graphOptimizationLevel: "all" }));
  }
  return sessions.get(model);
}

async function handle(req) {
  if (req.load !== undefined) {
    const s = await session(req.load);
    return { inputs: s.inputNames, outputs: s.outputNames };
  }
  if (req.run !== undefined) {
    const s = await session(req.run);
    const data = view(req.dtype, fs.readFileSync(req.input));
    const feeds = { [s.inputNames[0]]: new ort.Tensor(req.dtype, data, req.dims) };
    const out = (await s.run(feeds))[s.outputNames[0]];
    const bytes = Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength);
    fs.writeFileSync(req.output, bytes);
    return { dtype: out.type, dims: out.dims };
  }
  if (req.time !== undefined) { // latency: `repeat` runs after `warmup`, seconds per run
    const s = await session(req.time);
    const data = view(req.dtype, fs.readFileSync(req.input));
    const feeds = { [s.inputNames[0]]: new ort.Tensor(req.dtype, data, req.dims) };
    for (let i = 0; i < (req.warmup || 1); i++) await s.run(feeds);
    const times = [];
    for (let i = 0; i < req.repeat; i++) {
      const t0 = process.hrtime.bigint();
      await s.run(feeds);
      times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    return { seconds: times };
  }
  if (req.close !== undefined) {
    const s = sessions.get(req.close);
    if (s) { await s.release(); sessions.delete(req.close); }
    return {};
  }
  throw new Error(`unknown request ${JSON.stringify(Object.keys(req))}`);
}

const lines = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on("line", (line) => {
  queue = queue.then(async () => {
    let answer;
    try {
      answer = { ok: true, ...(await handle(JSON.parse(line))) };
    } catch (err) {
      answer = { ok: false, error: String((err && err.message) || err).split("\n")[0] };
    }
    process.stdout.write(JSON.stringify(answer) + "\n");
  });
});
lines.on("close", () => queue.then(() => process.exit(0)));
