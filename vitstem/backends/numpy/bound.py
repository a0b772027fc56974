"""How far a conforming float32 ("fast") engine may be from the exact z0, element by element.

The bound is derived from standard floating-point error analysis (Higham, Accuracy and
Stability of Numerical Algorithms, ch. 3): with unit roundoff u = 2^-24 and
gamma(n) = n*u / (1 - n*u), a sum of n terms, each a product with at most r rounded factors,
evaluated in ANY order (blocked GEMM, conv, FMA, pairwise) has |error| <= gamma(n + r) * sum|terms|.

Patch rows. z = sum_k x_k E_k + b + t with x_k = (p_k*s - m_c)/sd_c. An engine may compute that
as written, or fold preprocessing into the kernel and bias (p_k*(s/sd_c)*E_k summed, plus
b - sum_k (m_c/sd_c) E_k), and may fold b into the table t. Counting every form: at most 2K + 2
terms (K pixel terms, K mean terms, b, t) with at most 4 roundings per term (input to float32,
s/sd, the kernel product, t rounded to float32), so

    |z_fast - z| <= gamma(2K + 6) * ( sum_k (|p_k| s + |m_c|)/sd_c * |E_k| + |b| + |t| )

(without preprocessing the first sum is sum_k |x_k||E_k|). Prefix rows: z = token + t, gamma(6)(|token| + |t|).
The comparison is with the exact profile's output, itself rounded once to float32: one more u|z|.
A table resampled in float32 inside the graph (ONNX Resize) adds gamma(taps + 16) * (|Mh| |T| |Mw|^T).

Pre-norm LayerNorm propagates the bound e through mean, centring, variance (two-pass or
E[z^2] - mean^2, whichever an engine uses: the larger bound is taken), 1/sqrt and the affine map,
capped by |n| <= sqrt(D), which holds for any normalised row; see `_layer_norm_bound`. RmsNorm is
the same without the centring, its mean square bounded as the one-pass variance (`_rms_norm_bound`).
A patch norm sees x E + b alone, known to within gamma(2K + 5) * (sum_k |x_k||E_k| + |b|); its bound
then gets the table's addition and the final rounding: e(1 + u) + gamma(3)(|n| + |t|).
Two fast engines differ by at most the sum of their bounds.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ...spec import Spec
from ...spec.inputs import check_images
from ...spec.position import position_table
from ...spec.weights import check_weights
from .stem import (add_position, crop, embed_patches, layer_norm, normalize, patchify, prefix_tokens, preprocess,
                   to_nchw)

U = 2.0**-24  # unit roundoff of float32


def gamma(n) -> np.ndarray:
    """gamma(n) = n u / (1 - n u): the error factor of n successive float32 roundings."""
    n = np.asarray(n, dtype=np.float64)
    return n * U / (1.0 - n * U)


def _pixel_magnitude(spec: Spec, images: np.ndarray) -> np.ndarray:
    """(|p| s + |m|) / sd per input element (NCHW), or |x| without preprocessing."""
    p = np.abs(crop(spec, to_nchw(spec, images)).astype(np.float64))
    pre = spec.input.preprocess
    if pre is None:
        return p
    mean = np.abs(np.asarray(pre.mean)).reshape(1, -1, 1, 1)
    std = np.asarray(pre.std).reshape(1, -1, 1, 1)
    return (p * pre.scale + mean) / std


def _resample_error(spec: Spec, weights, grid) -> np.ndarray:
    """Bound on the float32 rounding of resampling the learned table inside a graph."""
    from ...spec.resampling import resample_matrix

    src = spec.pos_grid
    if spec.position_embedding.kind != "learned" or tuple(grid) == tuple(src):
        return np.zeros((grid[0] * grid[1], spec.embed_dim))
    mh, mw = (np.abs(resample_matrix(s, g, **spec.resample.kwargs())) for s, g in zip(src, grid))
    table = np.abs(np.asarray(weights["pos_embed"], np.float64)[0, spec.pos_prefix_rows:]).reshape(*src, -1)
    taps = np.count_nonzero(mh, axis=1).max() * np.count_nonzero(mw, axis=1).max()
    magnitude = np.einsum("ik,jl,kld->ijd", mh, mw, table).reshape(grid[0] * grid[1], -1)
    return gamma(taps + 16) * magnitude


def _scaled_rows(c, e_c, a, e_a, d: int):
    """n = c / sqrt(a) and a bound on its error, given |c~ - c| <= e_c and |a~ - a| <= e_a (a = var + eps
    or mean square + eps, each > 0), for an engine that rounds a~, takes a square root and divides
    (or multiplies by a reciprocal square root): 2 more roundings."""
    delta = (e_a + U * (a + e_a)) / a  # relative error of the rounded a~
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(delta < 1, 0.5 * delta / (1 - delta) ** 1.5, np.inf) + 2 * U  # of 1/sqrt(a~)
    r = 1.0 / np.sqrt(a)
    with np.errstate(invalid="ignore"):  # 0 * inf where rho is unbounded: replaced just below
        e_n = r * (e_c * (1 + rho) + np.abs(c) * rho) * (1 + U) + U * np.abs(c) * r
    n = c * r
    # A normalised row has sum(n^2) = D s / (s + eps) <= D (s the variance or the mean square), so
    # |n| <= sqrt(D) in any engine (up to its rounding): a bound that holds even where the error of s
    # reaches s + eps itself.
    e_n = np.minimum(np.where(np.isinf(rho), np.inf, e_n), np.abs(n) + np.sqrt(d) * (1 + gamma(d + 8)))
    return n, e_n


def _layer_norm_bound(z: np.ndarray, e: np.ndarray, weight, bias, eps: float) -> np.ndarray:
    """Bound on |LN_fast(z~) - LN(z)| where |z~ - z| <= e, z and e per element, over the last axis."""
    d = z.shape[-1]
    mu = z.mean(-1, keepdims=True)
    e_mu = e.mean(-1, keepdims=True) + gamma(d + 1) * np.abs(z).mean(-1, keepdims=True)
    c = z - mu
    e_c = (e + e_mu) * (1 + U) + U * np.abs(c)
    var = (c * c).mean(-1, keepdims=True)
    two_pass = (2 * np.abs(c) * e_c + e_c**2).mean(-1, keepdims=True) + gamma(d + 2) * var
    one_pass = ((2 * np.abs(z) * e + e**2).mean(-1, keepdims=True) + 2 * np.abs(mu) * e_mu + e_mu**2
                + gamma(d + 3) * ((z * z).mean(-1, keepdims=True) + mu**2))
    n, e_n = _scaled_rows(c, e_c, var + eps, np.maximum(two_pass, one_pass), d)
    return np.abs(weight) * e_n * (1 + U) + gamma(3) * (np.abs(n * weight) + np.abs(bias))


def _rms_norm_bound(z: np.ndarray, e: np.ndarray, weight, eps: float) -> np.ndarray:
    """Bound on |RMS_fast(z~) - RMS(z)| where |z~ - z| <= e, over the last axis.

    The mean square of z~ is off by at most mean(2|z|e + e^2) (the data) plus gamma(D + 2) * mean((|z| + e)^2)
    (D squares, any summation order, the division by D); then as LayerNorm from 1/sqrt on, with c = z.
    """
    d = z.shape[-1]
    square = (z * z).mean(-1, keepdims=True)
    e_square = (2 * np.abs(z) * e + e**2).mean(-1, keepdims=True) + gamma(d + 2) * ((np.abs(z) + e) ** 2).mean(
        -1, keepdims=True)
    n, e_n = _scaled_rows(z, e, square + eps, e_square, d)
    return np.abs(weight) * e_n * (1 + U) + gamma(3) * np.abs(n * weight)


def _norm_bound(norm, weights, prefix: str, z: np.ndarray, e: np.ndarray) -> np.ndarray:
    """The bound after the spec's `norm` (weights PREFIX.*) of z known to within e."""
    weight = weights[f"{prefix}.weight"].astype(np.float64)
    if norm.kind == "rms_norm":
        return _rms_norm_bound(z, e, weight, norm.eps)
    return _layer_norm_bound(z, e, weight, weights[f"{prefix}.bias"].astype(np.float64), norm.eps)


