"""resample_matrix / resample_grid against the libraries each peer calls, computing their own way.

Float64 comparisons expect ~1e-15 (bound 1e-13); float32 ones are bounded by 32 ulp of the
table's largest magnitude: the libraries compute their weights in float32 and sum in another
order. TensorFlow's resize kernels always compute in float32, so TF gets the float32 bound for
float64 input too; so does timm, which casts the table to float32 before interpolating.
"""

import os

import numpy as np
import pytest

from vitstem.spec.resampling import resample_grid, resample_matrix

# The flag values each peer's resampling reduces to (cubic_coeff_a is ignored for bilinear).
TIMM = dict(mode="bicubic", cubic_coeff_a=-0.5, antialias=True, coordinates="half_pixel", exclude_outside=True)
HF_PYTORCH = dict(mode="bicubic", cubic_coeff_a=-0.75, antialias=False, coordinates="half_pixel",
                  exclude_outside=False)
TF_BICUBIC = dict(mode="bicubic", cubic_coeff_a=-0.5, antialias=False, coordinates="half_pixel",
                  exclude_outside=True, phase_steps=1024)  # also HF's TF ViT
BIG_VISION = dict(mode="bilinear", cubic_coeff_a=-0.75, antialias=False, coordinates="align_corners",
                  exclude_outside=False)

# (in_hw, out_hw): non-square up/down, square up/down, same size, mixed, and degenerate sizes.
PAIRS = [((14, 14), (24, 16)), ((24, 24), (7, 9)), ((16, 16), (24, 24)), ((24, 24), (16, 16)),
         ((14, 14), (14, 14)), ((10, 12), (5, 30)), ((3, 2), (1, 5))]
SQUARE_PAIRS = [((14, 14), (24, 24)), ((24, 24), (16, 16)), ((16, 16), (24, 16)),
                ((24, 24), (7, 9)), ((14, 14), (14, 14))]  # square source grids (HF assumes one)
DTYPES = [np.float64, np.float32]
EPS32 = float(np.finfo(np.float32).eps)


def _table(hw, seed, dim=6):
    return np.random.default_rng(seed).standard_normal((*hw, dim))


def _assert_matches(ours, ref, grid, compute_dtype):
    assert ours.shape == ref.shape
    atol = 1e-13 if compute_dtype == np.float64 else 32 * EPS32 * float(np.abs(grid).max())
    np.testing.assert_allclose(ours, ref, rtol=0, atol=atol)


def _quiet_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    return tf


# --- PyTorch F.interpolate -------------------------------------------------------------------

