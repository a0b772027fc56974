"""OpenVINO CPU on the default one-size graph (Gather -> MatMul) against the Conv-projection graph it replaced:
the same spec and weights, batch 1 and 8, 1 and 2 inference threads, interleaved, medians.

    .venv/bin/python benchmarks/openvino_projection.py [--spec vit_base_patch16_224] [--runs 40] [--json OUT]

(onnxruntime-web: `benchmarks/ort_web_latency.py --with-conv`; ONNX Runtime CPU: `benchmarks/projections.py`.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead_accounting import cpu_model, forced_projection  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="vit_base_patch16_224")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    import openvino as ov

    import vitstem
    from vitstem.export import export_onnx

    spec = vitstem.load_spec(args.spec)
    weights = vitstem.init_weights(spec, seed=0)
    core, rows = ov.Core(), []
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"default (Gather)": export_onnx(spec, weights, Path(tmp) / "gather.onnx")}
        with forced_projection("conv"):
            paths["Conv"] = export_onnx(spec, weights, Path(tmp) / "conv.onnx")
        for threads in (1, 2):
            config = {"INFERENCE_NUM_THREADS": str(threads), "PERFORMANCE_HINT": "LATENCY"}
            requests = {name: core.compile_model(core.read_model(str(path)), "CPU", config).create_infer_request()
                        for name, path in paths.items()}
            for batch in (1, 8):
                x = np.random.default_rng(0).integers(0, 256, (batch, spec.in_channels, *spec.image_size)).astype(np.float32)
                times = {name: [] for name in requests}
                for round_ in range(args.runs + 5):
                    for name, request in requests.items():
                        tic = time.perf_counter()
                        request.infer({0: x})
                        if round_ >= 5:
                            times[name].append(time.perf_counter() - tic)
                medians = {name: 1e3 * statistics.median(t) for name, t in times.items()}
                rows.append({"threads": threads, "batch": batch, "median_ms": medians})
                print(f"{threads} thread(s), batch {batch}: " + ", ".join(f"{n} {ms:.2f} ms" for n, ms in medians.items()))
    if args.json:
        from vitstem.files import atomic_write_bytes

        result = {"host": cpu_model(), "spec": spec.name, "openvino": ov.__version__, "runs": args.runs, "rows": rows}
        atomic_write_bytes(Path(args.json), (json.dumps(result, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
