"""The PyTorch backend against the NumPy reference: exact profile bit for bit, fast profile within the bound."""

from __future__ import annotations

import numpy as np
import pytest

import vitstem
from vitstem.backends.numpy.bound import fast_error_bound
from vitstem.spec import preset_names
from support.seeded import images_for

TINY = vitstem.load_spec("vitstem_tiny_test")


def tiny(**changes):
    return TINY.replace(**changes)


def assert_exact(spec, weights, images, z, expected=None):
    """z has the exact reference's bits (both sum every float64 dot product in the same fixed order)."""
    if expected is None:
        expected = vitstem.forward(spec, weights, images, profile="exact")
    assert z.dtype == np.float32 and z.shape == expected.shape
    differ = expected != z
    assert not differ.any(), f"{int(differ.sum())} of {z.size} elements differ, first at {np.argwhere(differ)[0]}"


def assert_within_bound(spec, weights, images, z, expected=None, **bound_options):
    """|z - exact reference| <= fast_error_bound, element by element."""
    if expected is None:
        expected = vitstem.forward(spec, weights, images, profile="exact")
    excess = np.abs(z.astype(np.float64) - expected) - fast_error_bound(spec, weights, images, **bound_options)
    assert excess.max() <= 0, f"over the bound at {np.unravel_index(excess.argmax(), excess.shape)}"


# -- exact profile: every preset, and the tiny spec at other sizes -------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", preset_names())
def test_exact_profile_matches_the_reference_on_every_preset(name):
    """Each preset's stem (its K, D, prefix, table, norm, preprocessing, layout) on a 2x3-patch image:
    the exact reference sums in a fixed order and takes seconds per full-size preset."""
    preset = vitstem.load_spec(name)
    ph, pw = preset.patch_size
    spec = preset.replace(image_size=[2 * ph, 3 * pw])
    weights = vitstem.init_weights(spec, seed=3)
    images = images_for(spec, batch=2)
    assert_exact(spec, weights, images, vitstem.forward(spec, weights, images, backend="torch", profile="exact"))


@pytest.mark.parametrize("hw", [(12, 16), (4, 2), (8, 4), (20, 10), (24, 32), (36, 6)])
def test_exact_profile_resamples_the_table_as_the_reference(hw):
    weights = vitstem.init_weights(TINY, seed=5)
    images = images_for(TINY, hw=hw)
    assert_exact(TINY, weights, images, vitstem.forward(TINY, weights, images, backend="torch", profile="exact"))


# -- fast profile: within the error bound, for every feature the spec has -------------------------------
FULL = {"class_token": True, "dist_token": True, "register_tokens": 2}
LEARNED = {"kind": "learned", "covers_prefix": True}
CASES = {
    "tiny": (TINY, None),
    "cls_only": (tiny(prefix={"class_token": True, "dist_token": False, "register_tokens": 0}), None),
    "dist_only": (tiny(prefix={"class_token": False, "dist_token": True, "register_tokens": 0}), None),
    "registers_only": (tiny(prefix={"class_token": False, "dist_token": False, "register_tokens": 3}), None),
    "no_prefix": (tiny(prefix={"class_token": False, "dist_token": False, "register_tokens": 0}), None),
    "no_embed_class": (tiny(position_embedding={"kind": "learned", "covers_prefix": False}), None),
    "pre_norm_no_bias": (tiny(pre_norm={"eps": 1e-6}, patch_bias=False), None),
    "sincos_big_vision": (tiny(position_embedding={"kind": "sincos2d", "sincos_convention": "big_vision",
                                                   "covers_prefix": False}), None),
    "sincos_timm_other_size": (tiny(position_embedding={"kind": "sincos2d", "sincos_convention": "timm",
                                                        "covers_prefix": True}), (20, 6)),
    "sincos_mae": (tiny(position_embedding={"kind": "sincos2d", "sincos_convention": "mae", "covers_prefix": True}),
                   None),
    "no_position": (tiny(position_embedding={"kind": "none"}), None),
    "nchw_preprocess": (tiny(input={"layout": "NCHW", "preprocess": {"scale": 1 / 255, "mean": [0.4, 0.5, 0.6],
                                                                     "std": [0.2, 0.25, 0.3]}}), None),
    "nhwc_preprocess_pre_norm": (tiny(input={"layout": "NHWC", "preprocess": {"scale": 1 / 127.5, "mean": [1.0] * 3,
                                                                              "std": [1.0] * 3}},
                                      pre_norm={"eps": 1e-5}), (16, 8)),
    "nhwc_float": (tiny(input={"layout": "NHWC", "preprocess": None}), None),
    "table_grid_differs_hf": (tiny(position_embedding={**LEARNED, "grid": [2, 5]}, resample={"policy": "hf_pytorch"}),
                              None),
    "big_vision_policy_upsample": (tiny(resample={"policy": "big_vision"}), (28, 20)),
    "timm_policy_downsample": (TINY, (8, 4)),
    "timm_policy_upsample": (TINY, (24, 32)),
    # Presets: CLIP at full size; the others (full K and D) on small images, the exact reference being slow.
    "clip_preset": (vitstem.load_spec("vit_base_patch16_clip_224"), None),
    "deit_distilled_preset": (vitstem.load_spec("deit_base_distilled_patch16_224").replace(image_size=[64, 48]), None),
    "dinov2_preset_37x37_table_at_4x5": (vitstem.load_spec("vit_base_patch14_reg4_dinov2"), (56, 70)),
    "big_vision_preset": (vitstem.load_spec("big_vision_vit_s16_sincos_224").replace(image_size=[48, 80]), None),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_profile_within_the_bound_and_exact_profile_exact(case):
    spec, hw = CASES[case]
    weights = vitstem.init_weights(spec, seed=7)
    images = images_for(spec, batch=1 if spec.embed_dim > 100 else 2, hw=hw, seed=1)
    expected = vitstem.forward(spec, weights, images, profile="exact")
    fast = vitstem.forward(spec, weights, images, backend="torch")
    assert fast.shape == expected.shape == (len(images), spec.num_tokens(hw), spec.embed_dim)
    assert_within_bound(spec, weights, images, fast, expected)
    exact = vitstem.forward(spec, weights, images, backend="torch", profile="exact")
    assert_exact(spec, weights, images, exact, expected)
