"""The position table in TensorFlow, from the same float64 constants as `vitstem.spec.position`.

The resampling matrices and sin-cos tables come from `vitstem.spec` (numpy, float64); only their
application to the layer's `pos_embed` variable is done here, so gradients reach the variable.
fast applies the matrices as matmuls; exact sums the taps in `resample_grid`'s order, giving the
shared constant's float64 bits.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ...spec import Spec
from ...spec.exact import sum_in_order
from ...spec.resampling import resample_matrix
from ...spec.sincos import sincos_2d


def grid_constant(fn, grid, shape) -> tf.Tensor:
    """fn(gh, gw) -> float64 array, as a constant for a static grid or computed at run time for a symbolic one."""
    gh, gw = grid
    if isinstance(gh, int) and isinstance(gw, int):
        return tf.constant(fn(gh, gw), tf.float64)
    # Under tf.function with unknown image sizes the grid is a tensor: build the constant when it is known.
    out = tf.numpy_function(lambda h, w: np.asarray(fn(int(h), int(w)), np.float64), [gh, gw], tf.float64,
                            stateful=False)
    out.set_shape(shape)
    return out


def resample_patch_rows(spec: Spec, rows: tf.Tensor, grid, in_order: bool) -> tf.Tensor:
    """(sh*sw, D) float64 rows on spec.pos_grid -> (gh*gw, D): along y, then along x, as `resample_grid`.

    Two matmuls, or with `in_order` (exact) the taps summed in input-index order, k = 0..sh-1
    then l = 0..sw-1, as `resample_grid` does in float64: its bits, and still differentiable.
    """
    (sh, sw), d = spec.pos_grid, spec.embed_dim
    flags = spec.resample.kwargs()
    m_h = grid_constant(lambda h, w: resample_matrix(sh, h, **flags), grid, [None, sh])
    m_w = grid_constant(lambda h, w: resample_matrix(sw, w, **flags), grid, [None, sw])
    if in_order:
        src = tf.reshape(rows, (sh, sw, d))
        along_y = sum_in_order(m_h[:, k, None, None] * src[k] for k in range(sh))  # (gh, sw, D)
        out = sum_in_order(m_w[None, :, l, None] * along_y[:, l, None, :] for l in range(sw))  # (gh, gw, D)
        return tf.reshape(out, (-1, d))
    along_y = tf.reshape(tf.matmul(m_h, tf.reshape(rows, (sh, sw * d))), (-1, sw, d))
    return tf.reshape(tf.einsum("jl,ild->ijd", m_w, along_y), (-1, d))


def position_table(spec: Spec, pos_embed, grid, in_order: bool = False,
                   dtype: tf.DType = tf.float64) -> tuple[tf.Tensor, tf.Tensor]:
    """(prefix_rows, patch_rows) for `grid` ((gh, gw) ints or scalar tensors) in `dtype`; see
    vitstem.spec.position. Computed in float64 and rounded once to `dtype`; the stored table at its
    own grid is cast straight to `dtype` (float32 -> float64 -> float32 is the identity, and the
    round trip cost two passes over the table per call).

    With `in_order` (exact) a resampled table has the shared constant's float64 bits.
    """
    pe, d = spec.position_embedding, spec.embed_dim
    prefix_rows = tf.zeros((spec.pos_prefix_rows, d), dtype)
    if pe.kind == "none":
        return prefix_rows, tf.zeros(tf.stack([grid[0] * grid[1], d]), dtype)
    if pe.kind == "sincos2d":
        table = grid_constant(lambda h, w: sincos_2d((h, w), d, convention=pe.sincos_convention,
                                                     temperature=pe.temperature), grid, [None, d])
        return prefix_rows, tf.cast(table, dtype)
    static = all(isinstance(g, int) for g in grid)
    if static and tuple(grid) == tuple(spec.pos_grid):
        table = tf.cast(pos_embed[0], dtype)
        return table[: spec.pos_prefix_rows], table[spec.pos_prefix_rows :]
    table = tf.cast(pos_embed[0], tf.float64)
    prefix_rows, patch_rows = table[: spec.pos_prefix_rows], table[spec.pos_prefix_rows :]
    # A symbolic grid always goes through the matrices: at the native grid they are exactly the identity.
    return tf.cast(prefix_rows, dtype), tf.cast(resample_patch_rows(spec, patch_rows, grid, in_order), dtype)
