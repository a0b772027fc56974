"""timm ViTs (random weights, no downloads) -> from_timm -> our z0 equals timm's own, within the bound.

The peer's z0 is timm's own stem: patch_embed -> _pos_embed -> patch_drop -> norm_pre (what
forward_features runs before the blocks), in eval mode. Unless a test says otherwise the spec
takes normalised floats (preprocess=None) and both sides get the same float images; the
preprocessing tests feed uint8 pixels to us and timm's own normalisation (x / 255 - mean) / std
to timm.
"""

import numpy as np
import pytest

import vitstem
from support.reference import assert_agrees
from support.timm_peers import random_stem as _random_stem, timm_z0, tiny_vit as _vit
from vitstem.interop import from_timm, timm_model_args, to_timm_state_dict

SMALL = dict(pretrained=False, num_classes=0, depth=1, num_heads=2)


def _images(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


CONFIGS = {
    "cls": {},
    "no_class_token": dict(class_token=False, global_pool="avg"),
    "registers": dict(reg_tokens=3),
    "no_embed_class_registers": dict(no_embed_class=True, reg_tokens=2),
    "no_embed_class_no_cls": dict(no_embed_class=True, class_token=False, global_pool="avg"),
    "no_pos_embed": dict(pos_embed="none"),
    "non_square": dict(img_size=(24, 40), patch_size=(8, 4)),
    "dynamic_img_size": dict(dynamic_img_size=True, reg_tokens=1),
    "patch_layernorm": dict(embed_norm_layer="layernorm"),
    "patch_rmsnorm_pre_rmsnorm": dict(embed_norm_layer="rmsnorm", pre_norm=True, norm_layer="rmsnorm", reg_tokens=1),
}


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_from_timm_matches_timm_at_native_size(config):
    model = _vit(**CONFIGS[config])
    spec, weights = from_timm(model, preprocess=None)
    x = _images(spec.input_shape(2))
    assert_agrees(spec, weights, x, timm_z0(model, x))
    assert spec.num_prefix_tokens == model.num_prefix_tokens
    assert spec.position_embedding.covers_prefix == (not model.no_embed_class and model.num_prefix_tokens > 0)


def test_norms_are_read_with_their_kind_eps_and_weights():
    from functools import partial

    from timm.layers import LayerNorm, RmsNorm

    model = _vit(embed_norm_layer=partial(LayerNorm, eps=1e-5), pre_norm=True, norm_layer=partial(RmsNorm, eps=3e-6))
    spec, weights = from_timm(model, preprocess=None)
    assert (spec.patch_norm.kind, spec.patch_norm.eps, spec.pre_norm.kind, spec.pre_norm.eps) == (
        "layer_norm", 1e-5, "rms_norm", 3e-6)
    assert np.array_equal(weights["patch_embed.norm.bias"], model.patch_embed.norm.bias.detach().numpy())
    assert np.array_equal(weights["norm_pre.weight"], model.norm_pre.weight.detach().numpy())
    assert "norm_pre.bias" not in weights
    x = _images(spec.input_shape(2))
    assert_agrees(spec, weights, x, timm_z0(model, x))


def test_clip_pre_norm_without_patch_bias():
    import timm

    model = _random_stem(timm.create_model("vit_base_patch16_clip_224", img_size=32, patch_size=8, embed_dim=32, **SMALL))
    spec, weights = from_timm(model, preprocess=None)
    assert spec.pre_norm is not None and spec.pre_norm.eps == 1e-5 and not spec.patch_bias
    x = _images(spec.input_shape(2))
    assert_agrees(spec, weights, x, timm_z0(model, x))


@pytest.mark.parametrize("size", [(48, 48), (24, 40), (16, 56)])
def test_dynamic_img_size_resamples_like_timm(size):
    model = _vit(dynamic_img_size=True, reg_tokens=2)
    spec, weights = from_timm(model, preprocess=None)
    assert spec.dynamic_image_size and spec.resample.policy == "timm"
    x = _images((2, 3, *size))
    assert_agrees(spec, weights, x, timm_z0(model, x), resampled_in_float32=True)


def test_dynamic_img_size_no_embed_class_non_square_native():
    model = _vit(dynamic_img_size=True, no_embed_class=True, img_size=(24, 32), patch_size=(4, 8))
    spec, weights = from_timm(model, preprocess=None)
    x = _images((1, 3, 36, 16))
    assert_agrees(spec, weights, x, timm_z0(model, x), resampled_in_float32=True)


def test_deit_distilled_native_and_dynamic():
    import timm

    model = _random_stem(timm.create_model("deit_tiny_distilled_patch16_224", img_size=32, embed_dim=24,
                                           dynamic_img_size=True, **SMALL))
    spec, weights = from_timm(model, preprocess=None)
    assert spec.prefix_tokens == ("cls_token", "dist_token") and spec.pos_prefix_rows == 2
    for size in [(32, 32), (48, 64)]:
        x = _images((2, 3, *size))
        assert_agrees(spec, weights, x, timm_z0(model, x), resampled_in_float32=size != (32, 32))


def test_preprocessing_from_pretrained_cfg_on_uint8_pixels():
    import timm
    import torch

    model = _random_stem(timm.create_model("deit_tiny_patch16_224", img_size=32, embed_dim=24, **SMALL))
    spec, weights = from_timm(model)
    cfg = model.pretrained_cfg
    pre = spec.input.preprocess
    assert pre.mean == tuple(cfg["mean"]) and pre.std == tuple(cfg["std"]) and pre.scale == 1 / 255
    pixels = np.random.default_rng(2).integers(0, 256, spec.input_shape(2), dtype=np.uint8)
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    normalised = ((torch.from_numpy(pixels).float() / 255 - mean) / std).numpy()  # ToTensor + Normalize
    assert_agrees(spec, weights, pixels, timm_z0(model, normalised))


def test_weights_are_copies_not_views_of_the_parameters():
    import torch

    model = _vit()
    _, weights = from_timm(model, preprocess=None)
    before = weights["pos_embed"].copy()
    with torch.no_grad():
        model.pos_embed.add_(1.0)
    assert np.array_equal(weights["pos_embed"], before)


def test_patch_drop_is_the_identity_in_eval_and_refused_in_training():
    model = _vit(patch_drop_rate=0.5)
    spec, weights = from_timm(model, preprocess=None)
    x = _images(spec.input_shape(1))
    assert_agrees(spec, weights, x, timm_z0(model, x))
    model.train()
    with pytest.raises(vitstem.SpecError, match="patch_drop"):
        from_timm(model)


def test_refuses_what_the_spec_cannot_express():
    import timm
    from timm.layers import LayerNorm2d, SimpleNorm

    cases = {
        "dynamic_img_pad": _vit(dynamic_img_size=True, dynamic_img_pad=True),
        "norm_pre is a SimpleNorm; the spec has LayerNorm and RmsNorm": _vit(pre_norm=True, norm_layer=SimpleNorm),
        "patch_embed.norm is a LayerNorm2d": _vit(embed_norm_layer=LayerNorm2d),
        "HybridEmbed: a CNN backbone": timm.create_model("vit_tiny_r_s16_p8_224", img_size=32, **SMALL),
    }
    for reason, model in cases.items():
        with pytest.raises(vitstem.SpecError, match=reason):
            from_timm(model)


ROUND_TRIP = {  # changes to vitstem_tiny_test with its dist token dropped (timm has dist or registers)
    "registers": {},
    "no_embed_class": dict(prefix={"class_token": True, "register_tokens": 1},
                           position_embedding={"kind": "learned", "covers_prefix": False}),
    "pre_norm_no_bias": dict(patch_bias=False, pre_norm={"eps": 1e-6}),
    "patch_norm_rms_pre_norm": dict(patch_bias=False, patch_norm={"kind": "rms_norm", "eps": 1e-5},
                                    pre_norm={"kind": "rms_norm", "eps": 1e-6}),
    "patch_layer_norm": dict(patch_norm={"kind": "layer_norm", "eps": 1e-6}),
    "no_bias_no_pre_norm": dict(patch_bias=False),
    "mae_sincos": dict(embed_dim=16, position_embedding={"kind": "sincos2d", "sincos_convention": "mae"},
                       dynamic_image_size=False),
    "distilled": dict(prefix={"class_token": True, "dist_token": True}),
}


@pytest.mark.parametrize("case", sorted(ROUND_TRIP))
def test_to_timm_state_dict_loads_into_timm_and_reproduces_z0(case):
    import torch
    from timm.models.deit import VisionTransformerDistilled
    from timm.models.vision_transformer import VisionTransformer

    base = {"prefix": {"class_token": True, "register_tokens": 2}}
    spec = vitstem.load_spec("vitstem_tiny_test").replace(**{**base, **ROUND_TRIP[case]})
    weights = vitstem.init_weights(spec, seed=7)
    cls = VisionTransformerDistilled if spec.prefix.dist_token else VisionTransformer
    model = cls(depth=1, num_heads=2, num_classes=0, **timm_model_args(spec)).eval()
    state = {k: torch.from_numpy(v) for k, v in to_timm_state_dict(spec, weights).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and not [k for k in missing if not k.startswith(("blocks", "norm.", "fc_norm", "head"))]
    x = _images(spec.input_shape(2))
    assert_agrees(spec, weights, x, timm_z0(model, x))
    again, again_weights = from_timm(model, preprocess=None)
    assert all(np.array_equal(again_weights[k], v) for k, v in weights.items() if k != "pos_embed" or
               spec.position_embedding.kind == "learned")


def test_to_timm_state_dict_refuses_what_timm_cannot_hold():
    tiny = vitstem.load_spec("vitstem_tiny_test")  # cls + dist + registers
    with pytest.raises(vitstem.SpecError, match="register"):
        to_timm_state_dict(tiny, vitstem.init_weights(tiny))
    nhwc = vitstem.load_spec("big_vision_vit_s16_sincos_224")
    with pytest.raises(vitstem.SpecError, match="NCHW"):
        to_timm_state_dict(nhwc, vitstem.init_weights(nhwc))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vit_base_patch16_224", "deit_base_distilled_patch16_224", "vit_base_patch16_clip_224",
                                  "vit_base_patch16_siglip_224", "vit_base_patch14_reg4_dinov2"])
def test_presets_describe_the_timm_models_of_the_same_name(name):
    import timm

    # The dinov2 preset accepts other sizes, as timm does when asked for dynamic_img_size.
    extra = {"dynamic_img_size": True} if "dinov2" in name else {}
    model = _random_stem(timm.create_model(name, pretrained=False, depth=1, num_classes=0, **extra))
    spec, weights = from_timm(model)
    preset = vitstem.load_spec(name)
    assert spec.replace(name=name) == preset
    if name == "vit_base_patch16_clip_224":  # one full-size z0 on uint8 pixels, preprocessing included
        pixels = np.random.default_rng(0).integers(0, 256, spec.input_shape(1), dtype=np.uint8)
        cfg = model.pretrained_cfg
        normalised = ((pixels / np.float32(255) - np.float32(cfg["mean"]).reshape(1, 3, 1, 1))
                      / np.float32(cfg["std"]).reshape(1, 3, 1, 1)).astype(np.float32)
        assert_agrees(spec, weights, pixels, timm_z0(model, normalised))
