"""The TensorFlow backend against the NumPy reference: exact profile, fast-profile bound, position tables, errors.

"exact" is compared with the reference's own float64 z0 before its final rounding: both engines
round a float64 value to float32, and float64 sums in a different order (TF's Eigen GEMM vs
NumPy's BLAS) can land on different sides of a float32 rounding midpoint. That can only happen
where the float64 value lies within (worst-case) float64 rounding error of such a midpoint; it
happens for about 1 element in 300 000 on the base presets. Everywhere else the outputs must be
bit-identical, and nowhere may they differ by more than one float32 ulp.
"""

from __future__ import annotations

import numpy as np
import pytest

from vitstem.backends.numpy import stem as reference
from vitstem.errors import InputError, WeightsError
from vitstem.spec import init_weights, load_spec, preset_names
from vitstem.spec.inputs import image_hw
from vitstem.spec.position import position_table

TINY = "vitstem_tiny_test"


def tiny(**changes):
    return load_spec(TINY).replace(**changes)


def images_for(spec, batch=2, hw=None, seed=0):
    """Seeded uint8 pixels for a preprocessing spec, else standard-normal float32 in the spec's layout."""
    rng = np.random.default_rng(seed)
    shape = spec.input_shape(batch, hw)
    if spec.input.preprocess is not None:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.standard_normal(shape).astype(np.float32)


def tf_forward(spec, weights, images, profile):
    import vitstem

    return vitstem.forward(spec, weights, images, backend="tensorflow", profile=profile)


def reference_float64(spec, weights, images):
    """The reference's exact-profile z0 before its one rounding, built from its own functions."""
    f64 = np.float64
    x = reference.preprocess(spec, reference.to_nchw(spec, images), f64)
    grid = spec.patch_grid(image_hw(spec, images.shape))
    z = reference.add_position(spec, reference.prefix_tokens(spec, weights, x.shape[0], f64),
                               reference.embed_patches(spec, weights, reference.patchify(x, spec.patch_size), f64),
                               position_table(spec, weights, grid), f64)
    if spec.pre_norm is not None:
        z = reference.layer_norm(z, weights["norm_pre.weight"].astype(f64), weights["norm_pre.bias"].astype(f64),
                                 spec.pre_norm.eps)
    return z


def near_float32_midpoint(z64, delta):
    """Where float64 values lie within `delta` of a float32 rounding midpoint (so float64 noise can flip them)."""
    rounded = z64.astype(np.float32)
    away = np.where(z64 >= rounded, np.float32(np.inf), np.float32(-np.inf))
    midpoint = (rounded.astype(np.float64) + np.nextafter(rounded, away).astype(np.float64)) / 2  # exact
    return np.abs(z64 - midpoint) <= delta


def float32_rounding_is_ambiguous(spec, weights, images, z64):
    """Elements whose float64 value is within two engines' float64 error of a float32 rounding midpoint."""
    from vitstem.backends.numpy.bound import fast_error_bound

    # The fast bound is first order in u = 2^-24: the same analysis at u = 2^-53 is 2^-29 of it.
    # Two float64 engines differ by at most twice that; twice more is margin for second-order terms.
    return near_float32_midpoint(z64, 4 * 2.0**-29 * fast_error_bound(spec, weights, images))


def assert_same_float32_rounding(got, z64, ambiguous):
    """got == float32(z64) bit for bit outside `ambiguous`, and within one float32 ulp inside it."""
    expected = z64.astype(np.float32)
    assert np.array_equal(got[~ambiguous], expected[~ambiguous])
    assert np.all(np.abs(got - expected) <= np.spacing(np.abs(expected)))


def assert_exact(spec, weights, images):
    z = tf_forward(spec, weights, images, "exact")
    z64 = reference_float64(spec, weights, images)
    expected = reference.forward(spec, weights, images, profile="exact")
    assert np.array_equal(expected, z64.astype(np.float32))  # the recomputation above is the reference's
    ambiguous = float32_rounding_is_ambiguous(spec, weights, images, z64)
    assert ambiguous.mean() < 0.1  # worst case: 1% (K = 768) to 5% (K = 3072); actual flips are ~1e-6
    assert_same_float32_rounding(z, z64, ambiguous)


