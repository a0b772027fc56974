"""Graph building blocks, one function per stage of the NumPy reference (backends/numpy/stem.py).

Each function appends its nodes to a `GraphBuilder` and returns the name of the tensor it made.
Names are derived from the stage and op type (no counters shared across calls, no randomness), so
the same spec, weights and options give the same graph, byte for byte.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from ..spec.remainder import cropped_size
from ..spec.vocabulary import INPUT_NAME, Layout
from .ordered import ordered_matmul

ONNX_DTYPES = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "float64": TensorProto.DOUBLE,
               "uint8": TensorProto.UINT8, "int64": TensorProto.INT64}


class GraphBuilder:
    """Collects nodes and initializers; `op` adds one single-output node named '<stage>/<Op>'."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list = []
        self.initializers: list = []
        self._used: set[str] = set()

    def _name(self, base: str) -> str:
        name, n = base, 0
        while name in self._used:
            n += 1
            name = f"{base}_{n}"
        self._used.add(name)
        return name

    def const(self, stage: str, what: str, value, dtype=None) -> str:
        name = self._name(f"{stage}/{what}")
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(np.asarray(value, dtype=dtype)), name))
        return name

    def ints(self, stage: str, what: str, values) -> str:
        return self.const(stage, what, np.asarray(values, dtype=np.int64))

    def op(self, stage: str, op_type: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        name = self._name(f"{stage}/{op_type}")
        self.nodes.append(helper.make_node(op_type, inputs, [out or name], name=name, **attrs))
        return out or name


# -- shapes ----------------------------------------------------------------------------------
def image_grid(g: GraphBuilder, x: str, layout: Layout, patch: tuple[int, int], stage: str = "grid") -> str:
    """(gh, gw) int64 of the input batch, for graphs that take several image sizes (whole patches:
    integer Div of positive sizes rounds down)."""
    shape = g.op(stage, "Shape", [x])
    hw = g.op(stage, "Gather", [shape, g.ints(stage, "hw_axes", layout.spatial_axes)])
    return g.op(stage, "Div", [hw, g.ints(stage, "patch", patch)])


def crop(g: GraphBuilder, x: str, layout: Layout, patch: tuple[int, int], size: tuple[int, int] | None) -> str:
    """The input cut to its whole patches (input.remainder: drop): Slice the H and W axes to
    grid * patch, from the static `size` or, when None, from the input's own shape at run time."""
    axes = g.ints("crop", "axes", layout.spatial_axes)
    if size is not None:
        ends = g.ints("crop", "ends", cropped_size(*size, patch))
    else:
        ends = g.op("crop", "Mul", [image_grid(g, x, layout, patch, "crop"), g.ints("crop", "patch", patch)])
    return g.op("crop", "Slice", [x, g.ints("crop", "starts", [0, 0]), ends, axes])


# -- the stages ------------------------------------------------------------------------------
def cast(g: GraphBuilder, stage: str, x: str, to: str, out: str | None = None) -> str:
    return g.op(stage, "Cast", [x], out=out, to=ONNX_DTYPES[to])


def preprocess(g: GraphBuilder, x: str, layout: Layout, scale: float, mean, std, dtype) -> str:
    """x * scale - mean, then / std, per channel: the reference's own operations, in `dtype`."""
    shape = [1, 1, 1, 1]
    shape[layout.channel_axis] = -1
    x = g.op("preprocess", "Mul", [x, g.const("preprocess", "scale", np.asarray(scale, dtype))])
    x = g.op("preprocess", "Sub", [x, g.const("preprocess", "mean", np.asarray(mean, dtype).reshape(shape))])
    return g.op("preprocess", "Div", [x, g.const("preprocess", "std", np.asarray(std, dtype).reshape(shape))])


def pad_prefix(g: GraphBuilder, x: str, rows: int) -> str:
    """Prepend `rows` zero rows on the token axis: they become the prefix tokens after the table Add."""
    return g.op("embed", "Pad", [x, g.ints("embed", "pads", [0, rows, 0, 0, 0, 0])])


def embed(g: GraphBuilder, patches: str, kernel: np.ndarray, bias: np.ndarray | None, prefix: int,
          ordered: bool = False, cast_to: str | None = None) -> str:
    """(B, N, K) @ (K, D) [+ b] with `prefix` zero rows in front: (B, P + N, D).

    Padding before the MatMul puts the prefix rows in the MatMul's own output buffer (one copy of
    the patches fewer; measured faster in ONNX Runtime CPU); a separate bias must be added before
    padding, so the prefix rows stay 0. `ordered` (exact profile): a Scan summing over k in order
    instead of a MatMul. `cast_to`: cast the (padded) patches to this dtype just before the MatMul, so
    that a narrower input (uint8 frames) is patchified and padded in its own dtype.
    """
    if prefix and bias is None:
        patches = pad_prefix(g, patches, prefix)
    if cast_to is not None:
        patches = cast(g, "embed", patches, cast_to)
    if ordered:
        z = ordered_matmul(g, "embed", patches, kernel)
    else:
        z = g.op("embed", "MatMul", [patches, g.const("embed", "kernel", kernel)])
    if bias is not None:
        z = g.op("embed", "Add", [z, g.const("embed", "bias", bias)])
    if prefix and bias is not None:
        z = pad_prefix(g, z, prefix)
    return z


def prepend_rows(g: GraphBuilder, z: str, rows: np.ndarray, batch_of: str = INPUT_NAME) -> str:
    """Concat([rows for every image, z], axis=1): the constant prefix rows (tokens + their position
    rows) in front of the patch rows. The batch size is the first axis of `batch_of`: fast graphs
    pass z, since int8's quantizer would otherwise keep a dequantized copy of the images for it."""
    if g.opset >= 15:  # Shape's start/end arrived in opset 15
        batch = g.op("prefix", "Shape", [batch_of], start=0, end=1)
    else:
        batch = g.op("prefix", "Gather", [g.op("prefix", "Shape", [batch_of]), g.ints("prefix", "batch_axis", [0])])
    shape = g.op("prefix", "Concat", [batch, g.ints("prefix", "ones", [1, 1])], axis=0)
    rows = g.op("prefix", "Expand", [g.const("prefix", "rows", rows[None]), shape])
    return g.op("prefix", "Concat", [rows, z], axis=1)


def add_position(g: GraphBuilder, z: str, table: str) -> str:
    """z + table, the table (T, D) holding prefix tokens + their rows and the patch rows (+ folded bias)."""
    return g.op("position", "Add", [z, table])


# -- position tables for graphs that take several sizes -------------------------------------------
def select_table(g: GraphBuilder, grid: str, grids: list[tuple[int, int]], tables: list[np.ndarray]) -> str:
    """The table of the input's grid, sliced out of all the tables stacked.

    An unlisted grid selects an empty slice, so the Add that follows fails instead of adding
    another grid's table (two grids can have the same number of patches).
    """
    keys = [gh * 65536 + gw for gh, gw in grids]
    key = g.op("table", "ReduceSum", [g.op("table", "Mul", [grid, g.ints("table", "key_weights", [65536, 1])]),
                                     g.ints("table", "axes", [0])], keepdims=1)
    hit = cast(g, "table", g.op("table", "Equal", [g.ints("table", "keys", keys), key]), "int64")
    index = g.op("table", "ReduceSum", [g.op("table", "Mul", [hit, g.ints("table", "ordinal", range(1, len(keys) + 1))]),
                                       g.ints("table", "axes", [0])], keepdims=1)
    ends = np.cumsum([0] + [t.shape[0] for t in tables])
    start = g.op("table", "Gather", [g.ints("table", "starts", [0, *ends[:-1]]), index])
    end = g.op("table", "Gather", [g.ints("table", "ends", [0, *ends[1:]]), index])
    stacked = g.const("table", "stacked", np.concatenate(tables, axis=0))
    return g.op("table", "Slice", [stacked, start, end, g.ints("table", "slice_axes", [0])])


def resize_table(g: GraphBuilder, grid: str, source: np.ndarray, policy) -> str:
    """(gh*gw, D) rows: the (gh0, gw0, D) table resampled by ONNX Resize with the spec's policy."""
    gh0, gw0, d = source.shape
    src = g.const("table", "source", np.ascontiguousarray(source.transpose(2, 0, 1)[None]))  # (1, D, gh0, gw0)
    sizes = g.op("table", "Concat", [g.ints("table", "lead", [1, d]), grid], axis=0)
    attrs = dict(mode="cubic" if policy.mode == "bicubic" else "linear",
                 coordinate_transformation_mode=policy.coordinates)
    if policy.mode == "bicubic":
        attrs.update(cubic_coeff_a=float(policy.cubic_coeff_a), exclude_outside=int(policy.exclude_outside))
    if policy.antialias:
        attrs["antialias"] = 1  # validated: opset >= 18
        attrs["exclude_outside"] = int(policy.exclude_outside)
    out = g.op("table", "Resize", [src, "", "", sizes], **attrs)
    out = g.op("table", "Reshape", [out, g.ints("table", "rows", [d, -1])])
    return g.op("table", "Transpose", [out], perm=[1, 0])


def sincos_table(g: GraphBuilder, grid: str, dim: int, convention: str, temperature: float) -> str:
    """(gh*gw, D) float64 2-D sin-cos rows for the input's grid, as vitstem.spec.sincos defines them."""
    bands = dim // 4
    denom = bands - 1 if convention == "big_vision" else bands
    omega = 1.0 / float(temperature) ** (np.arange(bands, dtype=np.float64) / denom)
    omega = g.const("table", "omega", omega[None, :])
    size = cast(g, "table", grid, "float64")
    zero, one = g.const("table", "zero", np.float64(0)), g.const("table", "one", np.float64(1))
    halves = {}
    for axis, name in ((0, "y"), (1, "x")):
        n = g.op("table", "Squeeze", [g.op("table", "Gather", [size, g.ints("table", f"{name}_axis", [axis])]),
                                      g.ints("table", "squeeze_axes", [0])])
        coord = g.op("table", "Unsqueeze", [g.op("table", "Range", [zero, n, one]), g.ints("table", "unsq_axes", [1])])
        angle = g.op("table", "Mul", [coord, omega])  # (n, bands)
        halves[name] = (g.op("table", "Sin", [angle]), g.op("table", "Cos", [angle]))
    # y blocks vary along rows of the grid, x blocks along columns; broadcast both to (gh, gw, bands).
    full = g.op("table", "Concat", [grid, g.ints("table", "bands", [bands])], axis=0)
    y_shape, x_shape = g.ints("table", "y_shape", [-1, 1, bands]), g.ints("table", "x_shape", [1, -1, bands])
    sy, cy = (g.op("table", "Expand", [g.op("table", "Reshape", [t, y_shape]), full]) for t in halves["y"])
    sx, cx = (g.op("table", "Expand", [g.op("table", "Reshape", [t, x_shape]), full]) for t in halves["x"])
    blocks = [sy, sx, cy, cx] if convention == "timm" else [sx, cx, sy, cy]
    table = g.op("table", "Concat", blocks, axis=2)
    return g.op("table", "Reshape", [table, g.ints("table", "rows", [-1, dim])])


def constant_rows(g: GraphBuilder, grid: str, row: np.ndarray) -> str:
    """(gh*gw, D): the same row for every patch (a table of kind none: only the folded bias)."""
    shape = g.op("table", "Concat", [grid, g.ints("table", "dim", [row.shape[-1]])], axis=0)
    rows = g.op("table", "Expand", [g.const("table", "row", row[None, None, :]), shape])
    return g.op("table", "Reshape", [rows, g.ints("table", "rows", [-1, row.shape[-1]])])
