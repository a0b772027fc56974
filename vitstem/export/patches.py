"""The patchify stage of the graph, three ways: patches by a 6-D Transpose (any size), by one Gather of the
image's pixel runs (one size; ONNX Runtime runs it multi-threaded), or projected directly by a strided Conv.
Which one a graph takes: vitstem.export.build._projection.
"""

from __future__ import annotations

import numpy as np

from ..spec.vocabulary import Layout
from .graph import GraphBuilder


def patchify(g: GraphBuilder, x: str, layout: Layout, channels: int, patch: tuple[int, int],
             grid: tuple[int, int] | str, order: str = "") -> str:
    """(B, C, H, W) or (B, H, W, C) -> (B, N, K) patches, row-major over the grid.

    NCHW flattens each patch as (C, Ph, Pw) (canonical); NHWC as (Ph, Pw, C), which avoids moving
    channels; the kernel rows are permuted to match at export time (folding.kernel_matrix).
    `order="CHW"` forces the canonical flattening from NHWC too (exact sums in canonical k order).
    """
    ph, pw = patch
    if isinstance(grid, str):  # runtime grid: [gh, gw] ++ [0, C, ph, pw], gathered into place
        parts = g.op("patchify", "Concat", [grid, g.ints("patchify", "dims", [0, channels, ph, pw])], axis=0)
        positions = [2, 3, 0, 4, 1, 5] if layout == Layout.NCHW else [2, 0, 4, 1, 5, 3]
        shape6 = g.op("patchify", "Gather", [parts, g.ints("patchify", "order", positions)])
    else:
        gh, gw = grid
        shape6 = g.ints("patchify", "shape6", [0, channels, gh, ph, gw, pw] if layout == Layout.NCHW
                        else [0, gh, ph, gw, pw, channels])
    x = g.op("patchify", "Reshape", [x, shape6])
    if layout == Layout.NCHW:
        perm = [0, 2, 4, 1, 3, 5]
    else:  # (B, gh, ph, gw, pw, C) -> (B, gh, gw, ph, pw, C), or (B, gh, gw, C, ph, pw) for CHW order
        perm = [0, 1, 3, 5, 2, 4] if order == "CHW" else [0, 1, 3, 2, 4, 5]
    x = g.op("patchify", "Transpose", [x], perm=perm)
    return g.op("patchify", "Reshape", [x, g.ints("patchify", "shape3", [0, -1, channels * ph * pw])])


def pixel_runs(layout: Layout, channels: int, patch: tuple[int, int], grid: tuple[int, int]):
    """For `gather_patches`: which contiguous runs of the image each patch is made of, as first run + offsets.

    A run is the Pw pixels of one patch row (NCHW, one channel) or its Pw * C values (NHWC). The image
    viewed as (B, runs, run length) holds pixel row y of patch column j in run ((c*H + y)*gw + j) (NCHW)
    or (y*gw + j) (NHWC). Patch (i, j) starts at run (i*Ph*gw + j) (its first row, channel 0), and its
    runs follow at offsets (c*H + r)*gw for (c, r) in (C, Ph) order (NCHW) or r*gw (NHWC): the order
    patchify flattens a patch in. Returns (N, 1) first runs and (1, R) offsets, their sum the index: int32,
    or int64 for an image of 2**31 runs or more.
    """
    (ph, _), (gh, gw) = patch, grid
    first = (np.arange(gh, dtype=np.int64)[:, None] * ph * gw + np.arange(gw)[None, :]).reshape(-1, 1)
    rows = np.arange(ph, dtype=np.int64) * gw
    if layout == Layout.NCHW:
        rows = (np.arange(channels)[:, None] * gh * ph * gw + rows[None, :]).reshape(-1)
    runs = int(first[-1, 0] + rows[-1]) + 1  # the image's last run is the largest index
    dtype = np.int32 if runs <= np.iinfo(np.int32).max else np.int64
    return first.astype(dtype), rows.reshape(1, -1).astype(dtype)


def gather_patches(g: GraphBuilder, x: str, layout: Layout, channels: int, patch: tuple[int, int],
                   grid: tuple[int, int]) -> str:
    """(B, C, H, W) or (B, H, W, C) of one size -> (B, N, K) patches, as `patchify` flattens them.

    One Gather of the image's contiguous pixel runs (pixel_runs) instead of a 6-D Transpose: ONNX
    Runtime runs Gather on all its threads and Transpose on one, and after a long single-threaded node
    the next node's parallel section starts late (see build._projection). The (N, R) index is stored as
    first runs + offsets, a constant Add that runtimes fold when they load the graph (0.8 kB instead of
    37 kB for ViT-B/16). It is bound to one size: graphs for several sizes patchify by Transpose or Conv.
    """
    ph, pw = patch
    first, offsets = pixel_runs(layout, channels, patch, grid)
    index = g.op("patchify", "Add", [g.const("patchify", "first_run", first),
                                     g.const("patchify", "run_offsets", offsets)])
    run = pw if layout == Layout.NCHW else pw * channels
    x = g.op("patchify", "Reshape", [x, g.ints("patchify", "runs", [0, -1, run])])
    x = g.op("patchify", "Gather", [x, index], axis=1)
    return g.op("patchify", "Reshape", [x, g.ints("patchify", "shape3", [0, -1, channels * ph * pw])])


def conv_patches(g: GraphBuilder, x: str, kernel: np.ndarray, patch: tuple[int, int]) -> str:
    """(B, C, H, W) -> (B, N, D): the patch projection as a Conv with kernel = stride = P, then
    channels last; the same sum of x_k E_k as the MatMul, for any image size."""
    y = g.op("embed", "Conv", [x, g.const("embed", "kernel", kernel)], kernel_shape=list(patch), strides=list(patch))
    y = g.op("embed", "Transpose", [y], perm=[0, 2, 3, 1])
    return g.op("embed", "Reshape", [y, g.ints("embed", "tokens", [0, -1, kernel.shape[0]])])
