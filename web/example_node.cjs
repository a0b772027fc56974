// The minimal vitstem model run with onnxruntime-web in Node (the WASM build browsers run):
//   node example_node.cjs MODEL.onnx H W   ->  z0 of one mid-grey uint8 frame, as JSON
// Every vitstem model takes input "images" and returns "z0" (batch, tokens, D); this one was exported
// with --preprocess-in-graph, so it takes uint8 frames (batch, H, W, 3).
const fs = require("fs");
const ort = require("onnxruntime-web");

async function main(modelPath, h, w) {
  const session = await ort.InferenceSession.create(fs.readFileSync(modelPath));
  const frame = new Uint8Array(h * w * 3).fill(128);
  const { z0 } = await session.run({ images: new ort.Tensor("uint8", frame, [1, h, w, 3]) });
  console.log(JSON.stringify({ dims: z0.dims, data: Array.from(z0.data) }));
}

main(process.argv[2], Number(process.argv[3]), Number(process.argv[4]));
