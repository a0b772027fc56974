"""The TensorFlow backend against the NumPy reference: exact profile, fast-profile bound, position tables, errors.

"exact" is the reference's arithmetic step for step (float64, every sum in `sum_in_order`'s order,
one rounding at the end), so its z0 must equal `vitstem.forward(..., profile="exact")` bit for bit,
eagerly and under tf.function; its float64 intermediates must equal the reference's too. "fast"
must stay within `fast_error_bound`.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from vitstem.backends.numpy import stem as reference
from vitstem.errors import InputError, WeightsError
from vitstem.spec import init_weights, load_spec, preset_names
from vitstem.spec.position import position_table
from support.seeded import images_for

TINY = "vitstem_tiny_test"


def tiny(**changes):
    return load_spec(TINY).replace(**changes)


def tf_forward(spec, weights, images, profile):
    import vitstem

    return vitstem.forward(spec, weights, images, backend="tensorflow", profile=profile)


def tf_function_forward(spec, weights, images, profile, unknown_sizes=False):
    """z0 from the layer under tf.function, traced for the batch's shape or with unknown batch and image sizes.

    Known shapes are what let Grappler rewrite sums (AddN) and divisions (rsqrt, reciprocals).
    """
    import tensorflow as tf

    from vitstem.backends.tensorflow import VitStemLayer

    layer = VitStemLayer.from_weights(spec, weights, profile)
    shape = [None if unknown_sizes and s != spec.in_channels else s for s in images.shape]
    return tf.function(layer, input_signature=[tf.TensorSpec(shape, tf.as_dtype(images.dtype))])(images).numpy()


def assert_exact(spec, weights, images, traced=()):
    """TF's exact z0 equals the reference's bit for bit, eagerly and traced with each of `traced`'s unknown_sizes."""
    expected = reference.forward(spec, weights, images, profile="exact")
    z = tf_forward(spec, weights, images, "exact")
    assert z.dtype == np.float32 and np.array_equal(z, expected)
    for unknown_sizes in traced:
        assert np.array_equal(tf_function_forward(spec, weights, images, "exact", unknown_sizes), expected)


def small_dynamic(spec):
    """The preset at any size: its 2x3-patch images exercise everything but N (the table is resampled)."""
    return spec.replace(dynamic_image_size=True), (2 * spec.patch_size[0], 3 * spec.patch_size[1])


@pytest.mark.slow
@pytest.mark.parametrize("name", preset_names())
def test_exact_is_bit_identical_for_every_preset(name):
    # Every preset's D, K, patch order, preprocessing constants, prefix, table kind and pre-norm, at
    # batch 1 on 2x3 patches (full size costs ~70 s per engine for all presets, see below for a few).
    spec, hw = small_dynamic(load_spec(name))
    assert_exact(spec, init_weights(spec, seed=1), images_for(spec, batch=1, hw=hw, seed=1))


@pytest.mark.slow
@pytest.mark.parametrize("name, batch", [
    ("vit_tiny_patch16_224", 1), ("vit_small_patch32_224", 1), ("vit_base_patch16_siglip_224", 1),
    ("mae_vit_base_patch16_224", 1), ("deit_base_distilled_patch16_224", 2), ("vit_base_patch16_clip_224", 2),
    ("big_vision_vit_s16_sincos_224", 2)])
def test_exact_is_bit_identical_at_full_size_eagerly_and_traced(name, batch):
    # Under tf.function Grappler would turn the ordered sums into AddN, x / sqrt(v) into x * rsqrt(v)
    # and divisions by constants into products: the layer runs exact eagerly there too.
    spec = load_spec(name)
    assert_exact(spec, init_weights(spec, seed=2), images_for(spec, batch=batch, seed=2), traced=[False])


@pytest.mark.slow
@pytest.mark.parametrize("hw", [(12, 16), (4, 2), (8, 20), (24, 6), (40, 32)])
def test_exact_is_bit_identical_for_the_tiny_spec_at_other_sizes(hw):
    spec = load_spec(TINY).replace(pre_norm={"eps": 1e-6})
    weights = init_weights(spec, seed=3)
    images = images_for(spec, hw=hw, seed=4)
    assert tf_forward(spec, weights, images, "exact").shape == (2, spec.num_tokens(hw), spec.embed_dim)
    assert_exact(spec, weights, images, traced=[False, True])


