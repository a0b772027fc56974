"""The NumPy reference against values worked out by hand, and against independent computations."""

import numpy as np
import pytest

import vitstem
from vitstem.backends.numpy.stem import patchify

# A 1-channel 4x4 image, patch 2, D = 3. Patches in row-major grid order, each flattened row-major:
#   p1 = [0, 1, 4, 5], p2 = [2, 3, 6, 7], p3 = [8, 9, 12, 13], p4 = [10, 11, 14, 15]
IMAGE = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
# Kernel rows: d0 picks the top-left pixel, d1 the bottom-right, d2 sums the patch.
KERNEL = np.array([[1, 0, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1]], np.float32).reshape(3, 1, 2, 2)
BIAS = np.array([0.5, -1.0, 2.0], np.float32)
# x^i E + b:  p1 -> [0.5, 4, 12], p2 -> [2.5, 6, 20], p3 -> [8.5, 12, 44], p4 -> [10.5, 14, 52]
CLS, DIST, REG = [100.0, 200.0, 300.0], [7.0, 8.0, 9.0], [-1.0, -2.0, -3.0]


def tiny_spec(class_token=True, dist_token=False, registers=0, covers_prefix=True, **extra):
    doc = {"spec_version": 1, "image_size": 4, "in_channels": 1, "patch_size": 2, "embed_dim": 3,
           "prefix": {"class_token": class_token, "dist_token": dist_token, "register_tokens": registers},
           "position_embedding": {"kind": "learned", "covers_prefix": covers_prefix}}
    doc.update(extra)
    return vitstem.load_spec(doc)


def pos_rows(ts):
    """Position rows [t, -t, t/2] for each t: exactly representable, easy to add by hand."""
    return np.array([[t, -t, t / 2] for t in ts], np.float32)[None]


def tiny_weights(spec, pos_ts):
    w = {"patch_embed.weight": KERNEL, "patch_embed.bias": BIAS, "pos_embed": pos_rows(pos_ts)}
    for name, value in (("cls_token", [CLS]), ("dist_token", [DIST]), ("reg_tokens", [REG])):
        if name in vitstem.weight_shapes(spec):
            w[name] = np.array([value], np.float32)
    return w


CASES = {
    # class token, table covers it (pos rows t = 0..4)
    "cls": (dict(), range(5), [[100, 200, 300], [1.5, 3, 12.5], [4.5, 4, 21], [11.5, 9, 45.5], [14.5, 10, 54]]),
    # no prefix tokens (pos rows t = 1..4)
    "none": (dict(class_token=False), range(1, 5), [[1.5, 3, 12.5], [4.5, 4, 21], [11.5, 9, 45.5], [14.5, 10, 54]]),
    # cls + dist, table covers both (t = 0..5): dist + [1, -1, .5] = [8, 7, 9.5]; patches shift by two rows
    "cls+dist": (dict(dist_token=True), range(6),
                 [[100, 200, 300], [8, 7, 9.5], [2.5, 2, 13], [5.5, 3, 21.5], [12.5, 8, 46], [15.5, 9, 54.5]]),
    # cls + dist + 1 register, no_embed_class: prefix tokens get no position (t = 1..4 for patches)
    "no_embed_class": (dict(dist_token=True, registers=1, covers_prefix=False), range(1, 5),
                       [[100, 200, 300], [7, 8, 9], [-1, -2, -3], [1.5, 3, 12.5], [4.5, 4, 21], [11.5, 9, 45.5],
                        [14.5, 10, 54]]),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("profile", ["fast", "exact"])
def test_hand_worked_z0(case, profile):
    options, ts, expected = CASES[case]
    spec = tiny_spec(**options)
    z0 = vitstem.forward(spec, tiny_weights(spec, ts), IMAGE, profile=profile)
    np.testing.assert_array_equal(z0, np.array([expected], np.float32))


def test_pre_norm_hand_worked():
    # Kernel rows chosen so every patch embeds to three consecutive numbers: [a, a+1, a+2].
    kernel = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [-1, 2, 0, 0]], np.float32).reshape(3, 1, 2, 2)
    spec = tiny_spec(class_token=False, patch_bias=False, position_embedding={"kind": "none"},
                     pre_norm={"eps": 1e-5})
    g, b = np.array([1, 2, 3], np.float32), np.array([0, 0, 1], np.float32)
    weights = {"patch_embed.weight": kernel, "norm_pre.weight": g, "norm_pre.bias": b}
    # LN([a, a+1, a+2]) = [-1, 0, 1] / sqrt(2/3 + eps), then * g + b = [-s, 0, 3s + 1]
    s = 1 / np.sqrt(2 / 3 + 1e-5)
    expected = np.array([[-s, 0, 3 * s + 1]] * 4, np.float32)
    np.testing.assert_array_equal(vitstem.forward(spec, weights, IMAGE, profile="exact")[0], expected)
    np.testing.assert_allclose(vitstem.forward(spec, weights, IMAGE, profile="fast")[0], expected, rtol=1e-6, atol=1e-6)


def test_patchify_order_matches_oihw_flattening():
    np.testing.assert_array_equal(patchify(IMAGE, (2, 2))[0],
                                  [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]])


def rand_case(name="vitstem_tiny_test", batch=2, seed=0):
    spec = vitstem.load_spec(name)
    weights = vitstem.init_weights(spec, seed=seed)
    rng = np.random.default_rng(seed)
    shape = spec.input_shape(batch)
    x = (rng.integers(0, 256, shape, dtype=np.uint8) if spec.input.preprocess
         else rng.standard_normal(shape).astype(np.float32))
    return spec, weights, x