def fast_error_bound(spec: Spec, weights: Mapping[str, np.ndarray], images, *,
                     resampled_in_float32: bool = False) -> np.ndarray:
    """Per-element bound (B, T, D) on |z0 of any conforming fast engine - z0 of the exact profile (float32)|."""
    weights = check_weights(weights, spec)
    images, hw = check_images(spec, images)
    grid = spec.patch_grid(hw)
    f64 = np.float64
    absw = {k: np.abs(v.astype(f64)) for k, v in weights.items()}
    table = position_table(spec, weights, grid)
    # Magnitudes, routed through the reference's own functions so the shapes cannot drift.
    mag_patches = embed_patches(spec, absw, patchify(_pixel_magnitude(spec, images), spec.patch_size), f64,
                                ordered=False)
    mag_prefix = prefix_tokens(spec, absw, images.shape[0], f64)
    magnitude = add_position(spec, mag_prefix, mag_patches, tuple(np.abs(t) for t in table), f64)
    n_prefix = spec.num_prefix_tokens
    # One more rounding than the fast engine makes: the exact profile's own final rounding to float32.
    e = magnitude * gamma(7)
    e[:, n_prefix:] = magnitude[:, n_prefix:] * gamma(2 * spec.patch_dim + 7)
    if spec.patch_norm is None and spec.pre_norm is None:
        if resampled_in_float32:
            e[:, n_prefix:] += _resample_error(spec, weights, grid)
        return e
    # The norms' inputs in float64 (their last bits do not matter to a bound, so no ordered sums).
    x = preprocess(spec, crop(spec, to_nchw(spec, images)), f64)
    rows = embed_patches(spec, weights, patchify(x, spec.patch_size), f64, ordered=False)
    if spec.patch_norm is not None:
        # The norm sees x E + b alone (2K + 1 terms, 4 roundings each); the table is added after it,
        # one rounded addition of a float32 table, plus the exact profile's final rounding.
        e_rows = _norm_bound(spec.patch_norm, weights, "patch_embed.norm", rows,
                             gamma(2 * spec.patch_dim + 5) * mag_patches)
        rows = normalize(spec.patch_norm, weights, "patch_embed.norm", rows)
        e[:, n_prefix:] = e_rows * (1 + U) + gamma(3) * (np.abs(rows) + np.abs(table[1]))
    if resampled_in_float32:
        e[:, n_prefix:] += _resample_error(spec, weights, grid)
    if spec.pre_norm is None:
        return e
    z = add_position(spec, prefix_tokens(spec, weights, x.shape[0], f64), rows, table, f64)
    return _norm_bound(spec.pre_norm, weights, "norm_pre", z, e)


__all__ = ["fast_error_bound", "gamma", "layer_norm"]
