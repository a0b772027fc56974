"""Whole ViT-B/16 at 224: vitstem.deploy.export_model vs torch.onnx.export(dynamo=True) of the same timm model.

Measures, in one process, with the model built once (random weights, seed 0, no download):
- export time of each (interleaved: vitstem, dynamo, vitstem, dynamo; the first call also pays
  torch.onnx's lazy imports, so the second of each is the comparable figure);
- ONNX Runtime latency of both files, batch 1 (--batch 1 8 for more), same threads, interleaved rounds, medians;
- max |output - PyTorch| of both;
- with --profile, ORT's profiler on both files: kernel time per op type, summed over a run (the
  whole-model accounting: where the encoder's time goes in each file, and what the stem costs).

Before the timed exports both exporters run once on a tiny timm model, so neither pays torch.onnx's
lazy imports inside the timing.

    .venv/bin/python benchmarks/whole_model.py --threads 2 --runs 30 --json benchmarks/results/whole_model.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
                platform.processor())


def export_dynamo(model, x, path):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=True, input_names=["x"], output_names=["output"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)


def session(path, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def op_type_profiles(paths: dict, feeds: dict, threads: int, runs: int = 15) -> dict:
    """{file: {op type: median over runs of the summed kernel µs of that type, "_nodes": all kernels}} from
    ORT's profiler, the files' profiled sessions run alternately (as the timing is interleaved)."""
    import collections
    import onnxruntime as ort

    sessions = {}
    for k, path in paths.items():
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tempfile.mkdtemp(prefix="vitstem-prof-")) / "p")
        sessions[k] = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    for r in range(runs):
        for k in (list(sessions) if r % 2 == 0 else list(sessions)[::-1]):
            sessions[k].run(None, feeds[k])
    out = {}
    for k, s in sessions.items():
        per_run, run = [], collections.Counter()
        for e in json.loads(Path(s.end_profiling()).read_text()):
            if e.get("cat") == "Session" and e["name"] == "model_run":
                per_run.append(run)
                run = collections.Counter()
            elif e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                run[e["args"]["op_name"]] += e["dur"]
        per_run = per_run[len(per_run) // 5:]  # the first fifth warms up
        ops = sorted({op for r in per_run for op in r})
        out[k] = {op: statistics.median(r[op] for r in per_run) for op in ops}
        out[k]["_nodes"] = statistics.median(sum(r.values()) for r in per_run)
    return out


def warm_up_exporters() -> None:
    """Both export paths once on a tiny timm ViT: torch.onnx's lazy imports are paid here, not in the timing."""
    import timm
    import torch

    from vitstem.deploy import export_model

    tiny = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=1, img_size=32).eval()
    with tempfile.TemporaryDirectory() as tmp:
        export_model(tiny, Path(tmp) / "v.onnx")
        export_dynamo(tiny, torch.randn(1, 3, 32, 32), Path(tmp) / "d.onnx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--export-rounds", type=int, default=2)
    parser.add_argument("--arch", default="vit_base_patch16_224")
    parser.add_argument("--profile", action="store_true", help="per-op-type kernel time of both files (ORT profiler)")
    parser.add_argument("--json")
    args = parser.parse_args()

    import numpy as np
    import timm
    import torch

    from vitstem.deploy import export_model

    warm_up_exporters()
    torch.manual_seed(0)
    model = timm.create_model(args.arch, pretrained=False).eval()
    tmp = Path(tempfile.mkdtemp(prefix="vitstem-whole-"))
    paths = {"vitstem": tmp / "vitstem.onnx", "dynamo": tmp / "dynamo.onnx"}
    x = torch.randn(1, 3, 224, 224)
    export_s = {"vitstem": [], "dynamo": []}
    for _ in range(args.export_rounds):
        t = time.perf_counter()
        export_model(model, paths["vitstem"])
        export_s["vitstem"].append(time.perf_counter() - t)
        t = time.perf_counter()
        export_dynamo(model, x, paths["dynamo"])
        export_s["dynamo"].append(time.perf_counter() - t)
        print("export s:", {k: [round(v, 2) for v in vs] for k, vs in export_s.items()}, flush=True)

    sessions = {k: session(p, args.threads) for k, p in paths.items()}
    rng = np.random.default_rng(0)
    result = {"arch": args.arch, "cpu": cpu_model(), "threads": args.threads, "runs": args.runs,
              "export_s": export_s, "load_avg_1min_at_start": os.getloadavg()[0],
              "versions": {"torch": torch.__version__, "timm": timm.__version__,
                           "onnxruntime": __import__("onnxruntime").__version__}, "latency_ms": {}, "max_abs_diff": {}}
    for batch in args.batch:
        pixels = rng.integers(0, 256, (batch, 3, 224, 224)).astype(np.float32)
        normalised = (pixels / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
        feeds = {"vitstem": {"images": pixels}, "dynamo": {"x": normalised}}
        with torch.no_grad():
            ref = model(torch.from_numpy(normalised)).numpy()
        for k, s in sessions.items():
            result["max_abs_diff"][f"{k}_b{batch}"] = float(np.abs(s.run(None, feeds[k])[0] - ref).max())
        times = {k: [] for k in sessions}
        order = list(sessions)
        for _ in range(3):  # warm-up
            for k in order:
                sessions[k].run(None, feeds[k])
        for r in range(args.runs):
            for k in (order if r % 2 == 0 else order[::-1]):
                t = time.perf_counter()
                sessions[k].run(None, feeds[k])
                times[k].append(time.perf_counter() - t)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        paired = statistics.median(a / b for a, b in zip(times["vitstem"], times["dynamo"]))
        result["latency_ms"][f"b{batch}"] = {**med, "ratio_vitstem_to_dynamo": med["vitstem"] / med["dynamo"],
                                             "median_of_paired_ratios": paired}
        if args.profile:
            result.setdefault("kernel_us_by_op_type", {})[f"b{batch}"] = op_type_profiles(paths, feeds, args.threads)
        print(f"batch {batch}:", result["latency_ms"][f"b{batch}"], flush=True)
    result["load_avg_1min_at_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
