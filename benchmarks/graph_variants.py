"""Prototype ONNX graph structures for the ViT stem and time them in ONNX Runtime against the bare MatMul floor.

Each variant computes the same z0 = [cls + pos_0; patches E + b + pos_1..N] (ViT-B/16: one class
token, learned table, no pre-norm, preprocessing folded away) and is checked against NumPy before
it is timed. Used to pick the structure the exporter emits; see benchmarks/README.md.

    python benchmarks/graph_variants.py [--batch 1 8] [--threads 2] [--runs 60] [--levels all basic] [--json OUT]

One thread count per process (ORT's global pool is sized once).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from vitstem.benchmark.ort_models import bare_matmul_model, ort_session, use_global_threads
from vitstem.benchmark.quiet import ForeignLoad, wait_for_quiet
from vitstem.benchmark.timing import interleaved_times, summarize

OPSET = 17
F32 = TensorProto.FLOAT


class Stem:
    """ViT-B/16 sized stem weights in the layouts the variants need (seeded, float32)."""

    def __init__(self, image=224, patch=16, channels=3, dim=768, seed=0):
        rng = np.random.default_rng(seed)
        self.image, self.patch, self.channels, self.dim = image, patch, channels, dim
        self.grid = image // patch
        self.n = self.grid * self.grid
        self.k = channels * patch * patch
        self.kernel = (rng.standard_normal((dim, channels, patch, patch)) / np.sqrt(self.k)).astype(np.float32)
        self.bias = (0.02 * rng.standard_normal(dim)).astype(np.float32)
        self.cls = (0.02 * rng.standard_normal((1, 1, dim))).astype(np.float32)
        self.pos = (0.02 * rng.standard_normal((1, 1 + self.n, dim))).astype(np.float32)

    def reference(self, nchw: np.ndarray) -> np.ndarray:
        b, c, h, w = nchw.shape
        g, p = self.grid, self.patch
        patches = nchw.reshape(b, c, g, p, g, p).transpose(0, 2, 4, 1, 3, 5).reshape(b, self.n, self.k)
        x = patches.astype(np.float64) @ self.kernel.reshape(self.dim, self.k).T.astype(np.float64) + self.bias
        cls = np.broadcast_to(self.cls, (b, 1, self.dim))
        return (np.concatenate([cls, x], axis=1) + self.pos).astype(np.float32)

    # weights in the layouts the graphs use
    def e_nchw(self):  # (K, D) with K ordered (C, Ph, Pw)
        return self.kernel.reshape(self.dim, self.k).T.copy()

    def e_nhwc(self):  # (K, D) with K ordered (Ph, Pw, C)
        return self.kernel.transpose(0, 2, 3, 1).reshape(self.dim, self.k).T.copy()

    def patch_table(self, with_bias=True):  # (N, D): position rows of the patches (+ bias)
        return (self.pos[0, 1:] + (self.bias if with_bias else 0)).astype(np.float32)

    def cls_row(self):  # (1, 1, D): cls + its position row
        return (self.cls + self.pos[:, :1]).astype(np.float32)

    def full_table(self):  # (1+N, D): [cls + pos_0; pos_i + b]
        return np.concatenate([self.cls_row()[0], self.patch_table()], axis=0)


def _init(name, array):
    return numpy_helper.from_array(np.ascontiguousarray(array), name)


def _model(nodes, inits, input_shape, output_shape, name):
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("images", F32, input_shape)],
        [helper.make_tensor_value_info("z0", F32, output_shape)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=helper.find_min_ir_version_for([helper.make_opsetid("", OPSET)]))
    return model


def _patchify_nodes(s: Stem, layout: str, out: str, rows2d: bool):
    """Reshape -> Transpose -> Reshape: images to (B, N, K) or (B*N, K) patches."""
    g, p, c = s.grid, s.patch, s.channels
    if layout == "NCHW":
        shape6, perm = [0, c, g, p, g, p], [0, 2, 4, 1, 3, 5]
    else:
        shape6, perm = [0, g, p, g, p, c], [0, 1, 3, 2, 4, 5]
    inits = [_init("shape6", np.array(shape6, np.int64)),
             _init("shape_rows", np.array([-1, s.k] if rows2d else [0, s.n, s.k], np.int64))]
    nodes = [helper.make_node("Reshape", ["images", "shape6"], ["x6"]),
             helper.make_node("Transpose", ["x6"], ["x6t"], perm=perm),
             helper.make_node("Reshape", ["x6t", "shape_rows"], [out])]
    # Reshape with 0 copies the batch dim (allowzero=0 default); -1 lets the batch stay dynamic.
    return nodes, inits


def _prepend_cls(s: Stem, patches: str, out: str, row: np.ndarray):
    """Concat([Expand(row, (B, 1, D)), patches], axis=1)."""
    inits = [_init("cls_row", row), _init("dim_n", np.array([1], np.int64))]
    nodes = [helper.make_node("Shape", ["images"], ["batch"], start=0, end=1),
             helper.make_node("Concat", ["batch", "dim_n", "dim_n"], ["cls_shape"], axis=0),
             helper.make_node("Expand", ["cls_row", "cls_shape"], ["cls_b"]),
             helper.make_node("Concat", ["cls_b", patches], [out], axis=1)]
    return nodes, inits


def _out_shape(s):
    return ["B", 1 + s.n, s.dim]


def plain(s: Stem):
    """Reshape-Transpose-MatMul-Add(bias)-Concat(cls)-Add(pos): the straightforward translation."""
    nodes, inits = _patchify_nodes(s, "NCHW", "patches", rows2d=False)
    inits += [_init("E", s.e_nchw()), _init("b", s.bias), _init("pos", s.pos)]
    nodes += [helper.make_node("MatMul", ["patches", "E"], ["xe"]),
              helper.make_node("Add", ["xe", "b"], ["xb"])]
    n2, i2 = _prepend_cls(s, "xb", "tokens", s.cls)
    nodes += n2 + [helper.make_node("Add", ["tokens", "pos"], ["z0"])]
    return _model(nodes, inits + i2, ["B", s.channels, s.image, s.image], _out_shape(s), "plain")


def folded(s: Stem, layout="NCHW"):
    """MatMul then one Add of (pos + bias), then Concat of the precomputed cls row."""
    nodes, inits = _patchify_nodes(s, layout, "patches", rows2d=False)
    inits += [_init("E", s.e_nchw() if layout == "NCHW" else s.e_nhwc()), _init("table", s.patch_table())]
    nodes += [helper.make_node("MatMul", ["patches", "E"], ["xe"]),
              helper.make_node("Add", ["xe", "table"], ["xt"])]
    n2, i2 = _prepend_cls(s, "xt", "z0", s.cls_row())
    shape = ["B", s.channels, s.image, s.image] if layout == "NCHW" else ["B", s.image, s.image, s.channels]
    return _model(nodes + n2, inits + i2, shape, _out_shape(s), f"folded_{layout.lower()}")


def concat_then_add(s: Stem):
    """MatMul, Concat a zero-free cls placeholder, one Add of the full table (cls row included)."""
    nodes, inits = _patchify_nodes(s, "NCHW", "patches", rows2d=False)
    inits += [_init("E", s.e_nchw()), _init("table", s.full_table())]
    nodes += [helper.make_node("MatMul", ["patches", "E"], ["xe"])]
    n2, i2 = _prepend_cls(s, "xe", "tokens", np.zeros((1, 1, s.dim), np.float32))
    nodes += n2 + [helper.make_node("Add", ["tokens", "table"], ["z0"])]
    return _model(nodes, inits + i2, ["B", s.channels, s.image, s.image], _out_shape(s), "concat_then_add")


def pad_input(s: Stem):
    """Pad a zero patch row in front of the patches, MatMul, one Add of the full table: no output Concat."""
    nodes, inits = _patchify_nodes(s, "NCHW", "patches", rows2d=False)
    inits += [_init("E", s.e_nchw()), _init("table", s.full_table()),
              _init("pads", np.array([0, 1, 0, 0, 0, 0], np.int64))]
    nodes += [helper.make_node("Pad", ["patches", "pads"], ["padded"]),
              helper.make_node("MatMul", ["padded", "E"], ["xe"]),
              helper.make_node("Add", ["xe", "table"], ["z0"])]
    return _model(nodes, inits, ["B", s.channels, s.image, s.image], _out_shape(s), "pad_input")


def pad_flat(s: Stem, layout="NCHW"):
    """As pad_input, but the zero patch is padded on the flattened (B, N*K) axis: one contiguous copy per image."""
    g, p, c = s.grid, s.patch, s.channels
    shape6, perm = ([0, c, g, p, g, p], [0, 2, 4, 1, 3, 5]) if layout == "NCHW" else ([0, g, p, g, p, c], [0, 1, 3, 2, 4, 5])
    inits = [_init("shape6", np.array(shape6, np.int64)), _init("flat", np.array([0, -1], np.int64)),
             _init("pads", np.array([0, s.k, 0, 0], np.int64)), _init("rows", np.array([0, -1, s.k], np.int64)),
             _init("E", s.e_nchw() if layout == "NCHW" else s.e_nhwc()), _init("table", s.full_table())]
    nodes = [helper.make_node("Reshape", ["images", "shape6"], ["x6"]),
             helper.make_node("Transpose", ["x6"], ["x6t"], perm=perm),
             helper.make_node("Reshape", ["x6t", "flat"], ["xf"]),
             helper.make_node("Pad", ["xf", "pads"], ["xp"]),
             helper.make_node("Reshape", ["xp", "rows"], ["padded"]),
             helper.make_node("MatMul", ["padded", "E"], ["xe"]),
             helper.make_node("Add", ["xe", "table"], ["z0"])]
    shape = ["B", s.channels, s.image, s.image] if layout == "NCHW" else ["B", s.image, s.image, s.channels]
    return _model(nodes, inits, shape, _out_shape(s), f"pad_flat_{layout.lower()}")


def gemm(s: Stem):
    """2-D Gemm with the bias as C, then Reshape, Add(pos), Concat(cls row)."""
    nodes, inits = _patchify_nodes(s, "NCHW", "rows", rows2d=True)
    inits += [_init("E", s.e_nchw()), _init("b", s.bias), _init("table", s.patch_table(with_bias=False)),
              _init("shape_bnd", np.array([-1, s.n, s.dim], np.int64))]
    nodes += [helper.make_node("Gemm", ["rows", "E", "b"], ["xe"]),
              helper.make_node("Reshape", ["xe", "shape_bnd"], ["xe3"]),
              helper.make_node("Add", ["xe3", "table"], ["xt"])]
    n2, i2 = _prepend_cls(s, "xt", "z0", s.cls_row())
    return _model(nodes + n2, inits + i2, ["B", s.channels, s.image, s.image], _out_shape(s), "gemm")


def gemm_table(s: Stem, batch: int):
    """Static batch: Gemm with C = the (pos + bias) table tiled to (B*N, D), so no separate Add."""
    nodes, inits = _patchify_nodes(s, "NCHW", "rows", rows2d=True)
    inits += [_init("E", s.e_nchw()), _init("C", np.tile(s.patch_table(), (batch, 1))),
              _init("shape_bnd", np.array([-1, s.n, s.dim], np.int64))]
    nodes += [helper.make_node("Gemm", ["rows", "E", "C"], ["xe"]),
              helper.make_node("Reshape", ["xe", "shape_bnd"], ["xt"])]
    n2, i2 = _prepend_cls(s, "xt", "z0", s.cls_row())
    return _model(nodes + n2, inits + i2, [batch, s.channels, s.image, s.image], [batch, 1 + s.n, s.dim],
                  "gemm_table")


def conv(s: Stem):
    """Conv (kernel = stride = P, bias) -> Reshape (B, D, N) -> Transpose -> Add(pos) -> Concat(cls row)."""
    inits = [_init("W", s.kernel), _init("b", s.bias), _init("table", s.patch_table(with_bias=False)),
             _init("shape_bdn", np.array([0, s.dim, s.n], np.int64))]
    nodes = [helper.make_node("Conv", ["images", "W", "b"], ["y"], kernel_shape=[s.patch] * 2, strides=[s.patch] * 2),
             helper.make_node("Reshape", ["y", "shape_bdn"], ["y3"]),
             helper.make_node("Transpose", ["y3"], ["yt"], perm=[0, 2, 1]),
             helper.make_node("Add", ["yt", "table"], ["xt"])]
    n2, i2 = _prepend_cls(s, "xt", "z0", s.cls_row())
    return _model(nodes + n2, inits + i2, ["B", s.channels, s.image, s.image], _out_shape(s), "conv")


def folded_two_step(s: Stem):
    """NCHW patchify as two single-axis moves (ORT has fast paths for those) instead of one 6-D Transpose."""
    g, p, c = s.grid, s.patch, s.channels
    inits = [_init("shape_a", np.array([0, c, g, p * g * p], np.int64)),
             _init("shape_b", np.array([-1, c * p, g, p], np.int64)),
             _init("shape_rows", np.array([-1, s.n, s.k], np.int64)),
             _init("E", s.e_nchw()), _init("table", s.patch_table())]
    nodes = [helper.make_node("Reshape", ["images", "shape_a"], ["xa"]),
             helper.make_node("Transpose", ["xa"], ["xat"], perm=[0, 2, 1, 3]),  # (B, gy, C, i*gx*j)
             helper.make_node("Reshape", ["xat", "shape_b"], ["xb"]),  # (B*gy, C*i, gx, j)
             helper.make_node("Transpose", ["xb"], ["xbt"], perm=[0, 2, 1, 3]),  # (B*gy, gx, C*i, j)
             helper.make_node("Reshape", ["xbt", "shape_rows"], ["patches"]),
             helper.make_node("MatMul", ["patches", "E"], ["xe"]),
             helper.make_node("Add", ["xe", "table"], ["xt"])]
    n2, i2 = _prepend_cls(s, "xt", "z0", s.cls_row())
    return _model(nodes + n2, inits + i2, ["B", s.channels, s.image, s.image], _out_shape(s), "folded_two_step")


def space_to_depth(s: Stem):
    """SpaceToDepth(P) -> Reshape (B, K, N) -> Transpose (B, N, K) -> MatMul (kernel rows in (i, j, c) order)."""
    e = s.kernel.transpose(0, 2, 3, 1).reshape(s.dim, s.k).T.copy()  # K order (i, j, c) = DCR SpaceToDepth
    inits = [_init("shape_bkn", np.array([0, s.k, s.n], np.int64)), _init("E", e), _init("table", s.patch_table())]
    nodes = [helper.make_node("SpaceToDepth", ["images"], ["sd"], blocksize=s.patch),
             helper.make_node("Reshape", ["sd", "shape_bkn"], ["sd3"]),
             helper.make_node("Transpose", ["sd3"], ["patches"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["patches", "E"], ["xe"]),
             helper.make_node("Add", ["xe", "table"], ["xt"])]
    n2, i2 = _prepend_cls(s, "xt", "z0", s.cls_row())
    return _model(nodes + n2, inits + i2, ["B", s.channels, s.image, s.image], _out_shape(s), "space_to_depth")


def folded_static(s: Stem, batch: int, layout="NCHW"):
    """Static batch: the expanded cls rows are a constant, so no Shape/Concat/Expand at run time."""
    nodes, inits = _patchify_nodes(s, layout, "patches", rows2d=False)
    inits += [_init("E", s.e_nchw() if layout == "NCHW" else s.e_nhwc()), _init("table", s.patch_table()),
              _init("cls_rows", np.tile(s.cls_row(), (batch, 1, 1)))]
    nodes += [helper.make_node("MatMul", ["patches", "E"], ["xe"]),
              helper.make_node("Add", ["xe", "table"], ["xt"]),
              helper.make_node("Concat", ["cls_rows", "xt"], ["z0"], axis=1)]
    shape = [batch, s.channels, s.image, s.image] if layout == "NCHW" else [batch, s.image, s.image, s.channels]
    return _model(nodes, inits, shape, [batch, 1 + s.n, s.dim], f"folded_static_{layout.lower()}")


def conv_channels_last(s: Stem, prefix="pad"):
    """Conv without bias -> Transpose to NHWC -> Reshape (B, N, D) -> prefix row -> one table Add.

    ORT (level all, x86) runs the Conv in its blocked NCHWc layout and fuses the NHWC Transpose
    into the ReorderOutput it has to insert anyway (channels_last), so no separate transpose runs.
    prefix: "pad" pads a zero row in front and adds the full table; "concat" adds the patch
    table and concatenates the expanded cls row.
    """
    inits = [_init("W", s.kernel), _init("shape_bnd", np.array([0, s.n, s.dim], np.int64))]
    nodes = [helper.make_node("Conv", ["images", "W"], ["y"], kernel_shape=[s.patch] * 2, strides=[s.patch] * 2),
             helper.make_node("Transpose", ["y"], ["yt"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["yt", "shape_bnd"], ["y3"])]
    if prefix == "pad":
        inits += [_init("pads", np.array([0, 1, 0, 0, 0, 0], np.int64)), _init("table", s.full_table())]
        nodes += [helper.make_node("Pad", ["y3", "pads"], ["yp"]), helper.make_node("Add", ["yp", "table"], ["z0"])]
        n2, i2 = [], []
    else:
        inits += [_init("table", s.patch_table())]
        nodes += [helper.make_node("Add", ["y3", "table"], ["xt"])]
        n2, i2 = _prepend_cls(s, "xt", "z0", s.cls_row())
    return _model(nodes + n2, inits + i2, ["B", s.channels, s.image, s.image], _out_shape(s), f"conv_cl_{prefix}")


def conv_sum(s: Stem, batch=None):
    """Conv -> Add of the patch table in NCHW (1, D, gh, gw) -> Transpose to NHWC -> Reshape -> Concat(cls row).

    Tries to have ORT fold the table Add into its NCHWc Conv (the Conv's 'Sum' input) so that the
    only passes left are the reorder and the prefix Concat.
    """
    table = s.patch_table().T.reshape(1, s.dim, s.grid, s.grid)
    if batch:
        table = np.tile(table, (batch, 1, 1, 1))
    inits = [_init("W", s.kernel), _init("table", table), _init("shape_bnd", np.array([0, s.n, s.dim], np.int64))]
    nodes = [helper.make_node("Conv", ["images", "W"], ["y"], kernel_shape=[s.patch] * 2, strides=[s.patch] * 2),
             helper.make_node("Add", ["y", "table"], ["ys"]),
             helper.make_node("Transpose", ["ys"], ["yt"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["yt", "shape_bnd"], ["xt"])]
    if batch:
        inits.append(_init("cls_rows", np.tile(s.cls_row(), (batch, 1, 1))))
        nodes.append(helper.make_node("Concat", ["cls_rows", "xt"], ["z0"], axis=1))
        return _model(nodes, inits, [batch, s.channels, s.image, s.image], [batch, 1 + s.n, s.dim], "conv_sum_static")
    n2, i2 = _prepend_cls(s, "xt", "z0", s.cls_row())
    return _model(nodes + n2, inits + i2, ["B", s.channels, s.image, s.image], _out_shape(s), "conv_sum")


def conv_strip(s: Stem, prefix_rows=1):
    """Patch rows laid out as one strip, the prefix rows as the Conv's own zero padding.

    (B, C, gh*P, W) -> (B, C, P, gh*W) by swapping the gh and P axes (contiguous W-long rows
    move); a Conv with kernel = stride = P over that strip yields the N patches in row-major
    order, and pads=[0, prefix*P, 0, 0] puts `prefix` all-zero patches in front, so neither a Pad
    nor a Concat of the output is needed: Conv -> NHWC reorder -> one table Add.
    """
    g, p, c = s.grid, s.patch, s.channels
    inits = [_init("W", s.kernel), _init("shape5", np.array([0, c, g, p, s.image], np.int64)),
             _init("strip", np.array([0, c, p, g * s.image], np.int64)),
             _init("rows", np.array([0, prefix_rows + s.n, s.dim], np.int64)), _init("table", s.full_table())]
    nodes = [helper.make_node("Reshape", ["images", "shape5"], ["x5"]),
             helper.make_node("Transpose", ["x5"], ["x5t"], perm=[0, 1, 3, 2, 4]),
             helper.make_node("Reshape", ["x5t", "strip"], ["xs"]),
             helper.make_node("Conv", ["xs", "W"], ["y"], kernel_shape=[p, p], strides=[p, p],
                              pads=[0, prefix_rows * p, 0, 0]),
             helper.make_node("Transpose", ["y"], ["yt"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["yt", "rows"], ["y3"]),
             helper.make_node("Add", ["y3", "table"], ["z0"])]
    return _model(nodes, inits, ["B", c, s.image, s.image], _out_shape(s), "conv_strip")


def gather_rows(s: Stem, layout: str = "NHWC"):
    """Patchify by one Gather (ORT runs it multi-threaded) instead of a Transpose: the image viewed as
    rows of contiguous pixels (P*C floats from NHWC, P floats from NCHW), gathered into patch order,
    then MatMul -> Add(patch table) -> Concat(cls row)."""
    g, p, c = s.grid, s.patch, s.channels
    if layout == "NHWC":  # row (i*P + pp)*gw + j of the (B, H*gw, P*C) view -> patch (i, j), row pp
        i, pp, j = np.meshgrid(np.arange(g), np.arange(p), np.arange(g), indexing="ij")
        index, view, e = ((i * p + pp) * g + j).transpose(0, 2, 1), [0, -1, p * c], s.e_nhwc()
    else:  # row ((cc*gh + i)*P + pp)*gw + j of the (B, C*H*gw, P) view -> patch (i, j), (cc, pp)
        cc, i, pp, j = np.meshgrid(np.arange(c), np.arange(g), np.arange(p), np.arange(g), indexing="ij")
        index, view, e = (((cc * g + i) * p + pp) * g + j).transpose(1, 3, 0, 2), [0, -1, p], s.e_nchw()
    inits = [_init("view", np.array(view, np.int64)), _init("index", index.reshape(-1).astype(np.int64)),
             _init("rows", np.array([0, s.n, s.k], np.int64)), _init("E", e), _init("table", s.patch_table())]
    nodes = [helper.make_node("Reshape", ["images", "view"], ["xv"]),
             helper.make_node("Gather", ["xv", "index"], ["xg"], axis=1),
             helper.make_node("Reshape", ["xg", "rows"], ["patches"]),
             helper.make_node("MatMul", ["patches", "E"], ["xe"]),
             helper.make_node("Add", ["xe", "table"], ["xt"])]
    n2, i2 = _prepend_cls(s, "xt", "z0", s.cls_row())
    shape = ["B", c, s.image, s.image] if layout == "NCHW" else ["B", s.image, s.image, c]
    return _model(nodes + n2, inits + i2, shape, _out_shape(s), f"gather_{layout.lower()}")


def variants(s: Stem, batch: int) -> dict:
    """name -> (model, layout of its input) for the hand-built prototypes."""
    return {
        "plain": (plain(s), "NCHW"),
        "folded": (folded(s), "NCHW"),
        "folded_nhwc": (folded(s, "NHWC"), "NHWC"),
        "concat_then_add": (concat_then_add(s), "NCHW"),
        "pad_input": (pad_input(s), "NCHW"),
        "pad_flat": (pad_flat(s), "NCHW"),
        "pad_flat_nhwc": (pad_flat(s, "NHWC"), "NHWC"),
        "gemm": (gemm(s), "NCHW"),
        "gemm_table_static": (gemm_table(s, batch), "NCHW"),
        "conv": (conv(s), "NCHW"),
        "conv_cl_pad": (conv_channels_last(s, "pad"), "NCHW"),
        "conv_cl_concat": (conv_channels_last(s, "concat"), "NCHW"),
        "conv_sum": (conv_sum(s), "NCHW"),
        "conv_strip": (conv_strip(s), "NCHW"),
        "gather_nchw": (gather_rows(s, "NCHW"), "NCHW"),
        "gather_nhwc": (gather_rows(s, "NHWC"), "NHWC"),
        "conv_sum_static": (conv_sum(s, batch), "NCHW"),
        "folded_two_step": (folded_two_step(s), "NCHW"),
        "space_to_depth": (space_to_depth(s), "NCHW"),
        "folded_static": (folded_static(s, batch), "NCHW"),
        "folded_static_nhwc": (folded_static(s, batch, "NHWC"), "NHWC"),
    }


def lower_bounds(s: Stem) -> dict:
    """name -> (model, expected z from NCHW images): the projection alone, without the table or the
    prefix rows, so what every ORT graph of the stem costs at least. `proj_conv_nchw`: the Conv with
    ORT's multi-threaded NCHWc -> NCHW reorder (not yet token-major); `proj_conv_tokens`: the Conv
    in token-major (B, N, D), ORT's single-threaded NCHWc -> NHWC reorder included."""
    conv = helper.make_node("Conv", ["images", "W"], ["y"], kernel_shape=[s.patch] * 2, strides=[s.patch] * 2)
    nchw = _model([conv], [_init("W", s.kernel)], ["B", s.channels, s.image, s.image],
                  ["B", s.dim, s.grid, s.grid], "proj_conv_nchw")
    nchw.graph.output[0].name = "y"
    tokens = _model([conv, helper.make_node("Transpose", ["y"], ["yt"], perm=[0, 2, 3, 1]),
                     helper.make_node("Reshape", ["yt", "rows"], ["z0"])],
                    [_init("W", s.kernel), _init("rows", np.array([0, s.n, s.dim], np.int64))],
                    ["B", s.channels, s.image, s.image], ["B", s.n, s.dim], "proj_conv_tokens")

    def projection(x):
        b = x.shape[0]
        p = x.reshape(b, s.channels, s.grid, s.patch, s.grid, s.patch).transpose(0, 2, 4, 1, 3, 5)
        return (p.reshape(b, s.n, s.k).astype(np.float64) @ s.e_nchw().astype(np.float64)).astype(np.float32)

    return {"proj_conv_nchw": (nchw, lambda x: projection(x).transpose(0, 2, 1).reshape(x.shape[0], s.dim, s.grid, s.grid)),
            "proj_conv_tokens": (tokens, projection)}


def conv_prototype(spec, weights):
    """The recommended fast NCHW graph built from the exporter's own folded constants:
    Conv(folded kernel) -> Transpose(0,2,3,1) -> Reshape -> Pad(prefix rows) -> Add(full table)."""
    from vitstem.export import folding

    d, (ph, pw), c = spec.embed_dim, spec.patch_size, spec.in_channels
    kernel = folding.kernel_matrix(spec, weights, "CHW", fold_preprocess=True).T.reshape(d, c, ph, pw)
    bias = folding.patch_bias(spec, weights, fold_preprocess=True)
    table = np.concatenate([folding.prefix_rows(spec, weights, np.float32),
                            folding.patch_rows(spec, weights, spec.patch_grid(), bias).astype(np.float32)])
    p = spec.num_prefix_tokens
    inits = [_init("W", kernel.astype(np.float32)), _init("rows", np.array([0, -1, d], np.int64)),
             _init("pads", np.array([0, p, 0, 0, 0, 0], np.int64)), _init("table", table)]
    nodes = [helper.make_node("Conv", ["images", "W"], ["y"], kernel_shape=[ph, pw], strides=[ph, pw]),
             helper.make_node("Transpose", ["y"], ["yt"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["yt", "rows"], ["y3"]),
             helper.make_node("Pad", ["y3", "pads"], ["yp"]),
             helper.make_node("Add", ["yp", "table"], ["z0"])]
    h, w = spec.image_size
    return _model(nodes, inits, ["B", c, h, w], ["B", spec.num_tokens(), d], "export_conv_prototype")


def exporter_cases(batch: int, rng) -> dict:
    """name -> (model, feed, expected) for vitstem.export's own graphs of vit_base_patch16_224."""
    import vitstem
    from vitstem.export import build_onnx

    spec = vitstem.load_spec("vit_base_patch16_224")
    weights = vitstem.init_weights(spec)
    frames = rng.integers(0, 256, (batch, *spec.image_size, spec.in_channels)).astype(np.uint8)
    nchw = np.ascontiguousarray(frames.transpose(0, 3, 1, 2)).astype(np.float32)
    expect = vitstem.forward(spec, weights, nchw, profile="exact")
    cases = {
        "export_conv_prototype": (conv_prototype(spec, weights), {"images": nchw}),
        "export_default": (build_onnx(spec, weights), {"images": nchw}),
        "export_batch_static": (build_onnx(spec, weights, batch=batch), {"images": nchw}),
        "export_frames_uint8_nhwc": (build_onnx(spec, weights, preprocess_in_graph=True), {"images": frames}),
    }
    return {name: (model, feed, expect) for name, (model, feed) in cases.items()}


def run(batches, threads, runs, levels, warmup=5, only=None, wait_quiet_s=0.0) -> dict:
    import os

    s = Stem()
    rng = np.random.default_rng(1)
    results = {"runs": runs, "threads": threads, "load_average_1m_before": os.getloadavg()[0], "cases": []}
    for b in batches:
        nchw = rng.standard_normal((b, s.channels, s.image, s.image)).astype(np.float32)
        nhwc = np.ascontiguousarray(nchw.transpose(0, 2, 3, 1))
        expect = s.reference(nchw)
        cases = {name: (model, {"images": nchw if layout == "NCHW" else nhwc}, expect)
                 for name, (model, layout) in variants(s, b).items()}
        cases.update(exporter_cases(b, rng))
        cases.update({name: (model, {"images": nchw}, expected(nchw)) for name, (model, expected) in lower_bounds(s).items()})
        rows = rng.standard_normal((b * s.n, s.k)).astype(np.float32)
        floor = ort_session(bare_matmul_model(b * s.n, s.k, s.dim), threads=threads)
        candidates = {"floor": lambda f=floor: f.run(None, {"x": rows})}
        for name, (model, feed, expect) in cases.items():
            if only and name not in only:
                continue
            for level in levels:
                sess = ort_session(model, threads=threads, level=level)
                err = float(np.abs(sess.run(None, feed)[0] - expect).max())
                if err > 1e-3:
                    raise AssertionError(f"variant {name} at level {level} is wrong: max error {err}")
                candidates[f"{name}@{level}"] = lambda sess=sess, feed=feed: sess.run(None, feed)
        if wait_quiet_s:
            wait_for_quiet(wait_quiet_s)
        probe, cpu = ForeignLoad().start(), {}
        times = interleaved_times(candidates, runs, warmup, cpu=cpu)
        foreign = probe.stop()
        floor_fig = summarize(times["floor"])
        case = {"batch": b, "threads": threads, "foreign_cpu_load": foreign, "figures": {}}
        for name, ts in times.items():
            fig = summarize(ts)
            fig["ratio_to_floor"] = fig["median_ms"] / floor_fig["median_ms"]
            fig["min_ratio_to_floor"] = fig["min_ms"] / floor_fig["min_ms"]
            fig["cpu_median_ms"] = statistics.median(cpu[name]) * 1e3
            fig["cpu_ratio_to_floor"] = statistics.median(cpu[name]) / statistics.median(cpu["floor"])
            case["figures"][name] = fig
        results["cases"].append(case)
        print(f"\nbatch {b}, {threads} threads (median of {runs}; other processes used {foreign:.2f} CPUs)")
        for name, fig in sorted(case["figures"].items(), key=lambda kv: kv[1]["median_ms"]):
            print(f"  {name:34s} {fig['median_ms']:8.3f} ms  x{fig['ratio_to_floor']:.3f}   "
                  f"(min {fig['min_ms']:.3f} ms, x{fig['min_ratio_to_floor']:.3f}; cpu x{fig['cpu_ratio_to_floor']:.3f})")
    results["load_average_1m_after"] = os.getloadavg()[0]
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--levels", nargs="+", default=["all"], choices=["disable", "basic", "extended", "all"])
    ap.add_argument("--only", nargs="+", help="variant names to time (default: all)")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    use_global_threads(args.threads)
    results = run(args.batch, args.threads, args.runs, args.levels, only=args.only, wait_quiet_s=args.wait_quiet)
    if args.json:
        from vitstem.files import atomic_write_bytes

        atomic_write_bytes(Path(args.json), (json.dumps(results, indent=1, sort_keys=True) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
