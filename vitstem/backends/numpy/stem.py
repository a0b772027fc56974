"""The NumPy reference: it defines z0.

    z0 = pre_norm( [x_cls; x_dist; x_reg...; patch_norm(x^1 E + b); ...; patch_norm(x^N E + b)] + E_pos )

for each image, where x^i is the i-th whole patch flattened channel-major (C, Ph, Pw) (with
input.remainder: drop, the pixels past the last whole patch are cropped first) and
E = patch_embed.weight.reshape(D, K).T, K = C*Ph*Pw. Each norm is optional, a LayerNorm or an
RmsNorm over the D values of a row.

Profile "fast" computes in float32, in whatever order the engine likes. Profile "exact" computes
in float64 with every sum in a fixed order (`sum_in_order`: k = 0, 1, ..., K-1, left to right) and
rounds once, at the very end, to float32: every step is an IEEE-correctly-rounded elementwise
operation in a defined order, so every engine can reproduce the float64 bits (see spec/exact.py).

The stage functions below are the contract every backend implements under the same names and
signatures (torch and tensorflow take their tensors): to_nchw, crop, preprocess, patchify,
embed_patches, prefix_tokens, add_position, normalize, the composition `stages` on a checked batch,
and `forward(spec, weights, images, profile)`. The layout-aware stages take the batch's `layout`
(NCHW after to_nchw; an engine that reads the spec's layout natively passes it instead).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ...spec import Spec
from ...spec.exact import sum_in_order
from ...spec.inputs import cast_images, check_images, check_z0
from ...spec.position import position_table
from ...spec.remainder import cropped_size
from ...spec.vocabulary import Layout, Profile
from ...spec.weights import check_weights


def compute_dtype(profile) -> type:
    """The NumPy scalar type `profile` computes in; ValueError naming the profiles otherwise."""
    return np.dtype(Profile.parse(profile, "profile").compute_dtype).type


def to_nchw(spec: Spec, images: np.ndarray) -> np.ndarray:
    """(B, C, H, W) view of a batch in the spec's layout."""
    return images.transpose(Layout(spec.input.layout).to_nchw)


def crop(spec: Spec, x: np.ndarray, layout: Layout = Layout.NCHW) -> np.ndarray:
    """The batch cut to the whole patches (input.remainder: drop), as a strided conv reads it; a
    no-op when H and W are multiples of the patch (the only sizes `refuse` lets through)."""
    layout = Layout(layout)
    hw = layout.image_hw(x.shape)
    cut = cropped_size(*hw, spec.patch_size)
    if cut == hw:
        return x
    index = [slice(None)] * 4
    index[layout.spatial_axes[0]], index[layout.spatial_axes[1]] = slice(cut[0]), slice(cut[1])
    return x[tuple(index)]


def preprocess(spec: Spec, x: np.ndarray, dtype, layout: Layout = Layout.NCHW) -> np.ndarray:
    """x = (pixels * scale - mean) / std per channel, or x unchanged without preprocessing."""
    layout = Layout(layout)
    x = cast_images(x, dtype, f"the {np.dtype(dtype).name} compute")
    pre = spec.input.preprocess
    if pre is None:
        return x
    shape = layout.shape(1, -1, 1, 1)
    mean = np.asarray(pre.mean, dtype).reshape(shape)
    std = np.asarray(pre.std, dtype).reshape(shape)
    return (x * dtype(pre.scale) - mean) / std


