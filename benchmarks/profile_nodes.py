"""Per-node kernel times (ORT's own profiler) of the graph variants: where the time over the MatMul goes.

    python benchmarks/profile_nodes.py [--spec NAME] [--batch 1] [--threads 1] [--runs 200] VARIANT...
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).parent))
import graph_variants as gv  # noqa: E402

import vitstem  # noqa: E402

from harness.ort_models import session_options  # noqa: E402


def node_times(model, feed, threads: int, runs: int) -> dict[str, float]:
    """Median microseconds per node (by op type, in graph order) over `runs` profiled runs."""
    with tempfile.TemporaryDirectory() as tmp:
        options = session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "profile")
        sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_node = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node[f"{e['name'][:-len('_kernel_time')]} ({e['args'].get('op_name', '?')})"].append(e["dur"])
    return {name: float(np.median(v[runs // 5:])) for name, v in per_node.items()}  # drop warm-up fifth


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+", help="names of graph_variants.cases (e.g. export_default conv_cl_concat)")
    ap.add_argument("--spec", default="vit_base_patch16_224", help="spec file or preset name")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args(argv)
    spec = vitstem.load_spec(args.spec)
    cases = gv.cases(spec, vitstem.init_weights(spec), args.batch)
    for name in args.variants:
        model, feed = cases[name][:2]
        times = node_times(model, feed, args.threads, args.runs)
        total = sum(times.values())
        matmul = sum(t for n, t in times.items() if "MatMul" in n or "Gemm" in n or "Conv" in n)
        print(f"{name}: total {total:.0f} us, product {matmul:.0f} us, rest {total - matmul:.0f} us "
              f"({(total - matmul) / matmul:.1%} of the product)")
        for n, t in times.items():
            print(f"    {t:8.1f} us  {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