TORCH_CASES = {
    "bicubic": (dict(mode="bicubic", align_corners=False), HF_PYTORCH),
    "bicubic_align_corners": (dict(mode="bicubic", align_corners=True),
                              dict(HF_PYTORCH, coordinates="align_corners")),
    "bicubic_antialias": (dict(mode="bicubic", align_corners=False, antialias=True), TIMM),
    "bilinear_antialias": (dict(mode="bilinear", align_corners=False, antialias=True),
                           dict(TIMM, mode="bilinear")),
    "bilinear": (dict(mode="bilinear", align_corners=False),
                 dict(HF_PYTORCH, mode="bilinear")),
    "bilinear_align_corners": (dict(mode="bilinear", align_corners=True), BIG_VISION),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("in_hw,out_hw", PAIRS)
@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_matches_torch_interpolate(case, in_hw, out_hw, dtype):
    import torch
    import torch.nn.functional as F

    torch_kwargs, flags = TORCH_CASES[case]
    grid = _table(in_hw, seed=1).astype(dtype)
    nchw = torch.from_numpy(grid).permute(2, 0, 1)[None]
    ref = F.interpolate(nchw, size=out_hw, **torch_kwargs)[0].permute(1, 2, 0).numpy()
    ours = resample_grid(grid, out_hw, **flags)
    assert ours.dtype == dtype
    _assert_matches(ours, ref, grid, dtype)
    if in_hw == out_hw:  # PyTorch's own same-size result is exactly the input, and so is ours
        assert np.array_equal(ref, grid) and np.array_equal(ours, grid)


# --- TensorFlow tf.image.resize --------------------------------------------------------------

TF_CASES = {
    "bicubic": (dict(method="bicubic"), TF_BICUBIC),
    "bicubic_antialias": (dict(method="bicubic", antialias=True), TIMM),
    "bilinear": (dict(method="bilinear"), dict(TIMM, mode="bilinear", antialias=False)),
    "bilinear_antialias": (dict(method="bilinear", antialias=True), dict(TIMM, mode="bilinear")),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("in_hw,out_hw", PAIRS)
@pytest.mark.parametrize("case", sorted(TF_CASES))
def test_matches_tf_image_resize(case, in_hw, out_hw, dtype):
    tf = _quiet_tf()
    tf_kwargs, flags = TF_CASES[case]
    grid = _table(in_hw, seed=2).astype(dtype)
    ref = tf.image.resize(grid, out_hw, **tf_kwargs).numpy()
    assert ref.dtype == np.float32  # TF resizes in float32 whatever the input dtype
    ours = resample_grid(grid, out_hw, **flags)
    _assert_matches(ours, ref, grid, np.float32)
    if in_hw == out_hw:  # TF v2 does run the kernel at equal size; it is still the identity
        assert np.array_equal(ref, grid.astype(np.float32))


def test_tf_bicubic_flags_are_all_needed():
    """TF's ResizeBicubic drops out-of-image taps and rounds the phase to 1/1024: both flags matter."""
    tf = _quiet_tf()
    grid = _table((14, 14), seed=3)
    ref = tf.image.resize(grid, (24, 16), method="bicubic").numpy()
    tol = 32 * EPS32 * np.abs(grid).max()
    assert np.abs(resample_grid(grid, (24, 16), **TF_BICUBIC) - ref).max() < tol
    unquantised = dict(TF_BICUBIC, phase_steps=None)
    assert np.abs(resample_grid(grid, (24, 16), **unquantised) - ref).max() > 1e-4
    clamped = dict(TF_BICUBIC, exclude_outside=False)
    assert np.abs(resample_grid(grid, (24, 16), **clamped) - ref).max() > 1e-2


# --- scipy.ndimage.zoom, as big_vision calls it ----------------------------------------------

def _big_vision_resample_posemb(old, new):
    """big_vision.models.vit.resample_posemb, minus its logging."""
    import scipy.ndimage

    if old.shape == new.shape:
        return old
    gs_old = int(np.sqrt(old.shape[1]))
    gs_new = int(np.sqrt(new.shape[1]))
    grid = old.reshape(gs_old, gs_old, -1)
    zoom = (gs_new / gs_old, gs_new / gs_old, 1)
    grid = scipy.ndimage.zoom(grid, zoom, order=1)
    grid = grid.reshape(1, gs_new * gs_new, -1)
    return grid


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gs_old,gs_new", [(14, 24), (24, 7), (16, 12), (7, 12), (2, 5), (5, 1), (16, 16)])
def test_matches_big_vision_scipy_zoom(gs_old, gs_new, dtype):
    import scipy.ndimage

    grid = _table((gs_old, gs_old), seed=4).astype(dtype)
    dim = grid.shape[-1]
    ref = _big_vision_resample_posemb(grid.reshape(1, -1, dim), np.zeros((1, gs_new * gs_new, dim)))
    ours = resample_grid(grid, (gs_new, gs_new), **BIG_VISION)
    _assert_matches(ours.reshape(1, -1, dim), ref, grid, dtype)
    # scipy's own zoom at factor 1 (big_vision returns early) is also exactly the identity.
    assert np.array_equal(scipy.ndimage.zoom(grid, (1, 1, 1), order=1), grid)


# --- timm and HF transformers, through their own functions -----------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("in_hw,out_hw", PAIRS)
def test_matches_timm_resample_abs_pos_embed(in_hw, out_hw, dtype):
    import torch
    from timm.layers import resample_abs_pos_embed

    grid = _table(in_hw, seed=5).astype(dtype)
    dim = grid.shape[-1]
    prefix = np.random.default_rng(6).standard_normal((1, 1, dim)).astype(dtype)
    posemb = torch.from_numpy(np.concatenate([prefix, grid.reshape(1, -1, dim)], axis=1))
    out = resample_abs_pos_embed(posemb, new_size=list(out_hw), old_size=list(in_hw), num_prefix_tokens=1).numpy()
    assert out.dtype == dtype and np.array_equal(out[:, :1], prefix)
    ours = resample_grid(grid, out_hw, **TIMM)
    _assert_matches(ours.reshape(1, -1, dim), out[:, 1:], grid, np.float32)  # timm interpolates in float32


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("in_hw,out_hw", SQUARE_PAIRS)
def test_matches_hf_vit_interpolate_pos_encoding(in_hw, out_hw, dtype):
    import torch
    from transformers import ViTConfig
    from transformers.models.vit.modeling_vit import ViTEmbeddings

    patch, dim = 2, 6
    config = ViTConfig(image_size=in_hw[0] * patch, patch_size=patch, hidden_size=dim, num_attention_heads=1)
    embeddings = ViTEmbeddings(config).to(torch.float64 if dtype == np.float64 else torch.float32)
    grid = _table(in_hw, seed=7).astype(dtype)
    table = np.concatenate([np.ones((1, 1, dim), dtype), grid.reshape(1, -1, dim)], axis=1)
    with torch.no_grad():
        embeddings.position_embeddings.copy_(torch.from_numpy(table))
        tokens = torch.zeros(1, 1 + out_hw[0] * out_hw[1], dim, dtype=embeddings.position_embeddings.dtype)
        out = embeddings.interpolate_pos_encoding(tokens, out_hw[0] * patch, out_hw[1] * patch).numpy()
    assert np.array_equal(out[:, :1], table[:, :1])
    ours = resample_grid(grid, out_hw, **HF_PYTORCH)
    _assert_matches(ours.reshape(1, -1, dim), out[:, 1:], grid, dtype)


# --- the matrices themselves -----------------------------------------------------------------

ALL_FLAGS = [TIMM, HF_PYTORCH, TF_BICUBIC, BIG_VISION, dict(TIMM, mode="bilinear"),
             dict(HF_PYTORCH, coordinates="align_corners"), dict(HF_PYTORCH, cubic_coeff_a=-0.6),
             dict(TIMM, exclude_outside=False)]


@pytest.mark.parametrize("flags", ALL_FLAGS)
def test_same_size_is_exact_identity_and_rows_sum_to_one(flags):
    for n in (1, 2, 7, 14, 37):
        assert np.array_equal(resample_matrix(n, n, **flags), np.eye(n))
    for n_in, n_out in [(14, 24), (24, 7), (1, 3), (5, 1), (37, 36)]:
        m = resample_matrix(n_in, n_out, **flags)
        assert m.shape == (n_out, n_in) and m.dtype == np.float64
        np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=0, atol=1e-15)


def test_hand_derived_bicubic_rows():
    # 2 -> 4 half-pixel: sample positions -0.25, 0.25, 0.75, 1.25. Keys a=-0.75 at distances
    # 0.25, 0.75, 1.25, 1.75 is 225/256, 67/256, -27/256, -9/256.
    clamp = resample_matrix(2, 4, **HF_PYTORCH) * 256
    np.testing.assert_allclose(clamp, [[283, -27], [198, 58], [58, 198], [-27, 283]], rtol=0, atol=1e-12)
    # Excluding outside taps keeps (225, -27) and (225, 67), renormalised.
    exclude = resample_matrix(2, 4, **dict(HF_PYTORCH, exclude_outside=True))
    np.testing.assert_allclose(exclude[:2], [[225 / 198, -27 / 198], [225 / 292, 67 / 292]], rtol=0, atol=1e-15)


def test_hand_derived_antialias_and_align_corners_rows():
    # Bilinear antialias 4 -> 2: the tent is stretched x2 around 0.5 and 2.5; tap -1 is dropped.
    m = resample_matrix(4, 2, **dict(TIMM, mode="bilinear"))
    np.testing.assert_allclose(m, [[3 / 7, 3 / 7, 1 / 7, 0], [0, 1 / 7, 3 / 7, 3 / 7]], rtol=0, atol=1e-15)
    # Corner-aligned linear 2 -> 3, and a single output sits on input 0.
    np.testing.assert_array_equal(resample_matrix(2, 3, **BIG_VISION), [[1, 0], [0.5, 0.5], [0, 1]])
    np.testing.assert_array_equal(resample_matrix(3, 1, **BIG_VISION), [[1, 0, 0]])


def test_phase_steps_rounds_to_nearest_with_ties_to_even():
    linear = dict(mode="bilinear", cubic_coeff_a=-0.5, antialias=False, coordinates="half_pixel",
                  exclude_outside=True)
    # 3 -> 5: positions -0.2, 0.4, 1.0, 1.6, 2.2 round (quarters) to -0.25, 0.5, 1.0, 1.5, 2.25.
    np.testing.assert_array_equal(resample_matrix(3, 5, phase_steps=4, **linear),
                                  [[1, 0, 0], [0.5, 0.5, 0], [0, 1, 0], [0, 0.5, 0.5], [0, 0, 1]])
    # 2 -> 4 in halves: fractions 0.75, 0.25, 0.75, 0.25 are ties -> 1, 0, 1, 0 (even).
    np.testing.assert_array_equal(resample_matrix(2, 4, phase_steps=2, **linear),
                                  [[1, 0], [1, 0], [0, 1], [0, 1]])


def test_resample_grid_is_the_matrix_product_in_the_grid_dtype():
    grid = _table((5, 7), seed=8)
    mh, mw = resample_matrix(5, 9, **TIMM), resample_matrix(7, 3, **TIMM)
    expected = np.einsum("ik,jl,klc->ijc", mh, mw, grid)
    np.testing.assert_allclose(resample_grid(grid, (9, 3), **TIMM), expected, rtol=0, atol=1e-14)
    out32 = resample_grid(grid.astype(np.float32), (9, 3), **TIMM)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, expected, rtol=0, atol=16 * EPS32 * np.abs(grid).max())


