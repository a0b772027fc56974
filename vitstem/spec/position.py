"""The position table for a patch grid: a constant of (spec, weights, grid), shared by every engine.

It is computed in float64 here and rounded once by the caller, so every backend and the ONNX
export start from the same bits. Rows are split as (prefix rows, patch rows); prefix rows are
never resampled (every peer splits them off before resizing).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .model import Spec


def position_table(spec: Spec, weights: Mapping[str, np.ndarray], grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(prefix_rows (spec.pos_prefix_rows, D), patch_rows (gh*gw, D)) in float64 for `grid`.

    learned: the stored table, its patch rows resampled from spec.pos_grid to `grid` with the
    spec's policy when they differ. sincos2d: the fixed table for `grid`; prefix rows are zeros
    (as in MAE). none: zeros.
    """
    pe, d = spec.position_embedding, spec.embed_dim
    gh, gw = grid
    prefix = np.zeros((spec.pos_prefix_rows, d))
    if pe.kind == "none":
        return prefix, np.zeros((gh * gw, d))
    if pe.kind == "sincos2d":
        from .sincos import sincos_2d

        return prefix, sincos_2d(grid, d, convention=pe.sincos_convention, temperature=pe.temperature)
    table = np.asarray(weights["pos_embed"], dtype=np.float64)[0]
    prefix, patches = table[: spec.pos_prefix_rows], table[spec.pos_prefix_rows :]
    src = spec.pos_grid
    if tuple(grid) != tuple(src):
        from .resampling import resample_grid

        patches = resample_grid(patches.reshape(*src, d), (gh, gw), **spec.resample.kwargs()).reshape(gh * gw, d)
    return prefix, patches