def patchify(x: np.ndarray, patch_size: tuple[int, int], layout: Layout = Layout.NCHW) -> np.ndarray:
    """(B, C, H, W) -> (B, N, C*Ph*Pw): patches in row-major grid order, each flattened (C, Ph, Pw)."""
    layout = Layout(layout)
    x = x.transpose(layout.to_nchw)
    b, c, h, w = x.shape
    ph, pw = patch_size
    x = x.reshape(b, c, h // ph, ph, w // pw, pw)
    return x.transpose(0, 2, 4, 1, 3, 5).reshape(b, (h // ph) * (w // pw), c * ph * pw)


def embed_patches(spec: Spec, weights: Mapping[str, np.ndarray], patches: np.ndarray, dtype, *,
                  ordered: bool | None = None) -> np.ndarray:
    """x^i E (+ b): the patch projection, equal to a conv with kernel = stride = P.

    fast: one float32 matmul. exact: sum over k of x_k * E[k] in order k = 0..K-1 (float64).
    `ordered=False` allows a float64 matmul where the bits do not matter (error-bound magnitudes).
    """
    E = weights["patch_embed.weight"].astype(dtype).reshape(spec.embed_dim, spec.patch_dim).T
    if dtype == np.float64 and ordered is not False:
        columns = np.ascontiguousarray(np.moveaxis(patches, -1, 0))[..., None]  # (K, B, N, 1): x_k per patch
        out = sum_in_order(columns[k] * E[k] for k in range(spec.patch_dim))
    else:
        out = patches @ E
    if spec.patch_bias:
        out = out + weights["patch_embed.bias"].astype(dtype)
    return out


def prefix_tokens(spec: Spec, weights: Mapping[str, np.ndarray], batch: int, dtype) -> np.ndarray:
    """(B, P, D): [cls, dist, registers...] in that order, the same for every image."""
    parts = [weights[n].astype(dtype) for n in ("cls_token", "dist_token", "reg_tokens") if n in weights]
    tokens = np.concatenate(parts, axis=1) if parts else np.zeros((1, 0, spec.embed_dim), dtype)
    return np.broadcast_to(tokens, (batch, tokens.shape[1], spec.embed_dim))


def add_position(spec: Spec, prefix: np.ndarray, patches: np.ndarray, table, dtype) -> np.ndarray:
    """[prefix; patches] + E_pos, `table` the pair (prefix rows, patch rows) of `position_table`;
    without covers_prefix the prefix tokens get no position."""
    prefix_rows, patch_rows = (t.astype(dtype) for t in table)
    n = spec.pos_prefix_rows  # 0 or the number of prefix tokens
    prefix = np.concatenate([prefix[:, :n] + prefix_rows, prefix[:, n:]], axis=1)
    return np.concatenate([prefix, patches + patch_rows], axis=1)


def _row_mean(v: np.ndarray) -> np.ndarray:
    """Mean over the last axis (kept). In float64 (exact) the sum runs in order d = 0..D-1."""
    if v.dtype == np.float64:
        return sum_in_order(np.ascontiguousarray(np.moveaxis(v, -1, 0))[..., None]) / v.shape[-1]
    return v.mean(axis=-1, keepdims=True)


def layer_norm(z: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis with the biased variance, as torch.nn.LayerNorm.

    In float64 (exact) the two sums over D run in order d = 0..D-1; in float32 any order will do.
    """
    centred = z - _row_mean(z)
    var = _row_mean(centred * centred)
    return centred / np.sqrt(var + z.dtype.type(eps)) * weight + bias


def rms_norm(z: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """RmsNorm over the last axis, as timm's RmsNorm: z / sqrt(mean(z^2) + eps) * weight (no centring,
    no bias). In float64 (exact) the sum over D runs in order d = 0..D-1."""
    return z / np.sqrt(_row_mean(z * z) + z.dtype.type(eps)) * weight


def normalize(norm, weights: Mapping[str, np.ndarray], prefix: str, z: np.ndarray) -> np.ndarray:
    """The spec's `norm` (a Norm, or None: z unchanged) with the weights PREFIX.weight [, PREFIX.bias]."""
    if norm is None:
        return z
    weight = weights[f"{prefix}.weight"].astype(z.dtype)
    if norm.kind == "rms_norm":
        return rms_norm(z, weight, norm.eps)
    return layer_norm(z, weight, weights[f"{prefix}.bias"].astype(z.dtype), norm.eps)


def stages(spec: Spec, weights: Mapping[str, np.ndarray], images: np.ndarray, dtype) -> np.ndarray:
    """z0 in `dtype` before any final rounding: the stages in order, on a checked batch."""
    x = preprocess(spec, crop(spec, to_nchw(spec, images)), dtype)
    patches = embed_patches(spec, weights, patchify(x, spec.patch_size), dtype)
    patches = normalize(spec.patch_norm, weights, "patch_embed.norm", patches)
    prefix = prefix_tokens(spec, weights, x.shape[0], dtype)
    table = position_table(spec, weights, spec.patch_grid(Layout.NCHW.image_hw(x.shape)))
    z = add_position(spec, prefix, patches, table, dtype)
    return normalize(spec.pre_norm, weights, "norm_pre", z)


def forward(spec: Spec, weights: Mapping[str, np.ndarray], images, profile: str = "fast") -> np.ndarray:
    """z0 of shape (B, prefix + N, D), float32."""
    z = unrounded(spec, weights, images, profile)
    with np.errstate(over="ignore"):  # exact's final rounding: an overflow is refused by check_z0, not warned
        return check_z0(z.astype(np.float32))


def unrounded(spec: Spec, weights: Mapping[str, np.ndarray], images, profile: str = "fast") -> np.ndarray:
    """z0 in the profile's dtype, before the final rounding to float32 (exact: the float64 steps)."""
    dtype = compute_dtype(profile)
    weights = check_weights(weights, spec)
    images, _ = check_images(spec, images)
    return stages(spec, weights, images, dtype)