@pytest.mark.parametrize("change,message", [
    (dict(mode="nearest"), "mode"),
    (dict(coordinates="asymmetric"), "coordinates"),
    (dict(coordinates="align_corners"), "antialias=True is only defined"),
    (dict(phase_steps=1024), "phase_steps is only defined"),
    (dict(antialias="yes"), "antialias"),
    (dict(exclude_outside=1), "exclude_outside"),
    (dict(cubic_coeff_a=float("nan")), "cubic_coeff_a"),
    (dict(in_size=0), "in_size"),
    (dict(out_size=2.0), "out_size"),
    (dict(in_size=True), "in_size"),
    (dict(antialias=False, phase_steps=0), "phase_steps"),
])
def test_resample_matrix_rejects_bad_arguments(change, message):
    kwargs = dict(TIMM, in_size=4, out_size=3)
    kwargs.update(change)
    with pytest.raises(ValueError, match=message):
        resample_matrix(**kwargs)


def test_resample_grid_rejects_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        resample_grid(np.zeros((4, 4)), (2, 2), **TIMM)
    with pytest.raises(ValueError, match="floating"):
        resample_grid(np.zeros((4, 4, 2), dtype=np.int64), (2, 2), **TIMM)
    with pytest.raises(ValueError, match="out_hw"):
        resample_grid(np.zeros((4, 4, 2)), (2, 2, 2), **TIMM)
    with pytest.raises(ValueError, match="out_hw"):
        resample_grid(np.zeros((4, 4, 2)), (2, 0), **TIMM)


@pytest.mark.parametrize("coordinates", ["half_pixel", "align_corners"])
def test_bilinear_border_rule_only_matters_for_a_stretched_kernel(coordinates):
    flags = dict(mode="bilinear", cubic_coeff_a=-0.5, antialias=False, coordinates=coordinates)
    for n_in, n_out in [(14, 24), (24, 7), (3, 8), (1, 4), (5, 1), (16, 16)]:
        assert np.allclose(resample_matrix(n_in, n_out, exclude_outside=True, **flags),
                           resample_matrix(n_in, n_out, exclude_outside=False, **flags), rtol=0, atol=1e-15)
    if coordinates == "half_pixel":  # antialiased downsampling reaches past the border
        stretched = dict(flags, antialias=True)
        assert not np.allclose(resample_matrix(24, 7, exclude_outside=True, **stretched),
                               resample_matrix(24, 7, exclude_outside=False, **stretched))
