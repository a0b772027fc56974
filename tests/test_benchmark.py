"""The benchmark harness: every figure and ratio lands in the JSON, each engine's z0 is checked,
the interleaving is fair, and the floor is the product it claims to be. No timed assertions."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest

import vitstem
from vitstem.benchmark_cli import load_harness
from vitstem.cli import main

load_harness()  # benchmarks/harness of this checkout, importable as `harness`
from harness.candidates import CANDIDATES, FLOOR  # noqa: E402
from harness.timing import interleaved_times, summarize  # noqa: E402

# Small, and expressible by every peer (timm has no distillation token): cls + registers, a
# learned table covering the prefix, preprocessing on, a non-square patch and grid.
TINY = {"spec_version": 1, "name": "bench_tiny", "image_size": [12, 16], "in_channels": 3, "patch_size": [4, 2],
        "embed_dim": 8, "prefix": {"class_token": True, "register_tokens": 2},
        "position_embedding": {"kind": "learned", "covers_prefix": True},
        "input": {"layout": "NCHW", "preprocess": {"scale": 1 / 255, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.3, 0.25]}},
        "resample": {"policy": "timm"}}


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    spec_path, out = tmp / "tiny.json", tmp / "bench.json"
    spec_path.write_text(json.dumps(TINY))
    assert main(["bench", str(spec_path), "--batch", "1", "3", "--threads", "1", "--runs", "3", "--warmup", "1",
                 "--json", str(out), "--quiet"]) == 0
    return json.loads(out.read_text())


@pytest.mark.slow
def test_every_candidate_has_every_figure(bench_json):
    assert bench_json["spec"] == "bench_tiny"
    assert bench_json["spec_digest"] == vitstem.load_spec(TINY).digest()
    assert bench_json["runs"] == 3 and bench_json["warmup"] == 1
    assert {"cpu", "logical_cpus", "os", "python"} <= set(bench_json["machine"])
    assert [(c["batch"], c["threads"]) for c in bench_json["cases"]] == [(1, 1), (3, 1)]
    ops = bench_json["graph_ops"]  # which ONNX graphs were timed
    assert set(ops) == {"ort_vitstem", "ort_vitstem_static", "ort_timm_dynamo"}
    assert all(isinstance(op, str) for graph in ops.values() for op in graph) and all(ops.values())
    for case in bench_json["cases"]:
        assert case["unavailable"] == {}
        assert case["foreign_cpu_load"] is None or case["foreign_cpu_load"] >= 0
        assert set(case["figures"]) == {c.name for c in CANDIDATES}
        floor = case["figures"][FLOOR]
        assert floor["ratio_to_floor"] == 1.0 and floor["min_ratio_to_floor"] == 1.0
        for name, fig in case["figures"].items():
            assert fig["runs"] == 3
            assert 0 < fig["min_ms"] <= fig["q1_ms"] <= fig["median_ms"] <= fig["q3_ms"]
            assert fig["ratio_to_floor"] == pytest.approx(fig["median_ms"] / floor["median_ms"], rel=1e-12)
            assert fig["min_ratio_to_floor"] == pytest.approx(fig["min_ms"] / floor["min_ms"], rel=1e-12)
            assert fig["cpu_median_ms"] > 0
            assert fig["cpu_ratio_to_floor"] == pytest.approx(fig["cpu_median_ms"] / floor["cpu_median_ms"], rel=1e-12)
            if name != FLOOR:  # every engine's z0 was compared with the exact reference before timing
                assert fig["max_abs_diff_vs_exact"] < 1e-5
                assert fig["within_fast_bound"] is True


@pytest.mark.slow
def test_targets_are_the_ratios_of_the_figures(bench_json):
    by_name = {t["target"]: t for t in bench_json["targets"]}
    for case in bench_json["cases"]:
        figs, b = case["figures"], case["batch"]
        for ours, peer in (("torch_vitstem", "torch_timm"), ("tf_vitstem", "tf_handwritten")):
            t = by_name[f"{ours} / {peer} at batch {b}, 1 threads"]
            assert t["value"] == pytest.approx(figs[ours]["median_ms"] / figs[peer]["median_ms"], rel=1e-12)
            assert t["met"] == (t["value"] <= 1.0)
    # The graph targets are defined for ViT-B/16 at 2 threads only.
    assert not any(t["target"].startswith("ort_vitstem /") for t in bench_json["targets"])


def test_interleaving_groups_rotates_and_warms_up():
    calls = []
    candidates = {n: (lambda n=n: calls.append(n)) for n in ("a1", "a2", "b1", "c1")}
    groups = {"a1": "A", "a2": "A", "b1": "B", "c1": "C"}
    times = interleaved_times(candidates, runs=4, warmup=2, groups=groups)
    assert {n: len(t) for n, t in times.items()} == {"a1": 4, "a2": 4, "b1": 4, "c1": 4}
    rounds = [calls[i:i + 4] for i in range(0, len(calls), 4)]
    assert len(rounds) == 6 and all(sorted(r) == ["a1", "a2", "b1", "c1"] for r in rounds)
    for r in rounds:  # a group's members run back to back
        i = r.index("a1")
        assert abs(r.index("a2") - i) == 1
    assert {groups[r[0]] for r in rounds} == {"A", "B", "C"}  # every group leads some round
    assert {r.index("a1") < r.index("a2") for r in rounds} == {True, False}  # order within a group rotates too


def test_summarize_matches_statistics():
    seconds = [0.004, 0.001, 0.003, 0.010, 0.002]
    s = summarize(seconds)
    ms = [x * 1e3 for x in seconds]
    assert s["median_ms"] == pytest.approx(3.0) and s["min_ms"] == pytest.approx(1.0) and s["runs"] == 5
    q = statistics.quantiles(ms, n=4)
    assert (s["q1_ms"], s["q3_ms"]) == (pytest.approx(q[0]), pytest.approx(q[2]))


def test_floor_is_the_bare_product():
    from onnx import numpy_helper

    from harness.ort_models import bare_matmul_model, ort_session

    model = bare_matmul_model(10, 48, 8)
    assert [n.op_type for n in model.graph.node] == ["MatMul"]
    kernel = numpy_helper.to_array(model.graph.initializer[0])
    assert kernel.shape == (48, 8)
    x = np.random.default_rng(3).standard_normal((10, 48)).astype(np.float32)
    got = ort_session(model, threads=1).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, x.astype(np.float64) @ kernel, rtol=1e-5, atol=1e-5)


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "vitstem_tiny_test", "--batch", "0"])
    assert exc.value.code == 2
    assert "must be a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["bench", "vitstem_tiny_test", "--only", "no_such_engine"])
    assert exc.value.code == 2


def _graph_variants():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "graph_variants.py"
    spec = importlib.util.spec_from_file_location("graph_variants", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_graph_variants_compute_the_reference_z0():
    """Every variant the docs cite, built for a small non-square stem (3 prefix rows, patch 4x2), runs at the
    exporter's opset and lands within the fast bound of the exact reference; a broken graph is caught."""
    import onnxruntime as ort

    from vitstem.export.options import DEFAULT_OPSET

    gv = _graph_variants()
    spec = vitstem.load_spec(TINY)
    weights = vitstem.init_weights(spec, seed=4)
    cases = gv.cases(spec, weights, batch=2)
    assert set(cases) == {"export_default", "export_batch_static", "folded_two_step", "pad_flat_nhwc", "conv_cl_concat",
                          "conv_strip", "gather_nchw", "gather_nhwc", "proj_conv_nchw", "proj_conv_tokens",
                          "proj_gather_tokens", "proj_gather_table", "gather_pad_then_add", "gather_concat_then_add"}
    for name, (model, feed, expected, bound) in cases.items():
        if not name.startswith("export_"):
            assert [o.version for o in model.opset_import] == [DEFAULT_OPSET], name
        got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
        assert got.shape == expected.shape, name
        assert (np.abs(got - expected) <= bound).all(), name
        assert np.abs(expected).max() > 100 * bound.max(), name  # the bound is tight enough to mean something
    # Swapping the strip's transpose scrambles the patches: far outside the bound.
    model = cases["conv_strip"][0]
    next(n for n in model.graph.node if n.op_type == "Transpose").attribute[0].ints[:] = [0, 1, 2, 3, 4]
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, cases["conv_strip"][1])[0]
    assert (np.abs(got - cases["conv_strip"][2]) > cases["conv_strip"][3]).any()

    result = gv.run(TINY, [2], threads=1, runs=2, levels=["all"], warmup=0, only=["conv_cl_concat", "gather_nhwc"])
    assert set(result["cases"][0]["figures"]) == {"floor", "conv_cl_concat@all", "gather_nhwc@all"}
    assert result["cases"][0]["figures"]["floor"]["ratio_to_floor"] == 1.0
