"""Which patchify + projection each exported graph should take: every graph kind built with each of the
exporter's projections (gather, transpose, conv), timed against its floor in one interleaved run. This is
the measurement behind `vitstem/export/build.py: _projection`.

    .venv/bin/python benchmarks/projections.py [--spec NAME] [--batch 1 8] [--threads 1 2] [--rounds 40]
        [--kinds NAME...] [--json OUT]

Graph kinds: fp32 (dynamic and static batch), fp16, int8 (NCHW input), uint8 NHWC frames with the
preprocessing in the graph, NHWC float32. Floors as in overhead_accounting.py (fp32, fp16, u8*u8 int8 of
the projection's shape). One child process per thread count (ORT's global pool); medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead_accounting as oa  # noqa: E402

PROJECTIONS = ("gather", "transpose", "conv")
# (name, its floor, build_onnx arguments, NHWC spec; "B" = the batch measured)
KINDS = [("fp32", "fp32", {}, False), ("fp32 static batch", "fp32", {"batch": "B"}, False),
         ("fp16", "fp16", {"precision": "fp16"}, False), ("int8", "int8", {"precision": "int8"}, False),
         ("uint8 NHWC, preprocessing in graph", "fp32", {"preprocess_in_graph": True}, False),
         ("fp32 NHWC", "fp32", {}, True)]


def build(spec_name: str, batch: int, kinds=None) -> dict:
    """{(kind, projection): model bytes} of `kinds` (default: all); the Conv only where the graph's input is
    NCHW float or int8."""
    import vitstem
    from vitstem.export.api import build_onnx, model_bytes

    spec = vitstem.load_spec(spec_name)
    weights = vitstem.init_weights(spec, seed=0)
    data = json.loads(spec.to_json())
    data["input"]["layout"] = "NHWC"
    nhwc = vitstem.load_spec(data)
    out = {}
    for kind, _, kwargs, channels_last in KINDS:
        if kinds and kind not in kinds:
            continue
        kwargs = {k: batch if v == "B" else v for k, v in kwargs.items()}
        for projection in PROJECTIONS:
            if projection == "conv" and (channels_last or kwargs.get("preprocess_in_graph")):
                continue
            with oa.forced_projection(projection):
                out[kind, projection] = model_bytes(build_onnx(nhwc if channels_last else spec, weights, **kwargs))
    return out


def measure(spec_name: str, batch: int, threads: int, rounds: int, models: dict) -> list[dict]:
    import vitstem
    from harness.ort_models import ort_session, use_global_threads
    from harness.timing import interleaved_times

    use_global_threads(threads)
    spec = vitstem.load_spec(spec_name)
    rows, k, d = batch * spec.num_patches, spec.patch_dim, spec.embed_dim
    pixels = np.random.default_rng(2).integers(0, 256, (batch, spec.in_channels, *spec.image_size)).astype(np.float32)
    calls = {}
    for kind in ("fp32", "fp16", "int8"):
        sess, x = ort_session(oa.floor_model(rows, k, d, kind), threads), oa.floor_input(rows, k, kind)
        calls[f"floor {kind}"] = lambda sess=sess, x=x: sess.run(None, {"x": x})
    for (kind, projection), model in models.items():
        sess, x = ort_session(model, threads), oa.graph_input(model, pixels)
        calls[f"{kind} | {projection}"] = lambda sess=sess, x=x: sess.run(None, {"images": x})
    times = {name: statistics.median(t) for name, t in interleaved_times(calls, rounds, 5).items()}
    floors = {kind: floor for kind, floor, _, _ in KINDS}
    return [dict(graph=kind, projection=projection, batch=batch, threads=threads, median_ms=times[f"{kind} | {projection}"] * 1e3,
                 floor_ms=times[f"floor {floors[kind]}"] * 1e3,
                 ratio=times[f"{kind} | {projection}"] / times[f"floor {floors[kind]}"])
            for kind, projection in models]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="vit_base_patch16_224")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--kinds", nargs="+", choices=[k[0] for k in KINDS], help="graph kinds to time (default: all)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        # built first: int8 calibration makes its own sessions
        models = {b: build(args.spec, b, args.kinds) for b in args.batch}
        rows = [r for b in args.batch for r in measure(args.spec, b, args.child, args.rounds, models[b])]
        print(json.dumps(rows))
        return 0
    results = {"host": oa.cpu_model(), "cpus": __import__("os").cpu_count(), "spec": args.spec, "rounds": args.rounds,
               "rows": []}
    for threads in args.threads:
        cmd = [sys.executable, __file__, "--child", str(threads), "--spec", args.spec, "--rounds", str(args.rounds),
               "--batch", *map(str, args.batch), *(["--kinds", *args.kinds] if args.kinds else [])]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"child for {threads} thread(s) failed:\n{done.stderr}")
        results["rows"] += json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{results['host']}, {results['cpus']} CPUs; x floor (median of {args.rounds} interleaved rounds)")
    for (graph, batch, threads) in dict.fromkeys((r["graph"], r["batch"], r["threads"]) for r in results["rows"]):
        cells = [r for r in results["rows"] if (r["graph"], r["batch"], r["threads"]) == (graph, batch, threads)]
        best = min(cells, key=lambda r: r["ratio"])["projection"]
        print(f"  {graph:36s} b{batch} {threads}t  " + "  ".join(
            f"{r['projection']} {r['ratio']:.3f}{'*' if r['projection'] == best else ' '}" for r in cells))
    if args.json:
        from vitstem.files import atomic_write_bytes

        atomic_write_bytes(Path(args.json), (json.dumps(results, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
