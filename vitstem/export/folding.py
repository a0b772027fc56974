"""The constants of the exported graph, folded at export time in float64 (numpy only).

The graph computes z0 = [prefix rows; Conv(images, E') + patch table] (fast, NCHW),
Pad(patches) @ E' + table (fast, NHWC) or (patches @ E + b, padded) + table (exact). Here E' is the
kernel with the preprocessing scale/std folded into its rows, the patch rows of the table hold the
position rows plus the folded bias, and the prefix rows hold the prefix tokens plus their position
rows, so the prefix tokens cost no arithmetic at run time.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..spec import Spec
from ..spec.position import position_table
from ..spec.vocabulary import Layout


def patch_order(layout: Layout) -> str:
    """How the graph flattens a patch: 'CHW' from NCHW input (canonical), 'HWC' from NHWC input."""
    return "CHW" if layout == Layout.NCHW else "HWC"


def _channel_of_rows(spec: Spec, order: str) -> np.ndarray:
    """Channel index of each kernel row, in the graph's patch order."""
    ph, pw = spec.patch_size
    c = np.arange(spec.in_channels)
    return np.repeat(c, ph * pw) if order == "CHW" else np.tile(c, ph * pw)


def kernel_matrix(spec: Spec, weights: Mapping[str, np.ndarray], order: str, fold_preprocess: bool) -> np.ndarray:
    """E (K, D) float64, rows in the graph's patch order; scaled by scale/std per channel when folding."""
    w = np.asarray(weights["patch_embed.weight"], dtype=np.float64)  # (D, C, Ph, Pw)
    if order == "HWC":
        w = w.transpose(0, 2, 3, 1)
    e = w.reshape(spec.embed_dim, spec.patch_dim).T
    pre = spec.input.preprocess
    if fold_preprocess and pre is not None:
        gain = pre.scale / np.asarray(pre.std, dtype=np.float64)
        e = e * gain[_channel_of_rows(spec, order)][:, None]
    return e


def patch_bias(spec: Spec, weights: Mapping[str, np.ndarray], fold_preprocess: bool) -> np.ndarray:
    """b' (D,) float64: the patch bias, minus E's response to the mean/std shift when folding.

    x' = (x * s - m) / std gives x' E = x (s / std) E - (m / std) E, so b' = b - sum_k E_k m_c / std_c.
    """
    d = spec.embed_dim
    b = np.asarray(weights["patch_embed.bias"], dtype=np.float64) if spec.patch_bias else np.zeros(d)
    pre = spec.input.preprocess
    if fold_preprocess and pre is not None:
        shift = np.asarray(pre.mean, dtype=np.float64) / np.asarray(pre.std, dtype=np.float64)
        w = np.asarray(weights["patch_embed.weight"], dtype=np.float64)  # (D, C, Ph, Pw)
        b = b - np.einsum("dchw,c->d", w, shift)
    return b


def prefix_rows(spec: Spec, weights: Mapping[str, np.ndarray], dtype) -> np.ndarray:
    """(P, D) prefix tokens plus their position rows, rounded once to `dtype`.

    In float32 this is the reference's own sum of float32 values, so these rows are bit-identical.
    """
    dtype = np.dtype(dtype)
    parts = [np.asarray(weights[n]) for n in ("cls_token", "dist_token", "reg_tokens") if n in weights]
    if not parts:
        return np.zeros((0, spec.embed_dim), dtype)
    tokens = np.concatenate(parts, axis=1)[0]
    rows, _ = position_table(spec, weights, spec.pos_grid if spec.position_embedding.kind == "learned"
                             else spec.patch_grid())
    work = np.float32 if dtype == np.float32 else np.float64
    tokens = tokens.astype(work)
    tokens[: rows.shape[0]] += rows.astype(work)
    return tokens.astype(dtype)


def patch_rows(spec: Spec, weights: Mapping[str, np.ndarray], grid: tuple[int, int], bias: np.ndarray | None) -> np.ndarray:
    """(gh*gw, D) float64 position rows for `grid` (resampled with the spec's policy), plus `bias`."""
    _, rows = position_table(spec, weights, grid)
    return rows if bias is None else rows + bias
