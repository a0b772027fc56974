"""The position table as tensors: the shared `vitstem.spec.position.position_table`, kept differentiable.

Learned tables are resampled to another grid with the float64 matrices of
`vitstem.spec.resampling.resample_matrix`, applied as `resample_grid` applies them in float64
(taps summed in input-index order, along y then along x) and rounded once to float32 in the fast
profile: the reference's table, bit for bit, in either profile.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ...spec import Spec
from ...spec.exact import sum_in_order
from ...spec.resampling import resample_matrix
from ...spec.sincos import sincos_2d


@functools.lru_cache(maxsize=32)
def _matrices(src: tuple[int, int], grid: tuple[int, int], policy: tuple) -> tuple[np.ndarray, np.ndarray]:
    kwargs = dict(policy)
    return tuple(resample_matrix(s, g, **kwargs) for s, g in zip(src, grid))


@functools.lru_cache(maxsize=32)
def _sincos(grid: tuple[int, int], dim: int, convention: str, temperature: float) -> np.ndarray:
    return sincos_2d(grid, dim, convention=convention, temperature=temperature)


def grid_constants(spec: Spec, grid: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """The float64 constants the table for `grid` needs: (sincos table,) or (Mh, Mw), or () if none.

    A constant to torch.compile (computed once per grid at trace time, never traced).
    """
    pe = spec.position_embedding
    if pe.kind == "sincos2d":
        return (torch.from_numpy(_sincos(grid, spec.embed_dim, pe.sincos_convention, pe.temperature)),)
    if pe.kind == "learned" and grid != spec.pos_grid:
        return tuple(torch.from_numpy(m) for m in _matrices(spec.pos_grid, grid, tuple(spec.resample.kwargs().items())))
    return ()


# What torch.compiler.assume_constant_result does, without importing torch._dynamo: that imports
# triton, which segfaults in a process that imported tensorflow first.
grid_constants._dynamo_marked_constant = True


def resample_rows(rows: torch.Tensor, src: tuple[int, int], grid: tuple[int, int], m_h: torch.Tensor,
                  m_w: torch.Tensor) -> torch.Tensor:
    """(sh*sw, D) float64 patch rows -> (gh*gw, D), as `resample_grid` computes float64 tables."""
    (sh, sw), (gh, gw), d = src, grid, rows.shape[-1]
    table, m_h, m_w = rows.reshape(sh, sw, d), m_h.to(rows), m_w.to(rows)
    along_y = sum_in_order(m_h[:, k, None, None] * table[k] for k in range(sh))  # (gh, sw, D)
    along_x = sum_in_order(m_w[None, :, l, None] * along_y[:, l, None, :] for l in range(sw))  # (gh, gw, D)
    return along_x.reshape(gh * gw, d)


def position_table(spec: Spec, pos_embed: torch.Tensor | None, grid: tuple[int, int], constants,
                   dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The (spec.pos_prefix_rows + gh*gw, D) table for `grid` in `dtype`, in one tensor (the stored
    table itself when it needs no resampling): float64 arithmetic, rounded once to `dtype`."""
    pe, d = spec.position_embedding, spec.embed_dim
    rows = spec.pos_prefix_rows + grid[0] * grid[1]
    if pe.kind == "none":
        return torch.zeros(rows, d, dtype=dtype, device=device)
    if pe.kind == "sincos2d":
        prefix = torch.zeros(spec.pos_prefix_rows, d, dtype=torch.float64)
        return torch.cat([prefix, constants[0]]).to(device=device, dtype=dtype)
    table = pos_embed[0]
    if constants:
        prefix, patches = table[: spec.pos_prefix_rows], table[spec.pos_prefix_rows:]
        patches = resample_rows(patches.to(torch.float64), spec.pos_grid, grid, *constants)
        return torch.cat([prefix.to(dtype), patches.to(dtype)])
    return table.to(dtype)
