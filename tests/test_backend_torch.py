"""The PyTorch backend against the NumPy reference: exact profile bit for bit, fast profile within the bound.

"Bit for bit" is checked element by element: every element must be equal, except where the
reference's own float64 value lies within float64 rounding noise of a float32 rounding midpoint
(there the two engines' float64 sums, accumulated in different orders by OpenBLAS and MKL, may
round to the two neighbours; such an element then differs by exactly one float32 ulp).
"""

from __future__ import annotations

import numpy as np
import pytest

import vitstem
from vitstem.backends.numpy import stem as ref
from vitstem.backends.numpy.bound import fast_error_bound
from vitstem.spec import preset_names
from vitstem.spec.position import position_table

TINY = vitstem.load_spec("vitstem_tiny_test")
F64_PER_F32_ROUNDOFF = 2.0**-29  # unit roundoff of float64 over that of float32


def tiny(**changes):
    return TINY.replace(**changes)


def images_for(spec, batch=2, hw=None, seed=0):
    """Seeded uint8 pixels for specs that preprocess, standard-normal float32 otherwise."""
    rng = np.random.default_rng(seed)
    shape = spec.input_shape(batch, hw)
    if spec.input.preprocess is not None:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.standard_normal(shape).astype(np.float32)


def reference_z64(spec, weights, images):
    """The reference's z0 before its final rounding to float32, composed from its own functions."""
    f64 = np.float64
    x = ref.preprocess(spec, ref.to_nchw(spec, images), f64)
    hw = (x.shape[2], x.shape[3])
    z = ref.add_position(spec, ref.prefix_tokens(spec, weights, x.shape[0], f64),
                         ref.embed_patches(spec, weights, ref.patchify(x, spec.patch_size), f64),
                         position_table(spec, weights, spec.patch_grid(hw)), f64)
    if spec.pre_norm is not None:
        z = ref.layer_norm(z, weights["norm_pre.weight"].astype(f64), weights["norm_pre.bias"].astype(f64),
                           spec.pre_norm.eps)
    return z


def assert_exact(spec, weights, images, z):
    """z equals the exact reference bit for bit, up to float64 ties at float32 midpoints (see the docstring)."""
    expected = vitstem.forward(spec, weights, images, profile="exact")
    assert z.dtype == np.float32 and z.shape == expected.shape
    differ = expected != z
    if not differ.any():
        return
    ulps = np.abs(expected.view(np.int32).astype(np.int64) - z.view(np.int32).astype(np.int64))
    assert ulps[differ].max() == 1, f"{int(differ.sum())} elements differ, by up to {ulps.max()} ulps"
    midpoint = (expected[differ].astype(np.float64) + z[differ].astype(np.float64)) / 2
    z64 = reference_z64(spec, weights, images)[differ]
    noise = 2 * F64_PER_F32_ROUNDOFF * fast_error_bound(spec, weights, images)[differ]
    assert np.all(np.abs(z64 - midpoint) <= noise), (
        f"{int(differ.sum())} elements differ by one ulp without a float64 tie at the midpoint")


def assert_within_bound(spec, weights, images, z, factor=1.0, **bound_options):
    expected = vitstem.forward(spec, weights, images, profile="exact")
    bound = factor * fast_error_bound(spec, weights, images, **bound_options)
    excess = np.abs(z.astype(np.float64) - expected) - bound
    assert excess.max() <= 0, f"over the bound at {np.unravel_index(excess.argmax(), excess.shape)}"


# -- exact profile: every preset, and the tiny spec at other sizes -------------------------------------
@pytest.mark.parametrize("name", preset_names())
def test_exact_profile_matches_the_reference_on_every_preset(name):
    spec = vitstem.load_spec(name)
    weights = vitstem.init_weights(spec, seed=3)
    images = images_for(spec, batch=1)
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
    "clip_preset": (vitstem.load_spec("vit_base_patch16_clip_224"), None),
    "deit_distilled_preset": (vitstem.load_spec("deit_base_distilled_patch16_224"), None),
    "dinov2_preset_at_224": (vitstem.load_spec("vit_base_patch14_reg4_dinov2"), (224, 224)),
    "big_vision_preset": (vitstem.load_spec("big_vision_vit_s16_sincos_224"), None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_profile_within_the_bound_and_exact_profile_exact(case):
    spec, hw = CASES[case]
    weights = vitstem.init_weights(spec, seed=7)
    images = images_for(spec, hw=hw, seed=1)
    fast = vitstem.forward(spec, weights, images, backend="torch")
    assert fast.shape == (2, spec.num_tokens(hw), spec.embed_dim) and fast.dtype == np.float32
    assert_within_bound(spec, weights, images, fast)
    assert_exact(spec, weights, images, vitstem.forward(spec, weights, images, backend="torch", profile="exact"))
