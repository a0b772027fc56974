"""Whole models (vitstem.deploy): one ONNX file = vitstem's stem + the peer's encoder, against the peer's forward.

Peers are built from tiny random configs (depth 1-2, D 16-32, 24-48 px); nothing is downloaded.
Every comparison runs the file in ONNX Runtime and the peer's own forward on the same images.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import vitstem.runtime
from support.whole_models import hf_vit, normalised, pixels, timm_vit
from vitstem.deploy import build_model, export_model, verify
from vitstem.export.api import resealed_bytes
from vitstem.errors import ExportError, InputError, OutputError

pytestmark = pytest.mark.slow

PIXELS = {"scale": 1 / 255, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def peer_outputs(model, x: np.ndarray, hf_interpolate=False) -> dict:
    """The peer's own forward, independently of vitstem.deploy.families."""
    with torch.no_grad():
        if type(model).__module__.startswith("timm"):
            return {"output": model(torch.from_numpy(x)).numpy()}
        out = model(torch.from_numpy(x), interpolate_pos_encoding=hf_interpolate)
        return {k: v.numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}


def assert_close(got: dict, want: dict, rel=1e-4):
    assert list(got) == list(want)
    for name in want:
        assert got[name].shape == want[name].shape, name
        err = np.abs(got[name].astype(np.float64) - want[name]).max()
        assert err <= rel * max(1.0, np.abs(want[name]).max()), (name, err)


@pytest.mark.parametrize("family", ["timm", "hf_vit", "hf_deit"])
def test_whole_model_matches_the_peer_at_native_and_two_other_sizes(tmp_path, family):
    model = {"timm": lambda: timm_vit(dynamic_img_size=True), "hf_vit": lambda: hf_vit("vit"),
             "hf_deit": lambda: hf_vit("deit")}[family]()
    preprocess = "auto" if family == "timm" else PIXELS  # timm: pretrained_cfg's mean/std = 0.5
    path = export_model(model, tmp_path / "m.onnx", image_size="dynamic", preprocess=preprocess)
    runtime = vitstem.runtime.load(path)
    expected_names = ["output"] if family == "timm" else ["last_hidden_state", "pooler_output"]
    assert runtime.output_names == expected_names
    for hw in [(32, 32), (48, 40), (16, 40)]:  # native, larger non-square, smaller non-square
        p = pixels(hw)
        assert_close(runtime(p.astype(np.float32)), peer_outputs(model, normalised(p), hf_interpolate=True))
    rows = verify(model, path)
    assert [tuple(r["size"]) for r in rows][::len(expected_names)] == [(32, 32), (48, 40), (24, 24)]
    assert all(r["passed"] and r["rel"] <= 1e-4 for r in rows), rows


def test_fixed_size_models_and_heads(tmp_path):
    # timm distilled DeiT (cls + dist, forward_head averages two heads) and an HF classifier (logits only)
    deit = timm_vit(arch="deit_tiny_distilled_patch16_224", depth=1)
    hf = hf_vit("vit_cls", num_hidden_layers=1, num_labels=3)
    for model, names in ((deit, ["output"]), (hf, ["logits"])):
        path = export_model(model, tmp_path / "f.onnx")
        runtime = vitstem.runtime.load(path)
        assert runtime.sizes == [(32, 32)] and runtime.output_names == names
        x = np.random.default_rng(2).standard_normal((3, 3, 32, 32)).astype(np.float32)
        p = pixels((32, 32), batch=3)
        cfg = model.pretrained_cfg if model is deit else {}  # DeiT: ImageNet mean / std
        feed, ref_in = (p.astype(np.float32), normalised(p, cfg["mean"], cfg["std"])) if model is deit else (x, x)
        assert_close(runtime(feed), peer_outputs(model, ref_in))
        with pytest.raises(InputError, match="40x32 differs from the spec.s 32x32"):
            runtime(np.zeros((1, 3, 40, 32), np.float32))


def test_listed_sizes_frames_and_fixed_batch(tmp_path):
    model = timm_vit(dynamic_img_size=True, depth=1)
    path = export_model(model, tmp_path / "l.onnx", image_size=[(32, 32), (24, 40)], preprocess_in_graph=True, batch=2)
    runtime = vitstem.runtime.load(path)
    assert runtime.input_dtype == "uint8" and runtime.layout == "NHWC" and runtime.batch == 2
    for hw in [(32, 32), (24, 40)]:
        p = pixels(hw)
        assert_close(runtime(p.transpose(0, 2, 3, 1).copy()), peer_outputs(model, normalised(p)))
    with pytest.raises(InputError, match="16x16 is not one"):
        runtime(pixels((16, 16)).transpose(0, 2, 3, 1).copy())
    with pytest.raises(InputError, match="exported for batch 2"):
        runtime(pixels((32, 32), batch=3).transpose(0, 2, 3, 1).copy())


