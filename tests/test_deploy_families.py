"""Whole models of families with a grid-dependent encoder: SigLIP's attention-pool head (TorchScript bakes
the traced token count into it, so "auto" must export with dynamo) and timm Eva's rotary embedding (rope:
fixed size only, refused at other sizes naming the feature). Tiny random peers; nothing is downloaded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vitstem.runtime
from vitstem.deploy import build_model, export_model
from vitstem.errors import ExportError


def siglip():
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    return SiglipVisionModel(SiglipVisionConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                                                num_attention_heads=2, intermediate_size=64)).eval()


def eva(**kwargs):
    import timm

    torch.manual_seed(0)
    model = timm.create_model("eva02_tiny_patch14_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32,
                              depth=1, num_heads=2, num_classes=0, **kwargs).eval()
    with torch.no_grad():  # sharper attention than timm's init, so that rope visibly matters
        for name, p in model.named_parameters():
            if ".attn." in name and name.endswith("weight"):
                p.normal_(0.0, 0.5)
    return model


def rel_err(got, want) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / max(1.0, np.abs(want).max()))


@pytest.mark.slow
def test_siglip_attention_pool_head_at_two_other_sizes(tmp_path):
    model = siglip()
    # TorchScript alone bakes the 16 traced tokens into the head's reshapes: caught, not written
    with pytest.raises(ExportError, match=r"torch.onnx \(torchscript\) does not work at every size: it fails at 30 tokens"):
        build_model(model, image_size="dynamic", preprocess=None, exporter="torchscript")
    runtime = vitstem.runtime.load(export_model(model, tmp_path / "s.onnx", image_size="dynamic", preprocess=None))
    assert runtime.output_names == ["last_hidden_state", "pooler_output"]
    for hw in [(32, 32), (48, 40), (16, 40)]:  # native, larger non-square, smaller non-square
        x = np.random.default_rng(1).standard_normal((2, 3, *hw)).astype(np.float32)
        got = runtime(x)
        with torch.no_grad():
            want = model(torch.from_numpy(x), interpolate_pos_encoding=True)
        for name in runtime.output_names:
            assert got[name].shape == tuple(want[name].shape), (hw, name)
            assert rel_err(got[name], want[name].numpy()) <= 1e-4, (hw, name)


@pytest.mark.slow
def test_eva_with_rope_deploys_at_its_native_size(tmp_path):
    model = eva()
    assert model.rope is not None
    runtime = vitstem.runtime.load(export_model(model, tmp_path / "e.onnx", preprocess=None))
    x = np.random.default_rng(2).standard_normal((3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
        pos_embed = model._pos_embed
        model._pos_embed = lambda t: (pos_embed(t)[0], None)  # the same model without its rope
        without_rope = model(torch.from_numpy(x)).numpy()
        del model._pos_embed
    got = runtime(x)["output"]
    assert rel_err(got, want) <= 1e-4
    assert rel_err(without_rope, want) > 1e-2  # so the file's rope is really the peer's


def test_rope_at_other_sizes_and_inline_stems_are_refused_naming_why():
    with pytest.raises(ExportError, match=r"Eva has a rotary position embedding \(rope\).*token count does not tell the "
                                          r"grid.*image_size='fixed' \(the native 4x4 grid's rope"):
        build_model(eva(dynamic_img_size=True), image_size="dynamic", preprocess=None)
    import timm

    beit = timm.create_model("beit_base_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32,
                             depth=1, num_heads=2).eval()
    with pytest.raises(ExportError, match="timm Beit computes its tokens inside forward_features.*vitstem compose"):
        build_model(beit, preprocess=None)