def test_exact_steps_have_the_reference_float64_bits():
    # Before the final rounding: a different summation order would show in most elements here.
    import tensorflow as tf

    from vitstem.backends.tensorflow import norms, stem

    spec = tiny(input={"layout": "NHWC", "preprocess": {"scale": 1 / 255, "mean": [0.485, 0.456, 0.406],
                                                         "std": [0.229, 0.224, 0.225]}}, patch_size=[4, 4])
    weights = init_weights(spec, seed=13)
    pixels = images_for(spec, hw=(16, 24), seed=14)
    ours = stem.preprocess(spec, tf.constant(pixels), tf.float64, "NHWC")
    x = reference.preprocess(spec, reference.to_nchw(spec, pixels), np.float64)
    assert np.array_equal(tf.transpose(ours, (0, 3, 1, 2)).numpy(), x)
    patches = reference.patchify(x, spec.patch_size)
    assert np.array_equal(stem.patchify(ours, spec.patch_size, "NHWC").numpy(), patches)
    assert np.array_equal(stem.patchify(tf.constant(x), spec.patch_size, "NCHW").numpy(), patches)
    embedded = reference.embed_patches(spec, weights, patches, np.float64)
    assert np.array_equal(stem.embed_patches(spec, weights, tf.constant(patches), tf.float64).numpy(), embedded)
    rng = np.random.default_rng(15)
    z = rng.standard_normal((2, 5, 384)) * rng.uniform(0.1, 10, (2, 5, 1)) + rng.standard_normal((2, 5, 1))
    weight, bias = rng.standard_normal(384), rng.standard_normal(384)
    assert np.array_equal(norms.layer_norm(tf.constant(z), tf.constant(weight), tf.constant(bias), 1e-6).numpy(),
                          reference.layer_norm(z, weight, bias, 1e-6))


def order_spec(**changes):
    return load_spec({"spec_version": 1, "name": "order", "image_size": [2, 2], "in_channels": 3,
                      "patch_size": [2, 2], "embed_dim": 3, "patch_bias": False, "prefix": {"class_token": False},
                      "position_embedding": {"kind": "none"}, "input": {"layout": "NHWC", "preprocess": None},
                      **changes})


BIG = 2.0**60  # 2^60 + 1 rounds to 2^60 in float64: a 1 added while a BIG is pending is lost


@pytest.mark.parametrize("traced", [False, True])
def test_exact_projection_sums_in_the_reference_k_order(traced):
    # One patch of ones, so the K = 12 terms are the kernel entries in the reference's (C, Ph, Pw)
    # order, and each result counts the 1s that come while no BIG is pending. Other orders give
    # other numbers: (Ph, Pw, C) [8, 5, 0], numpy's pairwise sum [4, 8, 0], and the AddN Grappler
    # makes of a traced chain (TF 2.21; inputs sorted by name: unstack, unstack:1, unstack:10, ...) [5, 7, 8].
    columns = np.array([[1, BIG, 1, 1, -BIG, 1, 1, 1, 1, 1, 1, 1],   # 1, BIG, BIG, BIG, 0, 1, ..., 7
                        [BIG, 1, -BIG, 1, 1, 1, 1, 1, 1, 1, 1, 1],   # BIG, BIG, 0, 1, ..., 9
                        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, BIG, -BIG]])  # 1, ..., 10, BIG, 0
    spec = order_spec()
    weights = {"patch_embed.weight": columns.reshape(3, 3, 2, 2).astype(np.float32)}  # OIHW = (D, C, Ph, Pw)
    images = np.ones((1, 2, 2, 3), np.float32)
    run = tf_function_forward if traced else tf_forward
    z = run(spec, weights, images, "exact")
    assert np.array_equal(z, [[[7, 9, 0]]])
    assert np.array_equal(z, reference.forward(spec, weights, images, profile="exact"))


