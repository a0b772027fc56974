"""The measurements of issue 6 that `vitstem bench` cannot make in its own process.

- export of ViT-B/16 in a fresh process, imports included (target <= 1 s), weights read from a file;
- `import vitstem.runtime` plus session creation in a fresh process (target <= 0.3 s);
- exported file size minus weight bytes (target < 16 KiB);
- int8 (and fp16) export: latency next to fp32 and the floor, and error against fp32.

Fresh-process figures are wall clock around `python -c ...` as a user would run it, with the
bare interpreter and the bare imports timed the same way so the floor of each is visible.

    python benchmarks/extras.py [--spec vit_base_patch16_224] [--repeats 7] [--runs 60] [--edge-python PY]
        [--json OUT]

`--edge-python` also times the runtime's start-up with another interpreter: one of a venv holding only the
wheel's `[edge]` install (numpy, onnxruntime; no editable-install finder, no torch/TF/onnx), as a device has.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import vitstem
from harness.quiet import ForeignLoad, wait_for_quiet
from harness.suite import machine, sample_images
from harness.timing import interleaved_times, summarize

TARGETS = {"export_fresh_process_s": 1.0, "runtime_import_and_session_s": 0.3, "file_overhead_bytes": 16 * 1024}


def wall_clock(code: str, repeats: int, python: str = sys.executable) -> dict:
    """Median and min seconds of `python -c code` in a fresh interpreter, `repeats` times."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([python, "-c", code], check=True, env=env)
        seconds.append(time.perf_counter() - start)
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "repeats": repeats}


def runtime_cases(model_path: Path) -> dict[str, str]:
    """The runtime's start-up, piece by piece: what an edge device's process pays before its first z0."""
    return {"python_startup": "pass", "import_numpy": "import numpy", "import_onnxruntime": "import onnxruntime",
            "import_runtime": "import vitstem.runtime",
            "runtime_import_and_session": f"import vitstem.runtime; vitstem.runtime.load({str(model_path)!r})"}


def fresh_process(spec_name: str, tmp: Path, repeats: int) -> dict:
    spec = vitstem.load_spec(spec_name)
    weights_path = vitstem.save_weights(vitstem.init_weights(spec), tmp / "weights.safetensors", spec)
    model_path = tmp / "model.onnx"
    vitstem.export_onnx(spec, vitstem.load_weights(weights_path, spec), model_path)
    export = (f"import vitstem; s = vitstem.load_spec({spec_name!r}); "
              f"vitstem.export_onnx(s, vitstem.load_weights({str(weights_path)!r}, s), {str(tmp / 'again.onnx')!r})")
    cases = {**runtime_cases(model_path), "import_vitstem": "import vitstem", "import_onnx": "import onnx",
             "export_fresh_process": export}
    return {name: wall_clock(code, repeats) for name, code in cases.items()}


def edge_startup(python: str, model_path: Path, repeats: int) -> dict:
    """The runtime's fresh-process figures with `python`, an interpreter of an `[edge]` install."""
    return {name: wall_clock(code, repeats, python) for name, code in runtime_cases(model_path).items()}


def session_creation(tmp: Path, repeats: int) -> dict:
    """Seconds to create an ORT session (imports done) from the exported file, from ORT's own saved
    optimized model (loaded with optimizations off), and from the .ort format, each at 1 thread."""
    import onnxruntime as ort

    model = tmp / "model.onnx"
    saved = tmp / "model.optimized.onnx"
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # portable: no NCHWc layout
    opts.optimized_model_filepath = str(saved)
    ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    ort_file = tmp / "model.ort"
    from vitstem.export.edge import write_ort_of

    write_ort_of(model.read_bytes(), ort_file)
    cases = {"onnx_level_all": (model, ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
             "onnx_level_basic": (model, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC),
             "saved_optimized_level_off": (saved, ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
             "ort_format": (ort_file, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)}
    out = {}
    for name, (path, level) in cases.items():
        seconds = []
        for _ in range(repeats):
            o = ort.SessionOptions()
            o.graph_optimization_level, o.intra_op_num_threads = level, 1
            start = time.perf_counter()
            ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])
            seconds.append(time.perf_counter() - start)
        out[name] = {"median_s": statistics.median(seconds), "min_s": min(seconds), "file_bytes": path.stat().st_size}
    return out


