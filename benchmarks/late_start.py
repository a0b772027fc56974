"""Why the exporter gathers patches instead of transposing them: a node's cost alone vs in front of the MatMul.

ONNX Runtime runs Transpose on one thread and Gather on all of them. Measured on an AVX2 AMD EPYC, 2 threads
(2026-12-03): timed alone, the patchify Transpose of ViT-B/16's image cost 142 µs and the Gather 100 µs; in
front of the parallel MatMul, 197 µs and 85 µs (the MatMul's parallel section starts late after a long
single-threaded node). With 1 thread both cost less in front of the MatMul than alone. Each graph is one ORT session on ORT's global pool; "alone"
graphs are compared with a bare Identity of the same output size (what every session.run pays anyway).

    .venv/bin/python benchmarks/late_start.py [--threads 2] [--rounds 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

C, H, W, P, D = 3, 224, 224, 16, 768
GH, GW, K = H // P, W // P, C * P * P
N = GH * GW


def _model(nodes, inits, in_shape, out_shape):
    graph = helper.make_graph(nodes, "late_start", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              [numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def models() -> dict:
    """name -> (model, input shape): the floor MatMul, each patchify alone and followed by the MatMul, Identity."""
    from vitstem.export.patches import pixel_runs
    from vitstem.spec.vocabulary import Layout

    kernel = (np.random.default_rng(0).standard_normal((K, D)) / np.sqrt(K)).astype(np.float32)
    first, offsets = pixel_runs(Layout.NCHW, C, (P, P), (GH, GW))
    patchify = {
        "transpose": ([helper.make_node("Reshape", ["x", "s6"], ["a"]),
                       helper.make_node("Transpose", ["a"], ["b"], perm=[0, 2, 4, 1, 3, 5]),
                       helper.make_node("Reshape", ["b", "nk"], ["p"])],
                      {"s6": np.array([1, C, GH, P, GW, P], np.int64), "nk": np.array([N, K], np.int64)}),
        "gather": ([helper.make_node("Reshape", ["x", "runs"], ["a"]),
                    helper.make_node("Gather", ["a", "index"], ["b"], axis=0),
                    helper.make_node("Reshape", ["b", "nk"], ["p"])],
                   {"runs": np.array([-1, P], np.int64), "index": (first + offsets).astype(np.int64),
                    "nk": np.array([N, K], np.int64)}),
    }
    image = [1, C, H, W]
    out = {"floor MatMul": (_model([helper.make_node("MatMul", ["x", "E"], ["y"])], {"E": kernel}, [N, K], [N, D]), [N, K]),
           "Identity": (_model([helper.make_node("Identity", ["x"], ["y"])], {}, [N, K], [N, K]), [N, K])}
    for name, (nodes, inits) in patchify.items():
        alone = nodes[:-1] + [helper.make_node("Reshape", [nodes[-1].input[0], "nk"], ["y"])]
        out[f"{name} alone"] = (_model(alone, inits, image, [N, K]), image)
        out[f"{name} + MatMul"] = (_model(nodes + [helper.make_node("MatMul", ["p", "E"], ["y"])], {**inits, "E": kernel},
                                          image, [N, D]), image)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=100)
    args = ap.parse_args(argv)
    from harness.ort_models import ort_session, use_global_threads
    from harness.timing import interleaved_times

    use_global_threads(args.threads)
    rng, calls = np.random.default_rng(1), {}
    for name, (model, shape) in models().items():
        sess, x = ort_session(model, args.threads), rng.standard_normal(shape).astype(np.float32)
        calls[name] = lambda sess=sess, x=x: sess.run(None, {"x": x})
    us = {k: statistics.median(v) * 1e6 for k, v in interleaved_times(calls, args.rounds, 5).items()}
    print(f"{args.threads} thread(s), medians of {args.rounds} interleaved rounds (µs)")
    for name in ("transpose", "gather"):
        alone = us[f"{name} alone"] - us["Identity"]
        paired = us[f"{name} + MatMul"] - us["floor MatMul"]
        print(f"  {name:9s} alone {alone:6.0f}   in front of the MatMul {paired:6.0f}   difference {paired - alone:+6.0f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, __import__("os").path.dirname(__file__))
    sys.exit(main())
