"""The position table a peer stores to add the same values as a spec at the spec's own image size."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..spec import Spec
from ..spec.position import position_table


def stored_table(spec: Spec, weights: Mapping[str, np.ndarray], *, every_prefix_row: bool) -> np.ndarray:
    """(1, rows, D) float32: [prefix rows; patch rows] for the spec's native grid.

    every_prefix_row: give every prefix token a row, zero for those the spec adds no position to
    (for peers whose table always covers the class slot). A sin-cos or absent table is
    materialised, rounded to float32 once as the fast profile does.
    """
    prefix_rows, patch_rows = position_table(spec, weights, spec.patch_grid())
    pad = spec.num_prefix_tokens - prefix_rows.shape[0] if every_prefix_row else 0
    zeros = np.zeros((pad, spec.embed_dim))
    return np.concatenate([prefix_rows, zeros, patch_rows]).astype(np.float32)[None]
