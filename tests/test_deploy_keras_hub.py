"""Whole keras-hub models (vitstem.deploy.keras_hub): vitstem's stem joined to the encoder keras's own ONNX
exporter (tf2onnx) writes, against the backbone's own call. keras-hub backbones run only at the size they
are built for, so each file is fixed-size (other sizes are refused); what cannot be split at z0 is refused.
Tiny random backbones (depth 1, D 16, 32-48 px); nothing is downloaded."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import vitstem.runtime
from support.keras_hub_peers import CASES, build, vit_backbone
from vitstem.deploy import build_model, export_model, verify
from vitstem.errors import ExportError, SpecError

pytestmark = pytest.mark.slow

PIXELS = {"scale": 1 / 255, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def backbone(case):
    return vit_backbone() if case == "vit" else build(CASES[case][0], **CASES[case][1])


def own_call(model, x_nhwc: np.ndarray) -> np.ndarray:
    """The backbone's own call on NHWC images, independently of vitstem.deploy."""
    from keras import ops

    inputs = {next(iter(model.input)): x_nhwc} if isinstance(model.input, dict) else x_nhwc
    return ops.convert_to_numpy(model(inputs, training=False))


def rel_err(got, want) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / max(1.0, np.abs(want).max()))


# ViT, DeiT (distillation token, non-square image), CLIP (pre-norm in the stem), SigLIP (image not a multiple
# of the patch, attention-pool head), DINOv2 (table resampled at build), ViTDet (grid z0, normalises inside)
@pytest.mark.parametrize("case", ["vit", "deit", "clip", "siglip_remainder", "dinov2_resampled", "vitdet"])
def test_whole_keras_hub_model_matches_its_own_call(case, tmp_path):
    model = backbone(case)
    runtime = vitstem.runtime.load(export_model(model, tmp_path / "m.onnx"))
    assert runtime.output_names == ["output"]
    h, w = runtime.spec.image_size
    rng = np.random.default_rng(3)
    if case == "vitdet":  # the file takes pixels (the model's own mean/std are the spec's preprocessing)
        x = rng.uniform(0, 1, (2, h, w, 3)).astype(np.float32)
    else:
        x = rng.standard_normal((2, h, w, 3)).astype(np.float32)
    want = own_call(model, x)
    got = runtime(x)["output"]
    assert got.shape == want.shape and rel_err(got, want) <= 1e-4
    rows = verify(model, tmp_path / "m.onnx")
    assert [(r["size"], r["output"]) for r in rows] == [([h, w], "output")] and all(r["passed"] for r in rows)
    assert rows[0]["max_ref"] > 0.5  # a real comparison, not two zero tensors
    encoder = runtime.encoder
    assert encoder["peer"] == "keras_hub" and encoder["class"] == type(model).__name__
    assert encoder["digest"].startswith("sha256:")


def test_keras_hub_int8_and_preprocessing_in_graph(tmp_path):
    from keras_hub.layers import ViTImageConverter

    model = vit_backbone()
    converter = ViTImageConverter(scale=1 / 127.5, offset=-1.0)  # x / 127.5 - 1 = (x / 255 - 0.5) / 0.5
    frames = export_model(model, tmp_path / "f.onnx", preprocess=converter, preprocess_in_graph=True)
    pixels = np.random.default_rng(5).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    want = own_call(model, (pixels.astype(np.float32) / 255 - 0.5) / 0.5)
    assert rel_err(vitstem.runtime.load(frames)(pixels)["output"], want) <= 1e-4
    rows = verify(model, export_model(model, tmp_path / "q.onnx", precision="int8"))
    assert all(r["passed"] for r in rows) and 1e-4 < rows[0]["rel"] <= 0.15  # quantized, within int8's bound
    ops = {n.op_type for n in onnx.load(tmp_path / "q.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


@pytest.mark.parametrize("case, message", [
    ("dinov3", "DINOV3Backbone: .*rotary embedding \\(rope\\).*computes from the image input.*vitstem compose"),
    ("gemma3", "Gemma3VisionEncoder: .*inside Gemma3VisionEncoderBlock.*no z0 tensor.*vitstem compose"),
])
def test_keras_hub_families_that_cannot_be_split_are_refused(case, message, tmp_path):
    with pytest.raises(ExportError, match=message):
        export_model(backbone(case), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_keras_hub_refusals_name_the_reason():
    model = backbone("dinov2_registers")
    with pytest.raises(ExportError, match="fp16: keras's ONNX exporter exports float32 models only"):
        build_model(model, precision="fp16")
    with pytest.raises(ExportError, match="only takes 32x32 images.*keras-hub backbones run at the image_shape"):
        build_model(model, image_size="dynamic")
    with pytest.raises(SpecError, match="ViTDetBackbone normalises inside the model; give only a scale"):
        build_model(backbone("vitdet"), preprocess=PIXELS)


def test_tensorflow_ops_tf2onnx_leaves_are_refused_and_erfc_is_rewritten():
    from onnx import TensorProto, helper

    from vitstem.deploy.keras_onnx import repaired

    x = helper.make_tensor_value_info("z0", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("Identity:0", TensorProto.FLOAT, [2, 3])
    erfc = helper.make_graph([helper.make_node("Erfc", ["z0"], ["Identity:0"], name="gelu/Erfc")], "g", [x], [y])
    model = repaired(helper.make_model(erfc, opset_imports=[helper.make_opsetid("", 18)]), ["output"])
    assert [n.op_type for n in model.graph.node] == ["Erf", "Sub"] and model.graph.output[0].name == "output"
    import onnxruntime as ort
    from scipy.special import erfc as scipy_erfc

    v = np.linspace(-4, 4, 6, dtype=np.float32).reshape(2, 3)
    got = ort.InferenceSession(model.SerializeToString()).run(None, {"z0": v})[0]
    np.testing.assert_allclose(got, scipy_erfc(v.astype(np.float64)), atol=2e-7)
    unknown = helper.make_graph([helper.make_node("MatrixBandPart", ["z0"], ["Identity:0"])], "g", [x], [y])
    with pytest.raises(ExportError, match="left TensorFlow op\\(s\\) MatrixBandPart unconverted"):
        repaired(helper.make_model(unknown, opset_imports=[helper.make_opsetid("", 18)]), ["output"])