@pytest.mark.parametrize("name", preset_names())
def test_exact_matches_reference_for_every_preset(name):
    spec = load_spec(name)
    assert_exact(spec, init_weights(spec, seed=1), images_for(spec, batch=1, seed=1))


@pytest.mark.parametrize("name", ["vit_base_patch16_224", "deit_base_distilled_patch16_224",
                                  "vit_base_patch16_clip_224", "big_vision_vit_s16_sincos_224"])
def test_exact_matches_reference_for_a_batch_of_two(name):
    spec = load_spec(name)
    assert_exact(spec, init_weights(spec, seed=2), images_for(spec, batch=2, seed=2))


@pytest.mark.parametrize("hw", [(12, 16), (4, 2), (8, 20), (24, 6), (40, 32)])
def test_exact_is_bit_identical_for_the_tiny_spec_at_other_sizes(hw):
    spec = load_spec(TINY)
    weights = init_weights(spec, seed=3)
    images = images_for(spec, hw=hw, seed=4)
    z = tf_forward(spec, weights, images, "exact")
    assert z.shape == (2, spec.num_tokens(hw), spec.embed_dim) and z.dtype == np.float32
    assert np.array_equal(z, reference.forward(spec, weights, images, profile="exact"))


FAST_CASES = {
    "tiny": (tiny(), None),
    "cls_only": (tiny(prefix={"class_token": True}), None),
    "no_prefix": (tiny(prefix={"class_token": False}), None),
    "dist_only": (tiny(prefix={"class_token": False, "dist_token": True}), None),
    "registers_only": (tiny(prefix={"class_token": False, "register_tokens": 3}), None),
    "no_embed_class": (tiny(position_embedding={"kind": "learned", "covers_prefix": False}), (20, 10)),
    "no_position": (tiny(position_embedding={"kind": "none"}), (8, 4)),
    "pre_norm_no_bias": (tiny(pre_norm={"eps": 1e-6}, patch_bias=False), None),
    "sincos_mae": (tiny(position_embedding={"kind": "sincos2d", "sincos_convention": "mae"}), (16, 8)),
    "sincos_timm": (tiny(position_embedding={"kind": "sincos2d", "sincos_convention": "timm",
                                             "covers_prefix": False}), None),
    "sincos_big_vision": (tiny(position_embedding={"kind": "sincos2d", "sincos_convention": "big_vision"}), None),
    "nhwc_preprocessed": (tiny(input={"layout": "NHWC", "preprocess": {"scale": 1 / 255, "mean": [0.4, 0.5, 0.6],
                                                                       "std": [0.2, 0.25, 0.3]}}), None),
    "nchw_preprocessed": (tiny(input={"layout": "NCHW", "preprocess": {"scale": 1 / 127.5, "mean": [1.0] * 3,
                                                                       "std": [1.0] * 3}}), (28, 4)),
    "table_grid_2x3": (tiny(position_embedding={"kind": "learned", "grid": [2, 3]}), None),
    "upsampled_timm": (tiny(), (36, 22)),
    "downsampled_hf_pytorch": (tiny(resample={"policy": "hf_pytorch"}), (4, 6)),
    "hf_tensorflow": (tiny(resample={"policy": "hf_tensorflow"}), (20, 12)),
    "big_vision_policy": (tiny(resample={"policy": "big_vision"}), (16, 24)),
    "clip_224": (load_spec("vit_base_patch16_clip_224"), None),
    "dinov2_at_224": (load_spec("vit_base_patch14_reg4_dinov2"), (224, 224)),
    "siglip_224": (load_spec("vit_base_patch16_siglip_224"), None),
    "big_vision_224": (load_spec("big_vision_vit_s16_sincos_224"), None),
}


