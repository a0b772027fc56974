"""The position table for a patch grid: a constant of (spec, weights, grid), defined once for every engine.

Rows are split as (prefix rows, patch rows) at spec.pos_prefix_rows; prefix rows are never resampled
(every peer splits them off before resizing). With NumPy (the defaults) the table is float64, rounded
once by the caller, so every backend and the ONNX export start from the same bits. A framework engine
passes its own two primitives (the weightless table as its constants; resampling applied to its own
pos_embed tensor, so gradients reach it) and gets the same rows as its tensors.
"""

from __future__ import annotations

import numbers
from typing import Mapping

import numpy as np

from .model import Spec


def native_grid(spec: Spec, grid) -> bool:
    """Whether `grid` is the stored table's own (False for a symbolic grid: a traced engine resamples it,
    which at the native grid is exactly the identity)."""
    return all(isinstance(g, numbers.Integral) for g in grid) and tuple(grid) == tuple(spec.pos_grid)


def fixed_table(spec: Spec, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The float64 table of a spec without learned rows: sincos2d (the fixed table for `grid`; prefix
    rows zeros, as in MAE) or none (zeros)."""
    pe, d = spec.position_embedding, spec.embed_dim
    prefix = np.zeros((spec.pos_prefix_rows, d))
    if pe.kind == "sincos2d":
        from .sincos import sincos_2d

        return prefix, sincos_2d(grid, d, convention=pe.sincos_convention, temperature=pe.temperature)
    return prefix, np.zeros((grid[0] * grid[1], d))


def resample_rows(spec: Spec, rows: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(sh*sw, D) float64 patch rows on spec.pos_grid -> (gh*gw, D) with the spec's policy."""
    from .resampling import resample_grid

    (sh, sw), d = spec.pos_grid, spec.embed_dim
    return resample_grid(rows.reshape(sh, sw, d), tuple(grid), **spec.resample.kwargs()).reshape(-1, d)


def position_table(spec: Spec, weights: Mapping[str, object], grid, *, fixed=fixed_table, resample=None) -> tuple:
    """(prefix_rows (spec.pos_prefix_rows, D), patch_rows (gh*gw, D)) for `grid`.

    learned: the stored table, its patch rows resampled from spec.pos_grid to `grid` with the spec's
    policy when they differ. Otherwise `fixed(spec, grid)`. NumPy by default (float64 arrays); an
    engine passes `fixed(spec, grid)` and `resample(spec, rows, grid)` for its own tensors.
    """
    if spec.position_embedding.kind != "learned":
        return fixed(spec, grid)
    table = weights["pos_embed"][0]
    if resample is None:  # NumPy: the float64 constant
        table, resample = np.asarray(table, dtype=np.float64), resample_rows
    n = spec.pos_prefix_rows
    prefix, patches = table[:n], table[n:]
    return prefix, patches if native_grid(spec, grid) else resample(spec, patches, grid)
