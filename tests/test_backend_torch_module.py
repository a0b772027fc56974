"""VitStem as a module: parameter names, canonical weights in and out, gradients, and the errors it raises."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import vitstem
from vitstem.backends.torch.names import CANONICAL_NAMES, TIMM_NAMES, from_timm_names, to_timm_names
from vitstem.spec import preset_names, weight_shapes
from vitstem.spec.resampling import resample_matrix

TINY = vitstem.load_spec("vitstem_tiny_test")


@pytest.fixture(scope="module")
def torch():
    import torch

    return torch


def test_state_dict_uses_timm_names_and_holds_the_canonical_weights(torch):
    from vitstem.backends.torch import VitStem

    for spec, keys in [
        (TINY, {"patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "dist_token", "reg_token", "pos_embed"}),
        (vitstem.load_spec("vit_base_patch16_clip_224"),
         {"patch_embed.proj.weight", "cls_token", "pos_embed", "norm_pre.weight", "norm_pre.bias"}),
        (vitstem.load_spec("big_vision_vit_s16_sincos_224"), {"patch_embed.proj.weight", "patch_embed.proj.bias"}),
        (TINY.replace(patch_norm={"kind": "layer_norm"}, pre_norm={"kind": "rms_norm"}, prefix={"class_token": False}),
         {"patch_embed.proj.weight", "patch_embed.proj.bias", "patch_embed.norm.weight", "patch_embed.norm.bias",
          "pos_embed", "norm_pre.weight"}),
        (TINY.replace(patch_norm={"kind": "rms_norm"}, prefix={"class_token": False}),
         {"patch_embed.proj.weight", "patch_embed.proj.bias", "patch_embed.norm.weight", "pos_embed"}),
    ]:
        weights = vitstem.init_weights(spec, seed=2)
        state = VitStem.from_weights(spec, weights).state_dict()
        assert set(state) == keys  # sin-cos tables and preprocessing constants are not state
        for key, value in to_timm_names(weights).items():
            assert state[key].dtype == torch.float32 and np.array_equal(state[key].numpy(), value), key


def test_canonical_weights_round_trip_and_default_weights_are_init_weights(torch):
    from vitstem.backends.torch import VitStem

    weights = vitstem.init_weights(TINY, seed=4)
    out = VitStem.from_weights(TINY, weights).canonical_weights()
    assert list(out) == list(weight_shapes(TINY))
    assert all(out[k].dtype == np.float32 and np.array_equal(out[k], weights[k]) for k in weights)
    default = VitStem(TINY).canonical_weights()
    assert all(np.array_equal(default[k], v) for k, v in vitstem.init_weights(TINY).items())


def test_name_table_covers_every_canonical_weight_and_round_trips():
    every = set().union(*(weight_shapes(vitstem.load_spec(n)) for n in preset_names()))
    every |= set(weight_shapes(TINY.replace(pre_norm={"eps": 1e-6}, patch_norm={"kind": "layer_norm"})))
    assert every == set(TIMM_NAMES)
    assert TIMM_NAMES["reg_tokens"] == "reg_token" and TIMM_NAMES["patch_embed.weight"] == "patch_embed.proj.weight"
    assert {CANONICAL_NAMES[v]: v for v in TIMM_NAMES.values()} == {k: TIMM_NAMES[k] for k in CANONICAL_NAMES.values()}
    weights = vitstem.init_weights(TINY)
    timm_state = {**to_timm_names(weights), "blocks.0.attn.qkv.weight": np.zeros(1), "norm.weight": np.zeros(1)}
    assert from_timm_names(timm_state).keys() == weights.keys()


@pytest.mark.slow
def test_names_import_without_torch_and_eager_use_never_loads_dynamo():
    """torch._dynamo imports triton, which segfaults after tensorflow: eager use must not load it."""
    code = ("import sys, numpy as np, vitstem, vitstem.backends.torch, vitstem.backends.torch.names as n\n"
            "assert n.TIMM_NAMES['reg_tokens'] == 'reg_token'\n"
            "print(sorted(m for m in ('torch', 'tensorflow', 'onnx') if m in sys.modules))\n"
            "spec = vitstem.load_spec('vitstem_tiny_test')\n"
            "z = vitstem.forward(spec, vitstem.init_weights(spec), np.zeros((1, 3, 8, 6), np.float32), backend='torch')\n"
            "print(z.shape, sorted(m for m in ('torch._dynamo', 'triton', 'torchvision') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[:2] == ["[]", "(1, 10, 8) []"]


def test_gradients_reach_the_table_through_the_resampling(torch):
    """d sum(z0) / d pos_embed is hand-derived: B per prefix row; B * colsum(Mh) (x) colsum(Mw) per patch row."""
    from vitstem.backends.torch import VitStem

    module = VitStem(TINY)
    batch, hw = 3, (24, 6)
    images = torch.from_numpy(np.random.default_rng(0).standard_normal((batch, 3, *hw)).astype(np.float32))
    module(images).sum().backward()
    grid, src, d = TINY.patch_grid(hw), TINY.pos_grid, TINY.embed_dim
    mh, mw = (resample_matrix(s, g, **TINY.resample.kwargs()) for s, g in zip(src, grid))
    expected_rows = batch * np.outer(mh.sum(0), mw.sum(0)).reshape(-1)
    grad = module.pos_embed.grad[0].numpy()
    prefix = TINY.num_prefix_tokens
    np.testing.assert_array_equal(grad[:prefix], np.full((prefix, d), batch, np.float32))
    np.testing.assert_allclose(grad[prefix:], np.repeat(expected_rows[:, None], d, axis=1), rtol=1e-5)
    np.testing.assert_array_equal(module.reg_token.grad.numpy(), np.full((1, 2, d), batch, np.float32))
    assert module.patch_embed.proj.weight.grad.abs().sum() > 0


def test_preprocessing_constants_built_once_still_carry_gradients_after_inference_mode(torch):
    """The cached (scale, mean, std) are normal tensors even when first built under inference_mode:
    d x' / d pixels = scale / std per channel, hand-derived."""
    from vitstem.backends.torch import stem

    pre = {"scale": 0.5, "mean": [0.1, 0.2, 0.3], "std": [0.25, 0.5, 2.0]}
    spec = TINY.replace(input={**TINY.to_dict()["input"], "preprocess": pre})
    pixels = torch.rand(2, 3, 12, 16)
    with torch.inference_mode():
        first = stem.preprocess(spec, pixels, torch.float32)
    tracked = pixels.clone().requires_grad_()
    again = stem.preprocess(spec, tracked, torch.float32)
    again.sum().backward()
    assert torch.equal(first, again.detach())
    expected = torch.tensor([0.5 / 0.25, 0.5 / 0.5, 0.5 / 2.0]).reshape(1, 3, 1, 1).expand(2, 3, 12, 16)
    assert torch.equal(tracked.grad, expected)


