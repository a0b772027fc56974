"""The default conformance run, every engine, over tiny specs and a few presets; and proof that it can fail.

CI installs every framework, so each engine must actually run here (a "not run" fails the test).
"""

import numpy as np
import pytest

from vitstem.conformance import ENGINES, run
from vitstem.conformance.engines import NumpyEngine, Prepared
from vitstem.conformance.golden import GOLDEN_SPECS

TINY = {name: doc for name, (doc, _) in GOLDEN_SPECS.items()}
# Presets: the default one (learned table with class token) and big_vision (NHWC, sin-cos, no class
# token). Pre-norm and dynamic sizes are covered by the tiny specs (full-size presets cost ~1 min each).
PRESETS = ["vit_base_patch16_224", "big_vision_vit_s16_sincos_224"]


def _assert_every_engine_ran(report):
    assert {n.engine: n.reason for n in report.not_run if n.cell is None} == {}
    assert set(report.engines) == set(ENGINES)
    ran = {r.engines[0].split("@")[0] for r in report.results}
    assert ran == set(ENGINES), f"engines with no comparison: {set(ENGINES) - ran}"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_specs_pass_on_every_engine(name):
    report = run(TINY[name])
    _assert_every_engine_ran(report)
    assert report.verdict == "pass", report.table()
    kinds = {r.comparison.kind for r in report.results}
    assert kinds == {"exact", "fast", "fp16", "int8"}
    if report.spec.dynamic_image_size:  # native size plus two others, both layouts
        assert len({tuple(r.cell.image_size) for r in report.results}) == 3
    assert {r.cell.layout for r in report.results} == {"NCHW", "NHWC"}
    assert {r.cell.batch for r in report.results} == {1, 3}
    assert {r.opset for r in report.results if r.engines[0].startswith("onnxruntime@")} == {13}


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_presets_conform(preset):
    report = run(preset)
    _assert_every_engine_ran(report)
    assert report.verdict == "pass", report.table()
    fast = [r.comparison for r in report.results if r.comparison.kind == "fast"]
    assert max(c.max_ratio for c in fast) < 0.01  # the worst-case bound is far from binding


@pytest.mark.slow
def test_pre_norm_through_torch_onnx_export_is_exact():
    """ONNX LayerNormalization's epsilon attribute is a float32: a float64 exact graph that uses the op
    normalises with float32(eps), not eps, and z0 comes out a ULP apart wherever var is small enough
    for that to show (here 1e-5 vs its float32 neighbour, D = 256 to give it room)."""
    doc = {"spec_version": 1, "name": "prenorm_wide", "image_size": [8, 8], "in_channels": 3, "patch_size": [2, 2],
           "embed_dim": 256, "prefix": {"class_token": True}, "pre_norm": {"eps": 1e-5},
           "input": {"layout": "NCHW", "preprocess": None}, "resample": {"policy": "timm"}}
    report = run(doc, engines=["numpy", "torch", "torch-onnx"], profiles=["exact"])
    assert any(r.engines[0] == "torch-onnx" for r in report.results)
    assert report.verdict == "pass", report.table()


class Perturbed(NumpyEngine):
    """The NumPy reference with one element of z0 moved: `ulps` float32 steps, or `bound_factor` x the fast bound."""

    def __init__(self, ulps=0, bound_factor=0.0):
        self.ulps, self.bound_factor = ulps, bound_factor

    def prepare(self, ws, spec, cell, opset):
        from vitstem.backends.numpy.bound import fast_error_bound

        inner = super().prepare(ws, spec, cell, opset)

        def run_(images):
            z = inner.run(images).copy()
            for _ in range(self.ulps):
                z[0, -1, 1] = np.nextafter(z[0, -1, 1], np.float32(np.inf))
            if self.bound_factor:
                z[0, -1, 1] += np.float32(self.bound_factor * fast_error_bound(spec, ws.weights(spec), images)[0, -1, 1])
            return z

        return Prepared(run_)


def test_one_ulp_in_exact_fails_the_run(monkeypatch):
    monkeypatch.setitem(ENGINES, "numpy", Perturbed(ulps=1))
    report = run("vitstem_tiny_test", engines=["numpy"], profiles=["exact"])
    assert report.verdict == "fail"
    assert all(not r.passed and r.comparison.ulp_max == 1 and r.comparison.mismatches == 1 for r in report.results)


def test_one_element_beyond_the_bound_fails_fast(monkeypatch):
    monkeypatch.setitem(ENGINES, "numpy", Perturbed(bound_factor=3.0))
    report = run("vitstem_tiny_test", engines=["numpy"], profiles=["fast"], precisions=["fp32"])
    assert report.verdict == "fail" and report.failures == report.results
    assert all(2.0 < r.comparison.max_ratio < 4.0 for r in report.results)
    monkeypatch.setitem(ENGINES, "numpy", Perturbed(bound_factor=0.5))
    assert run("vitstem_tiny_test", engines=["numpy"], profiles=["fast"], precisions=["fp32"]).verdict == "pass"


def test_a_crashing_engine_fails_and_a_missing_one_is_not_run(monkeypatch):
    class Crashing(NumpyEngine):
        def prepare(self, ws, spec, cell, opset):
            raise RuntimeError("boom")

    class Missing(NumpyEngine):
        requires = ("vitstem_no_such_framework",)

    monkeypatch.setitem(ENGINES, "torch", Crashing())
    monkeypatch.setitem(ENGINES, "tensorflow", Missing())
    report = run("vitstem_tiny_test", engines=["numpy", "torch", "tensorflow"], profiles=["fast"], precisions=["fp32"])
    assert report.engines["tensorflow"] == "vitstem_no_such_framework is not installed"
    assert report.verdict == "fail"
    crashed = [r for r in report.results if r.engines[0] == "torch"]
    assert crashed and all("crashed: RuntimeError: boom" in r.comparison.note for r in crashed)
    assert all(r.passed for r in report.results if r.engines == ("numpy", "reference"))
