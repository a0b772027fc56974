// vitstem in the browser: load a model, feed an image (uint8 frames, preprocessing in the graph),
// show the patch grid and z0, and check the model against its golden vectors.
// State for tests and the curious: window.vitstem = {spec, z0: {dims, data}, verdict}.
"use strict";
ort.env.wasm.numThreads = 1; // threads need a cross-origin-isolated page; one is enough for a stem
const $ = (id) => document.getElementById(id);
const state = (window.vitstem = { spec: null, z0: null, verdict: null, session: null });

async function bytesOf(file) { return new Uint8Array(await file.arrayBuffer()); }

$("model").addEventListener("change", async (e) => {
  const bytes = await bytesOf(e.target.files[0]);
  state.session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  const meta = e.target.files[0].name.endsWith(".onnx") ? tensorProto.readMetadata(bytes) : {};
  state.spec = meta["vitstem.spec"] ? JSON.parse(meta["vitstem.spec"]) : null;
  const options = meta["vitstem.export_options"] ? JSON.parse(meta["vitstem.export_options"]) : {};
  state.options = options;
  $("model-info").textContent = state.spec
    ? `${state.spec.name}: ${state.spec.image_size.join("x")} px, patches ${state.spec.patch_size.join("x")}, ` +
      `D = ${state.spec.embed_dim}, ${options.profile} profile, ${options.precision}, ` +
      `input ${options.preprocess_in_graph ? "uint8 frames (B, H, W, C)" : "float images"}`
    : "loaded (no vitstem metadata: an .ort file or another exporter); the image panel needs the spec";
  state.ready = true;
});

async function showImage(source) {
  const spec = state.spec;
  if (!spec) throw new Error("load a vitstem .onnx model first");
  const [h, w] = spec.image_size, [ph, pw] = spec.patch_size, c = spec.in_channels, scale = 16;
  const work = new OffscreenCanvas(w, h).getContext("2d", { willReadFrequently: true });
  work.drawImage(source, 0, 0, w, h);
  const rgba = work.getImageData(0, 0, w, h, { colorSpace: "srgb" }).data;
  const frame = new Uint8Array(h * w * c);
  for (let i = 0; i < h * w; i++) for (let k = 0; k < c; k++) frame[i * c + k] = rgba[i * 4 + k];
  // the picture, enlarged, with its patch grid
  const pic = $("picture"); pic.width = w * scale; pic.height = h * scale;
  const g = pic.getContext("2d"); g.imageSmoothingEnabled = false;
  g.drawImage(work.canvas, 0, 0, w * scale, h * scale);
  g.strokeStyle = "rgba(255,0,0,.8)";
  for (let x = 0; x <= w; x += pw) { g.beginPath(); g.moveTo(x * scale, 0); g.lineTo(x * scale, h * scale); g.stroke(); }
  for (let y = 0; y <= h; y += ph) { g.beginPath(); g.moveTo(0, y * scale); g.lineTo(w * scale, y * scale); g.stroke(); }
  await runFrame(frame, [1, h, w, c]);
}

async function runFrame(frame, dims) {
  const s = state.session;
  const out = (await s.run({ [s.inputNames[0]]: new ort.Tensor("uint8", frame, dims) }))[s.outputNames[0]];
  state.z0 = { dims: out.dims, data: Array.from(out.data) };
  drawHeatmap(out.data, out.dims);
}

function drawHeatmap(data, dims) {
  const [, tokens, d] = dims;
  let min = Infinity, max = -Infinity, sum = 0, sq = 0;
  for (const v of data) { min = Math.min(min, v); max = Math.max(max, v); sum += v; sq += v * v; }
  const mean = sum / data.length, std = Math.sqrt(Math.max(sq / data.length - mean * mean, 0));
  const cell = Math.max(2, Math.floor(320 / Math.max(tokens, d)));
  const canvas = $("heatmap"); canvas.width = d * cell; canvas.height = tokens * cell;
  const g = canvas.getContext("2d"), span = Math.max(Math.abs(min), Math.abs(max)) || 1;
  for (let t = 0; t < tokens; t++) for (let j = 0; j < d; j++) {
    const v = data[t * d + j] / span; // blue (negative) - white - red (positive)
    const r = v > 0 ? 255 : Math.round(255 * (1 + v)), b = v < 0 ? 255 : Math.round(255 * (1 - v));
    g.fillStyle = `rgb(${r},${Math.round(255 * (1 - Math.abs(v)))},${b})`;
    g.fillRect(j * cell, t * cell, cell, cell);
  }
  $("z0-info").textContent = `z0 shape [${dims.join(", ")}] (batch, tokens, D); ` +
    `min ${min.toPrecision(6)}, max ${max.toPrecision(6)}, mean ${mean.toPrecision(6)}, std ${std.toPrecision(6)}`;
}

$("image").addEventListener("change", async (e) => {
  const bitmap = await createImageBitmap(e.target.files[0], { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  await showImage(bitmap).catch((err) => { $("z0-info").textContent = `error: ${err.message}`; });
});

$("camera").addEventListener("click", async () => {
  const video = $("video");
  video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true });
  await video.play();
  await showImage(video);
  video.srcObject.getTracks().forEach((t) => t.stop());
});

async function checkGolden() {
  const inputFile = $("golden-input").files[0], outputFile = $("golden-output").files[0];
  if (!inputFile || !outputFile || !state.session) return;
  const input = tensorProto.readTensor(await bytesOf(inputFile));
  const expected = tensorProto.readTensor(await bytesOf(outputFile));
  const s = state.session;
  const out = (await s.run({ [s.inputNames[0]]: new ort.Tensor(input.type, input.data, input.dims) }))[s.outputNames[0]];
  let differ = 0, worst = 0;
  const sameShape = out.dims.join() === expected.dims.join();
  if (sameShape) for (let i = 0; i < out.data.length; i++) {
    if (!Object.is(out.data[i], expected.data[i])) { differ++; worst = Math.max(worst, Math.abs(out.data[i] - expected.data[i])); }
  }
  const pass = sameShape && differ === 0;
  state.verdict = { pass, differ, worst, elements: expected.data.length, dims: out.dims };
  const v = $("verdict");
  v.className = pass ? "pass" : "fail";
  v.textContent = !sameShape ? `FAIL: z0 has shape [${out.dims}], the golden output [${expected.dims}]`
    : pass ? `PASS: all ${expected.data.length} elements of z0 bit-identical to the golden output`
    : `FAIL: ${differ} of ${expected.data.length} elements differ (max |d| ${worst.toExponential(3)})`;
}
$("golden-input").addEventListener("change", () => checkGolden().catch(fail));
$("golden-output").addEventListener("change", () => checkGolden().catch(fail));
function fail(err) { const v = $("verdict"); v.className = "fail"; v.textContent = `FAIL: ${err.message}`; }
