"""The position table as tensors: `vitstem.spec.position.position_table` with torch's two primitives.

The weightless tables (sin-cos, none) are the shared float64 constants. Learned patch rows are
resampled with the float64 matrices of `vitstem.spec.resampling.resample_matrix`, applied as
`resample_grid` applies them (taps summed in input-index order, along y then along x), so gradients
reach pos_embed and the table has the reference's bits in either profile. Both constants are built
once per grid: constants to torch.compile (computed at trace time, never traced).

    position_table(spec, weights, grid, fixed=fixed_table, resample=resample_rows)
"""

from __future__ import annotations

import functools

import torch

from ...spec import Spec, position
from ...spec.exact import sum_in_order
from ...spec.resampling import resample_matrix


@functools.lru_cache(maxsize=32)
def _fixed(spec: Spec, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(torch.from_numpy(t) for t in position.fixed_table(spec, grid))


@functools.lru_cache(maxsize=32)
def _matrices(spec: Spec, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(torch.from_numpy(resample_matrix(s, g, **spec.resample.kwargs())) for s, g in zip(spec.pos_grid, grid))


def fixed_table(spec: Spec, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(prefix rows, patch rows) of a table without learned rows, float64 (`position.fixed_table`)."""
    return _fixed(spec, tuple(grid))


def resample_matrices(spec: Spec, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(Mh, Mw) float64 from spec.pos_grid to `grid` with the spec's policy."""
    return _matrices(spec, tuple(grid))


# What torch.compiler.assume_constant_result does, without importing torch._dynamo: that imports
# triton, which segfaults in a process that imported tensorflow first.
fixed_table._dynamo_marked_constant = True
resample_matrices._dynamo_marked_constant = True


def resample_rows(spec: Spec, rows: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(sh*sw, D) patch rows -> (gh*gw, D) float64, as `resample_grid` computes float64 tables."""
    (sh, sw), (gh, gw), d = spec.pos_grid, grid, rows.shape[-1]
    table = rows.to(torch.float64).reshape(sh, sw, d)
    m_h, m_w = (m.to(table) for m in resample_matrices(spec, grid))
    along_y = sum_in_order(m_h[:, k, None, None] * table[k] for k in range(sh))  # (gh, sw, D)
    along_x = sum_in_order(m_w[None, :, l, None] * along_y[:, l, None, :] for l in range(sw))  # (gh, gw, D)
    return along_x.reshape(gh * gw, d)