@pytest.mark.parametrize("case", sorted(FAST_CASES))
def test_fast_is_within_the_error_bound(case):
    from vitstem.backends.numpy.bound import fast_error_bound

    spec, hw = FAST_CASES[case]
    weights = init_weights(spec, seed=5)
    images = images_for(spec, hw=hw, seed=6)
    z = tf_forward(spec, weights, images, "fast")
    exact = reference.forward(spec, weights, images, profile="exact")
    assert z.shape == exact.shape and z.dtype == np.float32
    assert np.all(np.abs(z.astype(np.float64) - exact) <= fast_error_bound(spec, weights, images))


@pytest.mark.parametrize("policy", ["timm", "hf_pytorch", "hf_tensorflow", "big_vision"])
@pytest.mark.parametrize("grid", [(3, 8), (7, 5), (1, 2), (2, 1), (9, 13)])
def test_fast_position_table_is_the_shared_constant_rounded(policy, grid):
    # Bit-identical but where the float64 value sits (within float64 error) on a float32 tie:
    # interpolating halfway between two float32 values lands exactly on one (big_vision's linear).
    import tensorflow as tf

    from vitstem.backends.tensorflow.position import position_table as tf_position_table
    from vitstem.spec.resampling import resample_matrix

    spec = tiny(resample={"policy": policy})
    weights = init_weights(spec, seed=7)
    prefix64, patches64 = position_table(spec, weights, grid)
    mh, mw = (np.abs(resample_matrix(s, g, **spec.resample.kwargs())) for s, g in zip(spec.pos_grid, grid))
    table = np.abs(weights["pos_embed"][0, spec.pos_prefix_rows:].astype(np.float64)).reshape(*spec.pos_grid, -1)
    magnitude = np.einsum("ik,jl,kld->ijd", mh, mw, table).reshape(patches64.shape)
    taps = mh.shape[1] + mw.shape[1]  # every column may be a term of the two sums
    ambiguous = near_float32_midpoint(patches64, 2 * taps * 2.0**-52 * magnitude)
    assert ambiguous.mean() < 0.15  # up to 8% are true ties (big_vision, hf_tensorflow on small grids)
    static = tf_position_table(spec, tf.constant(weights["pos_embed"]), grid)
    traced = tf.function(lambda gh, gw: tf_position_table(spec, tf.constant(weights["pos_embed"]), (gh, gw)))
    symbolic = traced(tf.constant(grid[0]), tf.constant(grid[1]))  # the run-time (numpy_function) path
    for prefix, patches in (static, symbolic):
        assert np.array_equal(tf.cast(prefix, tf.float32).numpy(), prefix64.astype(np.float32))
        assert_same_float32_rounding(tf.cast(patches, tf.float32).numpy(), patches64, ambiguous)


def test_nchw_and_nhwc_specs_agree_on_transposed_images():
    nchw = tiny(input={"layout": "NCHW", "preprocess": {"scale": 1 / 255, "mean": [0.5] * 3, "std": [0.5] * 3}})
    nhwc = nchw.replace(input={"layout": "NHWC", "preprocess": {"scale": 1 / 255, "mean": [0.5] * 3,
                                                                "std": [0.5] * 3}})
    weights = init_weights(nchw, seed=8)
    images = images_for(nchw, seed=9)
    for profile in ("fast", "exact"):
        assert np.array_equal(tf_forward(nchw, weights, images, profile),
                              tf_forward(nhwc, weights, images.transpose(0, 2, 3, 1), profile))


def test_float64_pixels_reach_the_exact_profile_unrounded():
    # Keras autocasts float inputs to float32 by default; the layer turns that off.
    spec = tiny()
    weights = init_weights(spec, seed=10)
    images = np.random.default_rng(11).standard_normal(spec.input_shape(2))  # float64
    assert not np.array_equal(images, images.astype(np.float32).astype(np.float64))
    assert np.array_equal(tf_forward(spec, weights, images, "exact"),
                          reference.forward(spec, weights, images, profile="exact"))