def test_conv_equals_matmul():
    """The reference's patchify+matmul equals a strided convolution computed independently (torch, float64)."""
    import torch

    spec, weights, x = rand_case()
    conv = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(weights["patch_embed.weight"]).double(),
                                      torch.from_numpy(weights["patch_embed.bias"]).double(), stride=spec.patch_size)
    patches = conv.flatten(2).transpose(1, 2).numpy()  # (B, N, D), row-major grid order
    spec_plain = spec.replace(prefix={"class_token": False}, position_embedding={"kind": "none"})
    plain = {k: v for k, v in weights.items() if k.startswith("patch_embed")}
    z = vitstem.forward(spec_plain, plain, x, profile="exact")
    np.testing.assert_array_equal(z, patches.astype(np.float32))


def test_nchw_and_nhwc_agree():
    spec, weights, x = rand_case()
    nhwc = spec.replace(input={"layout": "NHWC", "preprocess": None})
    assert nhwc.input_layout == "NHWC"
    for profile in ("fast", "exact"):
        np.testing.assert_array_equal(vitstem.forward(spec, weights, x, profile=profile),
                                      vitstem.forward(nhwc, weights, x.transpose(0, 2, 3, 1), profile=profile))


def test_preprocessing_from_uint8():
    spec, weights, x = rand_case("vit_tiny_patch16_224", batch=1)
    pre = spec.input.preprocess
    assert pre.scale == 1 / 255 and pre.mean == (0.5,) * 3
    normalised = (x.astype(np.float64) / 255 - 0.5) / 0.5  # timm's ViT normalisation, written out
    plain = spec.replace(input={"layout": "NCHW", "preprocess": None})
    np.testing.assert_array_equal(vitstem.forward(spec, weights, x, profile="exact"),
                                  vitstem.forward(plain, weights, normalised, profile="exact"))
    # uint8 and the same pixel values as floats are the same input
    np.testing.assert_array_equal(vitstem.forward(spec, weights, x), vitstem.forward(spec, weights, x.astype(np.float32)))


@pytest.mark.slow
def test_fast_within_bound_and_exact_is_float64_rounded_once():
    from vitstem.backends.numpy.bound import fast_error_bound

    for name in ("vitstem_tiny_test", "vit_base_patch16_clip_224", "big_vision_vit_s16_sincos_224"):
        spec, weights, x = rand_case(name, batch=1)
        fast = vitstem.forward(spec, weights, x).astype(np.float64)
        exact = vitstem.forward(spec, weights, x, profile="exact")
        assert exact.dtype == np.float32
        assert (np.abs(fast - exact) <= fast_error_bound(spec, weights, x)).all(), name


def test_other_image_size_resamples_the_table():
    """At another size the patch rows come from the spec's policy; prefix rows stay as stored."""
    from vitstem.spec.resampling import resample_grid

    spec, weights, _ = rand_case()
    x = np.random.default_rng(1).standard_normal((1, 3, 20, 12)).astype(np.float32)  # grid 5x6 vs native 3x8
    z = vitstem.forward(spec, weights, x, profile="exact")
    no_pos = {**weights, "pos_embed": np.zeros_like(weights["pos_embed"])}
    delta = z.astype(np.float64) - vitstem.forward(spec, no_pos, x, profile="exact")
    table = weights["pos_embed"][0].astype(np.float64)
    np.testing.assert_allclose(delta[0, :4], table[:4], atol=1e-6)
    expected = resample_grid(table[4:].reshape(3, 8, 8), (5, 6), **spec.resample.kwargs()).reshape(30, 8)
    np.testing.assert_allclose(delta[0, 4:], expected, atol=1e-6)


def test_sincos_table_is_added():
    from vitstem.spec.sincos import sincos_2d

    spec = vitstem.load_spec("big_vision_vit_s16_sincos_224")
    weights = {k: np.zeros(s, np.float32) for k, s in vitstem.weight_shapes(spec).items()}
    x = np.zeros(spec.input_shape(1), np.uint8)  # preprocess maps 0 to -1: zero kernel and bias give z = table
    z = vitstem.forward(spec, weights, x, profile="exact")
    np.testing.assert_array_equal(z[0], sincos_2d((14, 14), 384, convention="big_vision").astype(np.float32))


def test_forward_rejects_bad_input():
    spec, weights, x = rand_case()
    with pytest.raises(vitstem.InputError, match="rank 4"):
        vitstem.forward(spec, weights, x[0])
    with pytest.raises(vitstem.InputError, match="channels"):
        vitstem.forward(spec, weights, x[:, :2])
    with pytest.raises(vitstem.InputError, match="not a positive multiple of the patch size 4x2"):
        vitstem.forward(spec, weights, x[:, :, :10])
    with pytest.raises(vitstem.InputError, match="non-finite"):
        vitstem.forward(spec, weights, np.full_like(x, np.nan))
    fixed = spec.replace(dynamic_image_size=False)
    with pytest.raises(vitstem.InputError, match="dynamic_image_size is false"):
        vitstem.forward(fixed, weights, x[:, :, :8])
    with pytest.raises(vitstem.WeightsError, match="missing weight 'cls_token'"):
        vitstem.forward(spec, {k: v for k, v in weights.items() if k != "cls_token"}, x)