def file_size(spec_name: str, tmp: Path) -> dict:
    """The exported file against the canonical weights and against its own initializers."""
    import onnx

    spec = vitstem.load_spec(spec_name)
    weights = vitstem.init_weights(spec)
    out = {}
    for precision in PRECISIONS:
        path = vitstem.export_onnx(spec, weights, tmp / f"size_{precision}.onnx", precision=precision)
        model = onnx.load(str(path))
        init_bytes = sum(len(t.raw_data) or onnx.numpy_helper.to_array(t).nbytes for t in model.graph.initializer)
        size = path.stat().st_size
        canonical = sum(int(w.nbytes) for w in weights.values())
        out[precision] = {"file_bytes": size, "canonical_weight_bytes": canonical, "initializer_bytes": init_bytes,
                          "overhead_vs_canonical_bytes": size - canonical, "overhead_vs_initializers_bytes": size - init_bytes,
                          "nodes": [n.op_type for n in model.graph.node]}
    return out


PRECISIONS = ("fp32", "fp16", "int8")


def precisions(spec_name: str, models_dir: Path, batches, threads: int, runs: int, wait_quiet_s: float) -> dict:
    """fp32, fp16 and int8 exports (files written by `file_size`) timed interleaved with the floor;
    their error against fp32. Runs in a child with ORT's global pool (see harness.ort_models)."""
    from harness.ort_models import bare_matmul_model, ort_session, use_global_threads

    use_global_threads(threads)
    spec = vitstem.load_spec(spec_name)
    weights = vitstem.init_weights(spec)
    models = {p: (models_dir / f"size_{p}.onnx").read_bytes() for p in PRECISIONS}
    out = []
    for b in batches:
        images = sample_images(spec, b, seed=7)  # not the int8 calibration data (seeded synthetic)
        exact = vitstem.forward(spec, weights, images, profile="exact").astype(np.float64)
        rows = b * spec.num_patches
        floor = ort_session(bare_matmul_model(rows, spec.patch_dim, spec.embed_dim), threads)
        x = np.random.default_rng(0).standard_normal((rows, spec.patch_dim)).astype(np.float32)
        calls = {"ort_floor_matmul": lambda: floor.run(None, {"x": x})}
        errors = {}
        z32 = None
        for p, data in models.items():
            sess = ort_session(data, threads)
            z = sess.run(None, {"images": images})[0].astype(np.float64)
            z32 = z if p == "fp32" else z32
            diff = z - z32
            cos = (z * z32).sum(-1) / (np.linalg.norm(z, axis=-1) * np.linalg.norm(z32, axis=-1))
            errors[p] = {"max_abs_vs_fp32": float(np.abs(diff).max()), "max_abs_vs_exact": float(np.abs(z - exact).max()),
                         "rms_vs_fp32_over_rms_z": float(np.sqrt((diff ** 2).mean() / (z32 ** 2).mean())),
                         "max_abs_vs_fp32_over_max_abs_z": float(np.abs(diff).max() / np.abs(z32).max()),
                         "min_token_cosine_vs_fp32": float(cos.min())}
            calls[f"ort_vitstem_{p}"] = lambda sess=sess: sess.run(None, {"images": images})
        if wait_quiet_s:
            wait_for_quiet(wait_quiet_s)
        probe = ForeignLoad().start()
        times = interleaved_times(calls, runs, warmup=5)
        foreign = probe.stop()
        floor_fig = summarize(times["ort_floor_matmul"])
        figures = {}
        for name, ts in times.items():
            fig = summarize(ts)
            fig.update(ratio_to_floor=fig["median_ms"] / floor_fig["median_ms"],
                       min_ratio_to_floor=fig["min_ms"] / floor_fig["min_ms"])
            figures[name] = fig
        out.append({"batch": b, "threads": threads, "foreign_cpu_load": foreign, "figures": figures, "errors": errors})
    return {"cases": out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="vit_base_patch16_224")
    ap.add_argument("--repeats", type=int, default=7, help="fresh processes per wall-clock figure")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS")
    ap.add_argument("--edge-python", metavar="PY", help="also time the runtime's start-up with this interpreter")
    ap.add_argument("--json")
    ap.add_argument("--timing-child", metavar="MODELS_DIR", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.timing_child:  # fresh process: the global ORT pool would break quantization's sessions
        result = precisions(args.spec, Path(args.timing_child), args.batch, args.threads, args.runs, args.wait_quiet)
        Path(args.json).write_text(json.dumps(result))
        return 0
    result = {"spec": args.spec, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="vitstem-extras-") as tmp:
        if args.wait_quiet:
            wait_for_quiet(args.wait_quiet)
        probe = ForeignLoad().start()
        result["fresh_process"] = fresh_process(args.spec, Path(tmp), args.repeats)
        if args.edge_python:
            result["edge_install"] = edge_startup(args.edge_python, Path(tmp) / "model.onnx", args.repeats)
        result["fresh_process_foreign_cpu_load"] = probe.stop()
        result["file_size"] = file_size(args.spec, Path(tmp))
        result["session_creation"] = session_creation(Path(tmp), args.repeats)
        child_json = Path(tmp) / "precisions.json"
        subprocess.run([sys.executable, __file__, "--spec", args.spec, "--batch", *map(str, args.batch),
                        "--threads", str(args.threads), "--runs", str(args.runs), "--wait-quiet", str(args.wait_quiet),
                        "--timing-child", tmp, "--json", str(child_json)], check=True)
        result["precisions"] = json.loads(child_json.read_text())
    fp, size = result["fresh_process"], result["file_size"]["fp32"]
    result["targets"] = [
        {"target": "export in a fresh process, imports included (s, median)", "value": fp["export_fresh_process"]["median_s"],
         "limit": TARGETS["export_fresh_process_s"]},
        {"target": "import vitstem.runtime + session creation (s, median)",
         "value": fp["runtime_import_and_session"]["median_s"], "limit": TARGETS["runtime_import_and_session_s"]},
        *([{"target": "the same with the [edge] install's interpreter (s, median)",
            "value": result["edge_install"]["runtime_import_and_session"]["median_s"],
            "limit": TARGETS["runtime_import_and_session_s"]}] if "edge_install" in result else []),
        {"target": "fp32 file bytes - canonical weight bytes", "value": size["overhead_vs_canonical_bytes"],
         "limit": TARGETS["file_overhead_bytes"]},
        {"target": "fp32 file bytes - initializer bytes", "value": size["overhead_vs_initializers_bytes"],
         "limit": TARGETS["file_overhead_bytes"]},
    ]
    for t in result["targets"]:
        t["met"] = t["value"] <= t["limit"]
    for name, fig in result["fresh_process"].items():
        print(f"fresh process {name:28s} median {fig['median_s']:.3f} s  min {fig['min_s']:.3f} s")
    for name, fig in result.get("edge_install", {}).items():
        print(f"edge install  {name:28s} median {fig['median_s']:.3f} s  min {fig['min_s']:.3f} s")
    for name, fig in result["session_creation"].items():
        print(f"session creation {name:25s} median {fig['median_s'] * 1e3:.1f} ms  min {fig['min_s'] * 1e3:.1f} ms")
    for t in result["targets"]:
        print(f"{'met   ' if t['met'] else 'MISSED'} {t['target']}: {t['value']:.3f} (limit {t['limit']})")
    for case in result["precisions"]["cases"]:
        print(f"batch {case['batch']}: " + ", ".join(f"{n} {f['median_ms']:.3f} ms x{f['ratio_to_floor']:.2f}"
                                                   for n, f in case["figures"].items()))
        print("  errors: " + json.dumps(case["errors"]))
    if args.json:
        from vitstem.files import atomic_write_bytes

        atomic_write_bytes(Path(args.json), (json.dumps(result, indent=1, sort_keys=True) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
