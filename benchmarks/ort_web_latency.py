"""onnxruntime-web (WASM SIMD, in Node) against Python onnxruntime (CPU build), same exported model:
ViT-B/16 224, fast profile, fp32, batch 1, 1 and 2 threads. Medians of `--runs` runs after warm-up,
each timed inside its own runtime (Node: process.hrtime around session.run; Python: perf_counter
around session.run), so neither side counts the other's file transfer.

    python benchmarks/ort_web_latency.py [--spec vit_base_patch16_224] [--runs 30] [--json OUT] [--with-conv]

--with-conv also times, in onnxruntime-web, the graph with the Conv projection that graphs for several sizes
take (the default one-size graph gathers its patches; see vitstem/export/build.py, _projection).

WASM threads in Node run on worker threads; the WASM build's SIMD kernels are the ones browsers use.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import onnxruntime as ort

from vitstem import export_onnx
from harness.suite import machine, sample_images
from vitstem.conformance.engines.ort_web import NodeRunner
from vitstem.spec import init_weights, load_spec


def python_ort(path: Path, images, threads: int, warmup: int, runs: int) -> list[float]:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"images": images}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        tic = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - tic)
    return times


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="vit_base_patch16_224")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--with-conv", action="store_true", help="also time the Conv-projection graph in onnxruntime-web")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec)
    images = sample_images(spec, 1)
    result = {"spec": spec.name, "batch": 1, "profile": "fast", "precision": "fp32", "runs": args.runs,
              "machine": machine(), "median_ms": {}}
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(spec, init_weights(spec), Path(tmp) / "stem.onnx")
        conv_path = None
        if args.with_conv:
            from overhead_accounting import forced_projection

            with forced_projection("conv"):
                conv_path = export_onnx(spec, init_weights(spec), Path(tmp) / "stem_conv.onnx")
        for threads in (1, 2):
            times = python_ort(path, images, threads, args.warmup, args.runs)
            result["median_ms"][f"onnxruntime-cpu-python {threads} thread(s)"] = 1e3 * statistics.median(times)
            runner = NodeRunner(threads)
            try:
                times = runner.time(path, images, warmup=args.warmup, repeat=args.runs)
                if conv_path is not None:
                    conv_times = runner.time(conv_path, images, warmup=args.warmup, repeat=args.runs)
                    result["median_ms"][f"onnxruntime-web-wasm-simd, Conv graph, {threads} thread(s)"] = \
                        1e3 * statistics.median(conv_times)
            finally:
                runner.close()
            result["median_ms"][f"onnxruntime-web-wasm-simd {threads} thread(s)"] = 1e3 * statistics.median(times)
    result["machine"]["load_average_1m_after"] = machine()["load_average_1m"]
    for name, ms in result["median_ms"].items():
        print(f"{name:45s} {ms:8.2f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
