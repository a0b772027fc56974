"""The position table as tensors: `vitstem.spec.position.position_table` with TensorFlow's two primitives.

The weightless tables and the resampling matrices are the shared float64 constants (numpy); only
their application to the layer's `pos_embed` variable is done here, so gradients reach it. fast
applies the matrices as matmuls; `ordered` (exact) sums the taps in `resample_grid`'s order, giving
the shared constant's float64 bits. A grid may be symbolic (unknown image sizes under tf.function).

    position_table(spec, weights, grid, fixed=fixed_table, resample=partial(resample_rows, ordered=...))
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ...spec import Spec, position
from ...spec.exact import sum_in_order
from ...spec.resampling import resample_matrix


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


def fixed_table(spec: Spec, grid) -> tuple[tf.Tensor, tf.Tensor]:
    """(prefix rows, patch rows) float64 of a table without learned rows (`position.fixed_table`)."""
    d = spec.embed_dim
    prefix = tf.zeros((spec.pos_prefix_rows, d), tf.float64)
    if spec.position_embedding.kind == "none":  # zeros need no constant, also for a symbolic grid
        return prefix, tf.zeros(tf.stack([grid[0] * grid[1], d]), tf.float64)
    return prefix, grid_constant(lambda h, w: position.fixed_table(spec, (h, w))[1], grid, [None, d])


def resample_rows(spec: Spec, rows: tf.Tensor, grid, ordered: bool = False) -> tf.Tensor:
    """(sh*sw, D) rows on spec.pos_grid -> (gh*gw, D) float64: along y, then along x, as `resample_grid`.

    Two matmuls, or with `ordered` (exact) the taps summed in input-index order, k = 0..sh-1
    then l = 0..sw-1, as `resample_grid` does in float64: its bits, and still differentiable.
    """
    (sh, sw), d = spec.pos_grid, spec.embed_dim
    flags = spec.resample.kwargs()
    rows = tf.cast(rows, tf.float64)
    m_h = grid_constant(lambda h, w: resample_matrix(sh, h, **flags), grid, [None, sh])
    m_w = grid_constant(lambda h, w: resample_matrix(sw, w, **flags), grid, [None, sw])
    if ordered:
        src = tf.reshape(rows, (sh, sw, d))
        along_y = sum_in_order(m_h[:, k, None, None] * src[k] for k in range(sh))  # (gh, sw, D)
        out = sum_in_order(m_w[None, :, l, None] * along_y[:, l, None, :] for l in range(sw))  # (gh, gw, D)
        return tf.reshape(out, (-1, d))
    along_y = tf.reshape(tf.matmul(m_h, tf.reshape(rows, (sh, sw * d))), (-1, sw, d))
    return tf.reshape(tf.einsum("jl,ild->ijd", m_w, along_y), (-1, d))