def test_the_encoder_token_axis_is_static_when_every_size_gives_one_count(tmp_path):
    # A static token axis lets ONNX Runtime plan memory ahead; it must still be right at each listed size.
    model = hf_vit("vit", num_hidden_layers=1)  # patch 8, 32x32 native: 16 patches + cls = 17 tokens
    for image_size, tokens in (("fixed", 17), ([(32, 32), (16, 64)], 17), ([(32, 32), (48, 32)], "tokens"),
                               ("dynamic", "tokens")):
        path = export_model(model, tmp_path / "t.onnx", image_size=image_size, preprocess=PIXELS)
        out = next(o for o in onnx.load(path).graph.output if o.name == "last_hidden_state")
        assert [d.dim_value or d.dim_param for d in out.type.tensor_type.shape.dim] == ["batch", tokens, 32]
        runtime = vitstem.runtime.load(path)
        for hw in ([(32, 32), (16, 64)] if image_size == [(32, 32), (16, 64)] else [(32, 32)]):
            p = pixels(hw)
            assert_close(runtime(p.astype(np.float32)), peer_outputs(model, normalised(p), hf_interpolate=True))


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_fp16_and_int8_within_their_documented_bounds(tmp_path, precision):
    from vitstem.deploy.verification import TOLERANCE

    model = hf_vit("vit")
    whole = build_model(model, image_size="dynamic", precision=precision, preprocess=PIXELS)
    path = tmp_path / "p.onnx"
    path.write_bytes(resealed_bytes(whole))  # what export_model writes: vitstem.digest sealed
    ops = {n.op_type for n in whole.graph.node}
    if precision == "fp16":
        assert any(i.data_type == 10 for i in whole.graph.initializer)  # float16 weights
    else:
        assert "DequantizeLinear" in ops and not any(n.op_type == "DequantizeLinear" and not n.name.startswith("encoder/")
                                                     and "encoder/" not in n.output[0] for n in whole.graph.node)
    rows = verify(model, path)
    assert all(r["passed"] for r in rows), rows
    worst = max(r["rel"] for r in rows)
    assert 1e-6 < worst <= TOLERANCE[precision]  # reduced precision shows, within its bound


def test_the_users_model_is_left_as_it_was():
    model = timm_vit(depth=1).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stem_modules = (model.patch_embed, model.norm_pre, model.patch_drop)
    build_model(model, precision="fp16")
    assert model.training and (model.patch_embed, model.norm_pre, model.patch_drop) == stem_modules
    assert "_pos_embed" not in model.__dict__
    assert all(torch.equal(before[k], v) and v.dtype == torch.float32 for k, v in model.state_dict().items())


def test_refusals_name_the_problem(tmp_path):
    with pytest.raises(ExportError, match="only takes 32x32 images in its own forward.*dynamic_img_size=True"):
        build_model(timm_vit(depth=1), image_size="dynamic")
    with pytest.raises(ExportError, match="PyTorch model from timm or transformers or a keras-hub backbone, got ndarray"):
        build_model(np.zeros(3))
    with pytest.raises(ExportError, match="comes from 'torch'"):
        build_model(torch.nn.Linear(2, 2))
    with pytest.raises(ExportError, match="precision must be one of"):
        build_model(timm_vit(depth=1), precision="int4")
    with pytest.raises(OutputError, match="directory .* does not exist"):
        export_model(timm_vit(depth=1), tmp_path / "missing" / "m.onnx")
    with pytest.raises(ExportError, match=r"size 48x48 is not one the model is exported for \(32x32\)"):
        build_model(timm_vit(depth=1, dynamic_img_size=True), image_size=[(32, 32)], precision="int8",
                    calibration=np.zeros((2, 3, 48, 48), np.float32))


def test_timm_norm_stems_and_an_encoder_torchscript_cannot_export(tmp_path):
    # patch LayerNorm + RmsNorm pre-norm (the converter reads both into the spec) and RmsNorm blocks, whose
    # aten::rms_norm TorchScript cannot export: the encoder then goes through dynamo ("auto")
    from timm.layers import LayerNorm, RmsNorm

    model = timm_vit(depth=1, dynamic_img_size=True, embed_norm_layer=LayerNorm, pre_norm=True, norm_layer=RmsNorm)
    path = export_model(model, tmp_path / "n.onnx", image_size="dynamic")
    runtime = vitstem.runtime.load(path)
    assert runtime.spec.pre_norm is not None
    for hw in [(32, 32), (24, 40)]:
        p = pixels(hw)
        assert_close(runtime(p.astype(np.float32)), peer_outputs(model, normalised(p)))


@pytest.mark.parametrize("family", ["dinov2", "clip"])
def test_dinov2_and_clip_whole_models_at_other_sizes(tmp_path, family):
    # the families whose dynamic-size export fails with torch.onnx (README): bicubic tables, CLIP's pre-LayerNorm
    import inspect

    from transformers import CLIPVisionConfig, CLIPVisionModel, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    cls, config, patch = {"dinov2": (Dinov2Model, Dinov2Config, 7), "clip": (CLIPVisionModel, CLIPVisionConfig, 8)}[family]
    model = cls(config(image_size=4 * patch, patch_size=patch, hidden_size=32, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=64)).eval()
    path = export_model(model, tmp_path / "m.onnx", image_size="dynamic", preprocess=PIXELS)
    runtime = vitstem.runtime.load(path)
    assert runtime.output_names == ["last_hidden_state", "pooler_output"]
    kwargs = {"interpolate_pos_encoding": True} if "interpolate_pos_encoding" in inspect.signature(model.forward).parameters else {}
    for hw in [(4 * patch, 4 * patch), (6 * patch, 5 * patch), (3 * patch, 5 * patch)]:
        p = pixels(hw)
        with torch.no_grad():
            out = model(torch.from_numpy(normalised(p)), **kwargs)
        assert_close(runtime(p.astype(np.float32)), {k: out[k].numpy() for k in runtime.output_names})
