"""sincos_2d against timm's own builder and independent copies of big_vision's and MAE's code."""

import math

import numpy as np
import pytest

from vitstem.spec.sincos import sincos_2d

GRIDS = [((14, 14), 768), ((7, 5), 16), ((24, 16), 64), ((1, 3), 8), ((2, 2), 4)]
EPS32 = float(np.finfo(np.float32).eps)


def _big_vision_posemb_sincos_2d(h, w, width, temperature=10_000.0):
    """big_vision.models.vit.posemb_sincos_2d with jnp -> np (float64) and without the batch dim."""
    y, x = np.mgrid[:h, :w]
    assert width % 4 == 0, "Width must be mult of 4 for sincos posemb"
    omega = np.arange(width // 4) / (width // 4 - 1)
    omega = 1.0 / (temperature**omega)
    y = np.einsum("m,d->md", y.flatten(), omega)
    x = np.einsum("m,d->md", x.flatten(), omega)
    return np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)


def _mae_get_2d_sincos_pos_embed(embed_dim, grid_h_size, grid_w_size):
    """MAE util/pos_embed.py (float64 omega as originally, np.float), extended to h != w."""
    grid_h = np.arange(grid_h_size, dtype=np.float32)
    grid_w = np.arange(grid_w_size, dtype=np.float32)
    grid = np.meshgrid(grid_w, grid_h)  # here w goes first
    grid = np.stack(grid, axis=0)
    grid = grid.reshape([2, 1, grid_h_size, grid_w_size])
    emb_h = _mae_1d(embed_dim // 2, grid[0])  # named h upstream, but grid[0] is the w (x) coordinate
    emb_w = _mae_1d(embed_dim // 2, grid[1])
    return np.concatenate([emb_h, emb_w], axis=1)


def _mae_1d(embed_dim, pos):
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000**omega
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


@pytest.mark.parametrize("grid_hw,dim", GRIDS)
def test_matches_timm_build_sincos2d_pos_embed(grid_hw, dim):
    import torch
    from timm.layers import build_sincos2d_pos_embed

    # timm computes bands and angles in float32 whatever `dtype` is; `dtype` only casts the result.
    ref = build_sincos2d_pos_embed(list(grid_hw), dim=dim, dtype=torch.float64).numpy()
    ours = sincos_2d(grid_hw, dim, convention="timm")
    assert ours.shape == ref.shape == (grid_hw[0] * grid_hw[1], dim) and ours.dtype == np.float64
    # Error of a float32 angle, |angle| <= max(h, w), plus float32 sin/cos.
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2 * EPS32 * max(grid_hw))


@pytest.mark.parametrize("grid_hw,dim", [g for g in GRIDS if g[1] >= 8])
def test_matches_big_vision_posemb_sincos_2d(grid_hw, dim):
    ref = _big_vision_posemb_sincos_2d(*grid_hw, dim)
    np.testing.assert_allclose(sincos_2d(grid_hw, dim, convention="big_vision"), ref, rtol=0, atol=1e-15)
    ref_t = _big_vision_posemb_sincos_2d(*grid_hw, dim, temperature=100.0)
    ours_t = sincos_2d(grid_hw, dim, convention="big_vision", temperature=100.0)
    np.testing.assert_allclose(ours_t, ref_t, rtol=0, atol=1e-15)


@pytest.mark.parametrize("grid_hw,dim", GRIDS)
def test_matches_mae_get_2d_sincos_pos_embed(grid_hw, dim):
    ref = _mae_get_2d_sincos_pos_embed(dim, *grid_hw)
    np.testing.assert_allclose(sincos_2d(grid_hw, dim, convention="mae"), ref, rtol=0, atol=1e-15)


def test_hand_derived_values():
    s1, c1 = math.sin(1.0), math.cos(1.0)
    # dim=4: one band with omega = 1/10000**0 = 1. Rows (y, x) = (0,0), (0,1), (1,0), (1,1).
    mae = [[0, 1, 0, 1], [s1, c1, 0, 1], [0, 1, s1, c1], [s1, c1, s1, c1]]  # [sin x, cos x, sin y, cos y]
    timm = [[0, 0, 1, 1], [0, s1, 1, c1], [s1, 0, c1, 1], [s1, s1, c1, c1]]  # [sin y, sin x, cos y, cos x]
    np.testing.assert_allclose(sincos_2d((2, 2), 4, convention="mae"), mae, rtol=0, atol=1e-16)
    np.testing.assert_allclose(sincos_2d((2, 2), 4, convention="timm"), timm, rtol=0, atol=1e-16)
    # big_vision dim=8: omega = 1/10000**[0/1, 1/1] = [1, 1e-4]. Grid 1 x 2, row (y=0, x=1):
    # [sin x*omega, cos x*omega, sin 0, cos 0].
    s4, c4 = math.sin(1e-4), math.cos(1e-4)
    np.testing.assert_allclose(sincos_2d((1, 2), 8, convention="big_vision"),
                               [[0, 0, 1, 1, 0, 0, 1, 1], [s1, s4, c1, c4, 0, 0, 1, 1]], rtol=0, atol=1e-16)


def test_timm_and_mae_differ_only_by_block_order():
    q = 64 // 4
    mae = sincos_2d((5, 7), 64, convention="mae")
    timm = sincos_2d((5, 7), 64, convention="timm")
    sin_x, cos_x, sin_y, cos_y = (mae[:, k * q:(k + 1) * q] for k in range(4))
    assert np.array_equal(timm, np.concatenate([sin_y, sin_x, cos_y, cos_x], axis=1))
    # big_vision's ladder ends exactly at 1/temperature; MAE's stops one step short.
    bv = sincos_2d((1, 2), 64, convention="big_vision")
    assert abs(bv[1, q - 1] - math.sin(1e-4)) < 1e-18 and abs(mae[1, q - 1] - bv[1, q - 1]) > 1e-5


@pytest.mark.parametrize("args,kwargs,message", [
    (((4, 4), 6), dict(convention="mae"), "dim=6"),
    (((4, 4), 0), dict(convention="timm"), "dim=0"),
    (((4, 4), 4), dict(convention="big_vision"), "dim=4"),
    (((4, 4), 8), dict(convention="moco"), "convention"),
    (((4, 0), 8), dict(convention="mae"), "grid_hw"),
    (((4,), 8), dict(convention="mae"), "grid_hw"),
    (((4, 4), 8), dict(convention="mae", temperature=0.0), "temperature"),
])
def test_rejects_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sincos_2d(*args, **kwargs)
