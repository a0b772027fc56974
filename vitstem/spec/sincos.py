"""Fixed 2-D sin-cos position tables, in each peer's convention.

Every convention splits ``dim`` into four blocks of ``dim // 4`` columns: sin and cos of the x
(column) coordinate and of the y (row) coordinate, each times a geometric frequency ladder
``omega[k] = 1 / temperature ** (k / denom)``. The conventions differ in ``denom`` and in the
order of the blocks, so their tables are NOT interchangeable:

=============  ===============  ==========================================
convention     denom            block order
=============  ===============  ==========================================
"big_vision"   dim // 4 - 1     [sin x, cos x, sin y, cos y]
"timm"         dim // 4         [sin y, sin x, cos y, cos x]
"mae"          dim // 4         [sin x, cos x, sin y, cos y]
=============  ===============  ==========================================

- big_vision ``posemb_sincos_2d`` (models/vit.py): ``y, x = mgrid[:h, :w]``;
  ``omega = arange(d/4) / (d/4 - 1)`` so the last band is exactly 1/temperature.
- timm ``build_sincos2d_pos_embed`` defaults (reverse_coord=False, interleave_sin_cos=False):
  ``freq_bands(dim//4, step=1)`` = ``1 / temperature ** (arange(n) / n)``; the grid is
  ``ndgrid(arange(h), arange(w))`` stacked as [y, x], then ``stack([sin, cos], dim=1)``.
  timm evaluates it in float32.
- MAE ``get_2d_sincos_pos_embed`` (facebookresearch/mae util/pos_embed.py):
  ``grid = meshgrid(grid_w, grid_h)`` (``xy`` indexing, "w goes first"), so the half it calls
  ``emb_h`` is built from the x coordinate; ``omega = arange(D/4) / (D/4)``. MAE only builds
  square grids, hard-codes temperature 10000, and with ``cls_token=True`` prepends a zero row
  (prefix rows are not part of this table). Its omega was float64 (``np.float``); upstream now
  uses ``np.float32`` since NumPy removed ``np.float``. MAE's fine-tuning ``interpolate_pos_embed``
  resamples like HF PyTorch ViT (bicubic, a=-0.75, half-pixel, no antialias).

Rows are in row-major patch order (y major, x minor) in every convention, matching the order of
the flattened patch tokens.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

CONVENTIONS = ("big_vision", "timm", "mae")


def sincos_2d(grid_hw: tuple[int, int], dim: int, *, convention: str, temperature: float = 10000.0) -> np.ndarray:
    """(h*w, dim) float64 table, rows in row-major patch order (y major, x minor)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim <= 0 or dim % 4:
        raise ValueError(f"dim must be a positive multiple of 4 for a 2-D sin-cos table, got dim={dim!r}")
    if len(grid_hw) != 2 or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1
                                for s in grid_hw):
        raise ValueError(f"grid_hw must be two positive ints (h, w), got {grid_hw!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite positive number, got {temperature!r}")

    bands = int(dim) // 4
    if convention == "big_vision":
        if bands == 1:
            # big_vision divides by (dim // 4 - 1): dim=4 gives 0/0 (NaN columns) upstream.
            raise ValueError(f"the big_vision convention needs dim >= 8, got dim={dim}")
        denom = bands - 1
    else:
        denom = bands
    omega = 1.0 / float(temperature) ** (np.arange(bands, dtype=np.float64) / denom)

    h, w = int(grid_hw[0]), int(grid_hw[1])
    y, x = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    angle_x = x.reshape(-1, 1) * omega  # (h*w, bands), row-major over (y, x)
    angle_y = y.reshape(-1, 1) * omega

    if convention == "timm":
        blocks = [np.sin(angle_y), np.sin(angle_x), np.cos(angle_y), np.cos(angle_x)]
    else:  # big_vision and mae share the block order
        blocks = [np.sin(angle_x), np.cos(angle_x), np.sin(angle_y), np.cos(angle_y)]
    return np.concatenate(blocks, axis=1)