def test_shape_checks_done_once_per_shape_still_refuse_every_bad_batch(torch):
    """The value-free checks are remembered per (spec, shape, dtype); refusals are not remembered."""
    from vitstem.backends.torch import VitStem
    from vitstem.errors import InputError

    module = VitStem(TINY)
    good = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3, 12, 16)).astype(np.float32))
    first = module(good)
    for _ in range(2):
        assert torch.equal(module(good), first)
        with pytest.raises(InputError, match="4 channels at the NCHW channel axis"):
            module(torch.zeros(2, 4, 12, 16))
        with pytest.raises(InputError, match="dtype int32"):
            module(torch.zeros(2, 3, 12, 16, dtype=torch.int32))


@pytest.mark.parametrize("make, message", [
    (lambda t: [[[[0.0]]]], "images must be a torch.Tensor, got list"),
    (lambda t: t.zeros(3, 12, 16), "expected rank 4"),
    (lambda t: t.zeros(1, 4, 12, 16), "4 channels at the NCHW channel axis, expected 3"),
    (lambda t: t.zeros(1, 3, 12, 15), "is not a positive multiple of the patch size 4x2"),
    (lambda t: t.zeros(0, 3, 12, 16), "the batch is empty"),
    (lambda t: t.zeros(1, 3, 12, 16, dtype=t.int32), "dtype int32"),
    (lambda t: t.full((1, 3, 12, 16), float("nan")), "576 non-finite values"),
    (lambda t: t.full((1, 3, 12, 16), float("inf"), dtype=t.bfloat16), "576 non-finite values"),
])
def test_bad_images_raise_input_errors_naming_the_problem(torch, make, message):
    from vitstem.backends.torch import VitStem

    with pytest.raises(vitstem.InputError, match=message.replace("(", r"\(")):
        VitStem(TINY)(make(torch))


@pytest.mark.parametrize("profile", ["fast", "exact"])
def test_one_bad_pixel_is_caught_by_the_check_on_z0(torch, profile):
    # The module checks finiteness on its output (warm memory) instead of the batch: a single Inf
    # pixel must still be named, also where the kernel ignores its channel (Inf * 0 is NaN), while
    # finite pixels whose z0 overflows float32 are refused as an overflow (issue 12).
    from vitstem.backends.torch import VitStem

    weights = vitstem.init_weights(TINY, seed=3)
    weights["patch_embed.weight"][:, 1] = 0.0  # channel 1 does not reach z0 at all
    stem = VitStem.from_weights(TINY, weights, profile)
    for channel, value in [(0, float("inf")), (1, float("inf")), (1, float("nan")), (2, -float("inf"))]:
        images = torch.zeros(2, 3, 12, 16)
        images[1, channel, 5, 7] = value
        with pytest.raises(vitstem.InputError, match="1 non-finite values"):
            stem(images)
    with pytest.raises(vitstem.InputError, match="non-finite values although the images are finite: they overflow float32"):
        stem(torch.full((1, 3, 12, 16), 3e38))


def test_fixed_size_and_layout_are_enforced(torch):
    from vitstem.backends.torch import VitStem

    fixed = TINY.replace(dynamic_image_size=False)
    with pytest.raises(vitstem.InputError, match="size 8x4 differs from the spec's 12x16 and dynamic_image_size is false"):
        VitStem(fixed)(torch.zeros(1, 3, 8, 4))
    nhwc = TINY.replace(input={"layout": "NHWC", "preprocess": None})
    with pytest.raises(vitstem.InputError, match="channels at the NHWC channel axis"):
        VitStem(nhwc)(torch.zeros(1, 3, 12, 16))
    with pytest.raises(vitstem.InputError, match="dynamic_image_size is false"):
        vitstem.forward(fixed, vitstem.init_weights(fixed), np.zeros((1, 3, 8, 4), np.float32), backend="torch")


def test_bad_weights_and_profiles_are_refused(torch):
    from vitstem.backends.torch import VitStem

    weights = vitstem.init_weights(TINY)
    weights["pos_embed"] = weights["pos_embed"][:, :5]
    del weights["cls_token"]
    with pytest.raises(vitstem.WeightsError) as caught:
        VitStem.from_weights(TINY, weights)
    assert "missing weight 'cls_token' with shape (1, 1, 8)" in str(caught.value)
    assert "weight 'pos_embed' has shape (1, 5, 8), expected (1, 28, 8)" in str(caught.value)
    with pytest.raises(ValueError, match="profile must be one of"):
        VitStem(TINY, profile="fp16")