def test_hand_computed_stem():
    # One 2x2 patch, one channel, D = 2: z0 = [cls + t0; x E + b + t1], worked out by hand.
    spec = load_spec({"spec_version": 1, "name": "hand", "image_size": [2, 2], "in_channels": 1,
                      "patch_size": [2, 2], "embed_dim": 2, "input": {"layout": "NHWC", "preprocess": None}})
    weights = {"patch_embed.weight": np.array([[[[1, 2], [3, 4]]], [[[0, 1], [0, -1]]]], np.float32),
               "patch_embed.bias": np.array([0.5, -0.5], np.float32),
               "cls_token": np.array([[[10, 20]]], np.float32),
               "pos_embed": np.array([[[1, 1], [2, 3]]], np.float32)}
    images = np.array([[[[1], [0]], [[2], [1]]]], np.float32)  # NHWC: rows [1, 0] and [2, 1]
    # x E = (1*1 + 0*2 + 2*3 + 1*4, 1*0 + 0*1 + 2*0 + 1*(-1)) = (11, -1)
    expected = np.array([[[11, 21], [11 + 0.5 + 2, -1 - 0.5 + 3]]], np.float32)
    for profile in ("fast", "exact"):
        assert np.array_equal(tf_forward(spec, weights, images, profile), expected)


def test_bad_inputs_raise_input_errors_in_eager_mode():
    from vitstem.backends.tensorflow import VitStemLayer

    spec = load_spec("vit_tiny_patch16_224")
    layer = VitStemLayer(spec)
    cases = {
        "rank 4": np.zeros((3, 224, 224), np.uint8),
        "4 channels at the NCHW channel axis": np.zeros((1, 4, 224, 224), np.uint8),
        "differs from the spec's 224x224": np.zeros((1, 3, 240, 240), np.uint8),
        "not a positive multiple of the patch size": np.zeros((1, 3, 225, 224), np.uint8),
        "dtype int32": np.zeros((1, 3, 224, 224), np.int32),
        "non-finite": np.full((1, 3, 224, 224), np.nan, np.float32),
    }
    for message, images in cases.items():
        with pytest.raises(InputError, match=message):
            layer(images)


def test_bad_input_shapes_raise_input_errors_when_traced():
    import tensorflow as tf

    from vitstem.backends.tensorflow import VitStemLayer

    layer = VitStemLayer(TINY)  # NCHW, dynamic sizes, 3 channels
    for signature, message in [((None, 4, None, None), "4 channels"), ((None, 3, 12), "rank 4"),
                               ((None, 3, 13, 16), "not a positive multiple")]:
        with pytest.raises(InputError, match=message):
            tf.function(layer, autograph=False).get_concrete_function(tf.TensorSpec(signature, tf.float32))
        with pytest.raises(Exception, match=message):  # autograph re-raises it as a StagingError
            tf.function(layer).get_concrete_function(tf.TensorSpec(signature, tf.float32))
    fixed = VitStemLayer(tiny(dynamic_image_size=False))
    traced = tf.function(fixed, input_signature=[tf.TensorSpec((None, 3, None, None), tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="must equal the spec image_size 12x16"):
        traced(tf.zeros((1, 3, 8, 16)))


def test_weights_round_trip_and_bad_weights_are_named():
    from vitstem.backends.tensorflow import VitStemLayer

    spec = load_spec(TINY)
    weights = init_weights(spec, seed=12)
    layer = VitStemLayer(spec)
    assert all(np.array_equal(v, init_weights(spec)[k]) for k, v in layer.canonical_weights().items())
    layer.set_canonical_weights(weights)
    got = layer.canonical_weights()
    assert list(got) == list(weights) and all(np.array_equal(got[k], weights[k]) for k in weights)
    bad = dict(weights, cls_token=np.zeros((1, 2, 8), np.float32))
    with pytest.raises(WeightsError, match=r"'cls_token' has shape \(1, 2, 8\), expected \(1, 1, 8\)"):
        layer.set_canonical_weights(bad)
    with pytest.raises(WeightsError, match="missing weight 'pos_embed'"):
        VitStemLayer.from_weights(spec, {k: v for k, v in weights.items() if k != "pos_embed"})


def test_unknown_profile_is_refused():
    from vitstem.backends.tensorflow import VitStemLayer

    with pytest.raises(ValueError, match="profile must be one of"):
        VitStemLayer(TINY, profile="float16")
