"""OpenVINO (CPU): the float32 precision hint is honoured, z0 within the fast bound, and the reasons the
engine gives for its refusals still hold."""

import numpy as np
import pytest

from vitstem import export_onnx
from vitstem.backends.numpy import forward
from vitstem.backends.numpy.bound import fast_error_bound
from vitstem.conformance import run
from vitstem.conformance.matrix import sample_images
from vitstem.conformance.engines.openvino_engine import PRECISION_HINT, compile_f32
from vitstem.spec import init_weights, load_spec

pytestmark = pytest.mark.slow


def test_the_f32_hint_is_read_back_and_z0_is_within_the_fast_bound(tmp_path):
    import openvino as ov

    spec = load_spec("vitstem_tiny_test")
    weights = init_weights(spec, 1)
    path = export_onnx(spec, weights, tmp_path / "m.onnx")
    compiled = compile_f32(path)
    assert compiled.get_property(PRECISION_HINT) == ov.Type.f32
    images = sample_images(spec, 3, spec.image_size, seed=2)
    z0 = compiled(images)[0]
    exact = forward(spec, weights, images, profile="exact")
    # bf16 or fp16 arithmetic would be ~1e-3 off: the float32 bound is ~1e-5
    assert np.all(np.abs(z0 - exact) <= fast_error_bound(spec, weights, images))


def _resize_model(mode: str):
    from onnx import TensorProto, helper

    extra = {"cubic_coeff_a": -0.5, "exclude_outside": 1} if mode == "cubic" else {}
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode=mode,
                            coordinate_transformation_mode="half_pixel", **extra)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3, 4])],
                              [helper.make_tensor("sizes", TensorProto.INT64, [4], [1, 4, 3, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


@pytest.mark.parametrize("mode", ["cubic", "linear"])
def test_openvino_resize_against_onnxruntime(mode, tmp_path):
    """Why the engine resamples at export time: OpenVINO's cubic Resize is not ONNX's (linear is)."""
    import onnx
    import onnxruntime as ort

    onnx.save(_resize_model(mode), tmp_path / "r.onnx")
    x = np.random.default_rng(0).standard_normal((1, 4, 5, 6)).astype(np.float32)
    expected = ort.InferenceSession(str(tmp_path / "r.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    diff = np.abs(compile_f32(tmp_path / "r.onnx")(x)[0] - expected).max()
    assert (diff > 1e-2) if mode == "cubic" else (diff < 1e-6)


def test_exact_is_refused_with_the_reason_and_fast_runs_at_every_size():
    doc = {"spec_version": 1, "name": "ov_dyn", "image_size": [8, 8], "in_channels": 3, "patch_size": [4, 4],
           "embed_dim": 8, "prefix": {"class_token": True}, "dynamic_image_size": True,
           "input": {"layout": "NCHW", "preprocess": None}, "resample": {"policy": "timm"}}
    report = run(doc, engines=["numpy", "openvino"], precisions=["fp32"])
    assert report.verdict == "pass", report.table()
    refused = {n.reason for n in report.not_run if n.engine.startswith("openvino")}
    assert refused and all("no float64 arithmetic" in r for r in refused)
    sizes = {tuple(r.cell.image_size) for r in report.results if r.engines[0].startswith("openvino")}
    assert len(sizes) == 3