@pytest.mark.parametrize("traced", [False, True])
def test_exact_layer_norm_sums_in_order(traced):
    # z0's class row is the class token t = [BIG, 1, -BIG, 1 (29 times)], D = 32. In order its sum
    # is 29 (the first 1 is lost), so the centred 1s are 3/32; the squares sum to 2^121 (the small
    # ones are lost), the variance is 2^116 and its root 2^58, so the row is [4, s, -4, s, ...]
    # with s = 3/32 * 2^-58. numpy's pairwise mean (16/32) or a sorted-by-name AddN (19/32) differ.
    spec = order_spec(embed_dim=32, prefix={"class_token": True}, pre_norm={"eps": 1e-6})
    weights = init_weights(spec, seed=16)
    weights.update({"cls_token": np.array([[[BIG, 1, -BIG] + [1] * 29]], np.float32),
                    "norm_pre.weight": np.ones(32, np.float32), "norm_pre.bias": np.zeros(32, np.float32)})
    images = images_for(spec, batch=1, seed=17)
    run = tf_function_forward if traced else tf_forward
    z = run(spec, weights, images, "exact")
    s = 3 / 32 * 2.0**-58
    assert np.array_equal(z[0, 0], np.array([4, s, -4] + [s] * 29, np.float32))
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


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(FAST_CASES))
def test_fast_is_within_the_error_bound(case):
    from vitstem.backends.numpy.bound import fast_error_bound

    spec, hw = FAST_CASES[case]
    weights = init_weights(spec, seed=5)
    images = images_for(spec, batch=2 if spec.embed_dim < 100 else 1, hw=hw, seed=6)  # full-size: batch 1
    z = tf_forward(spec, weights, images, "fast")
    exact = reference.forward(spec, weights, images, profile="exact")
    assert z.shape == exact.shape and z.dtype == np.float32
    assert np.all(np.abs(z.astype(np.float64) - exact) <= fast_error_bound(spec, weights, images))


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["timm", "hf_pytorch", "hf_tensorflow", "big_vision"])
@pytest.mark.parametrize("grid", [(3, 8), (7, 5), (1, 2), (2, 1), (9, 13)])
def test_position_table_is_the_shared_constant(policy, grid):
    # exact (in_order, run eagerly as the layer runs it): the shared float64 constant bit for bit.
    # fast (matmuls, also with a symbolic grid under tf.function): within float64 dot-product error.
    import tensorflow as tf

    from vitstem.backends.tensorflow.position import fixed_table, resample_rows
    from vitstem.spec.resampling import resample_matrix

    def tf_position_table(spec, pos_embed, grid, ordered=False):
        return position_table(spec, {"pos_embed": pos_embed}, grid, fixed=fixed_table,
                              resample=functools.partial(resample_rows, ordered=ordered))

    spec = tiny(resample={"policy": policy})
    weights = init_weights(spec, seed=7)
    pos_embed = tf.constant(weights["pos_embed"])
    prefix64, patches64 = position_table(spec, weights, grid)
    exact = tf_position_table(spec, pos_embed, grid, ordered=True)
    assert np.array_equal(exact[0].numpy(), prefix64) and np.array_equal(exact[1].numpy(), patches64)

    mh, mw = (np.abs(resample_matrix(s, g, **spec.resample.kwargs())) for s, g in zip(spec.pos_grid, grid))
    table = np.abs(weights["pos_embed"][0, spec.pos_prefix_rows:].astype(np.float64)).reshape(*spec.pos_grid, -1)
    magnitude = np.einsum("ik,jl,kld->ijd", mh, mw, table).reshape(patches64.shape)
    taps = mh.shape[1] + mw.shape[1]  # every column may be a term of the two sums
    static = tf_position_table(spec, pos_embed, grid)
    traced = tf.function(lambda gh, gw: tf_position_table(spec, pos_embed, (gh, gw)))
    symbolic = traced(tf.constant(grid[0]), tf.constant(grid[1]))  # the run-time (numpy_function) path
    for prefix, patches in (static, symbolic):
        assert np.array_equal(prefix.numpy(), prefix64)
        assert np.all(np.abs(patches.numpy() - patches64) <= taps * 2.0**-52 * magnitude)


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
