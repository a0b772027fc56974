"""Assemble the stem graph from spec, weights and options: the stages of the reference, in order.

    fast, one size:  images -> Gather (pixel runs) -> [Cast] -> MatMul -> + patch table -> [Concat prefix rows]
                     -> [pre_norm] -> [Cast]   (uint8 frames gathered as bytes and cast just before the MatMul;
                     int8: the prefix rows padded in front of the MatMul as bytes, then + the full table)
    fast, sizes:     NCHW, batch dynamic or 1: images -> Conv -> Transpose -> Reshape -> + patch table ->
                     [Concat prefix rows] -> ...; otherwise: images -> patchify (Transpose) -> [Pad] -> [Cast]
                     -> MatMul -> + table -> ...
    exact:           images -> Cast -> preprocess -> patchify -> Scan (sum over k) -> + b -> [Pad] -> + table
                     -> [pre_norm, means as Scans] -> Cast
    patch_norm:      ... projection -> + b -> patch_norm -> + patch table -> [Concat prefix rows] -> [pre_norm] ...

In `fast` the preprocessing (scale, mean, std) and the patch bias are folded into the kernel and
the table at export time; in `exact` every operation the reference does runs in float64, in the
reference's order (its sums as Scan loops over k and d, see ordered.py), and z0 is rounded to
float32 once.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Mapping

import numpy as np
from onnx import helper

from ..spec import Spec
from ..spec.exported import expected_io
from ..spec.remainder import cropped_size
from ..spec.vocabulary import INPUT_NAME, OUTPUT_NAME, Layout, Precision, Profile, graph_input
from . import folding
from . import graph as G
from .norms import normalize
from .options import ExportOptions
from .patches import conv_patches, gather_patches, patchify


def _projection(opts: ExportOptions, layout: Layout) -> str:
    """How the fast graph patchifies and projects: "gather", "conv" or "transpose" (exact: "transpose").

    gather:    one size: Gather of the image's pixel runs -> MatMul -> Add(patch table) -> Concat(prefix
               rows). ORT runs the Gather on all its threads, but a 6-D Transpose and the Conv's channels-last
               reorder on one, and the parallel MatMul after them starts late. Measured on an AVX2 AMD EPYC,
               2 threads, NCHW fp32 (benchmarks/projections.py, docs/benchmarks.md): 1.12x / 1.12x the floor
               at batch 1 / 8, vs 1.40x / 1.41x for the Conv and 1.17x / 1.17x for the Transpose; NHWC and
               uint8 frames measured as fast or faster than by Transpose; int8 (with float MatMul output, see
               quantize.py) as fast as its QLinearConv, with half the error. In float the prefix rows are
               joined after the MatMul: padded in front, they give it 197 rows, measured slower than 196 +
               Concat; int8 pads them in front as bytes (`_prefix_before_product`).
    conv:      several sizes, NCHW, batch dynamic or 1: Conv -> Transpose(0, 2, 3, 1) -> Reshape; ORT folds the
               Transpose into its NCHWc reorder, and the Conv takes any size (the Gather's index is bound to one).
    transpose: several sizes otherwise: 6-D Transpose patchify, the prefix rows padded in front of the MatMul.
    """
    if opts.profile == Profile.EXACT:
        return "transpose"  # ORT has no float64 Conv; exact sums in a Scan over patchified rows
    if opts.fixed_size:
        return "gather"
    return "conv" if layout == Layout.NCHW and opts.batch in (None, 1) else "transpose"


def _prefix_before_product(opts: ExportOptions, projection: str) -> bool:
    """Whether the prefix rows are zero rows padded in front of the patch rows (0 E = 0 exactly; the full
    table then adds the prefix rows) rather than joined after the table Add.

    transpose: always (one copy fewer than a Concat after). gather: only for int8, where the quantizer's
    QuantizeLinear is moved in front of the Pad (quantize.py), so the rows padded are bytes, a quarter of a
    float32 Concat after, and no Shape/Expand nodes: measured 1.22x vs 1.23x the int8 floor at batch 1 and
    1.18x vs 1.19x at batch 8, 2 threads, 300 rounds (docs/benchmarks.md). In float the Concat after wins
    (see `_projection`)."""
    return projection == "transpose" or (projection == "gather" and opts.precision == Precision.INT8)


def _io_infos(spec: Spec, opts: ExportOptions) -> list:
    """The graph's input and output ValueInfos: the contract a reader checks (vitstem.spec.exported)."""
    return [helper.make_tensor_value_info(name, G.ONNX_DTYPES[dtype], shape)
            for name, dtype, shape in expected_io(spec, asdict(opts))]


def _table(g: G.GraphBuilder, spec: Spec, weights, opts: ExportOptions, grid, bias, dtype,
           with_prefix: bool = True) -> str:
    """The (T, D) table tensor: a constant for one size, selected among constants for a list,
    computed from the input's grid (Resize, sin-cos or constant rows) for dynamic sizes.
    `with_prefix`: the prefix tokens' rows in front (T = P + N); otherwise the patch rows alone."""
    prefix = folding.prefix_rows(spec, weights, dtype) if with_prefix else np.zeros((0, spec.embed_dim), dtype)
    if not opts.dynamic_size:
        # One table per grid: with input.remainder: drop, two listed sizes can share a grid.
        grids = list(dict.fromkeys(spec.patch_grid(hw) for hw in opts.sizes))
        tables = [np.concatenate([prefix, folding.patch_rows(spec, weights, gg, bias).astype(dtype)]) for gg in grids]
        if opts.fixed_size:
            return g.const("position", "table", tables[0])
        return G.select_table(g, grid, grids, tables)
    pe = spec.position_embedding
    if pe.kind == "learned":
        # Resample the table alone and add the bias after: Resize's float32 error then scales with
        # |table|, as vitstem.backends.numpy.bound assumes, not with |table + bias|.
        source = folding.patch_rows(spec, weights, spec.pos_grid, None).reshape(*spec.pos_grid, spec.embed_dim)
        rows = G.resize_table(g, grid, source.astype(dtype), spec.resample)
        if bias is not None:
            rows = g.op("table", "Add", [rows, g.const("table", "bias", bias.astype(dtype))])
    elif pe.kind == "sincos2d":
        rows = G.sincos_table(g, grid, spec.embed_dim, pe.sincos_convention, pe.temperature)
        if bias is not None:
            rows = g.op("table", "Add", [rows, g.const("table", "bias", bias)])
        if dtype != np.float64:
            rows = G.cast(g, "table", rows, np.dtype(dtype).name)
    else:
        rows = G.constant_rows(g, grid, (np.zeros(spec.embed_dim) if bias is None else bias).astype(dtype))
    if prefix.shape[0] == 0:
        return rows
    return g.op("table", "Concat", [g.const("table", "prefix", prefix), rows], axis=0)


def _needs_crop(spec: Spec, opts: ExportOptions, exact: bool, layout: Layout) -> bool:
    """Whether the input must be sliced to whole patches first: the patchify Reshapes need it when
    a size may leave a remainder; the fast NCHW Conv (stride = patch) skips those pixels itself."""
    if _projection(opts, layout) == "conv":
        return False
    sizes = opts.sizes or ()
    return opts.dynamic_size or any(hw != cropped_size(*hw, spec.patch_size) for hw in sizes)


def _patches(g: G.GraphBuilder, spec: Spec, opts: ExportOptions, x: str, grid, layout: Layout, order: str,
             projection: str) -> str:
    """(B, N, K) patch rows for the MatMul paths: gathered (one size) or transposed (any size)."""
    if projection == "gather":
        return gather_patches(g, x, layout, spec.in_channels, spec.patch_size, spec.patch_grid(opts.fixed_size))
    return patchify(g, x, layout, spec.in_channels, spec.patch_size, grid or spec.patch_grid(opts.fixed_size), order)


def _conv_kernel(spec: Spec, kernel: np.ndarray) -> np.ndarray:
    """The (K, D) kernel rows in canonical (C, Ph, Pw) order as Conv weights (D, C, Ph, Pw)."""
    return kernel.T.reshape(spec.embed_dim, spec.in_channels, *spec.patch_size)


def _normalised_patches(g: G.GraphBuilder, spec: Spec, weights, opts: ExportOptions, x: str, grid, layout: Layout,
                        order: str, kernel: np.ndarray, bias: np.ndarray | None, dtype, projection: str) -> str:
    """[prefix rows; patch_norm(x E + b) + patch table]: the norm needs each projected row alone, so the
    bias (folded preprocessing included) is added before it instead of riding in the table, and the
    constant prefix rows are joined after the table Add."""
    exact = opts.profile == Profile.EXACT
    if projection == "conv":
        z = conv_patches(g, x, _conv_kernel(spec, kernel), spec.patch_size)
        if bias is not None:
            z = g.op("embed", "Add", [z, g.const("embed", "bias", bias)])
    else:
        z = G.embed(g, _patches(g, spec, opts, x, grid, layout, order, projection), kernel, bias, 0, ordered=exact)
    z = normalize(g, z, spec.patch_norm, weights, "patch_embed.norm", dtype, ordered=exact, stage="patch_norm")
    z = G.add_position(g, z, _table(g, spec, weights, opts, grid, None, dtype, with_prefix=False))
    if spec.num_prefix_tokens:
        z = G.prepend_rows(g, z, folding.prefix_rows(spec, weights, dtype), INPUT_NAME if exact else z)
    return z


def build_graph(spec: Spec, weights: Mapping[str, np.ndarray], opts: ExportOptions):
    """The GraphProto of the stem (float32 / float16 / float64 compute; int8 is applied afterwards)."""
    dtype = np.dtype(opts.compute_dtype)
    exact = opts.profile == Profile.EXACT
    layout, in_dtype = graph_input(spec, opts.preprocess_in_graph, opts.io_dtype)
    pre = spec.input.preprocess
    g = G.GraphBuilder(opts.opset)

    x = INPUT_NAME
    if spec.input.remainder == "drop" and _needs_crop(spec, opts, exact, layout):
        x = G.crop(g, x, layout, spec.patch_size, opts.fixed_size)
    # fast MatMul path on a narrower input (uint8 frames): patchify and pad in that dtype, cast last
    projection = _projection(opts, layout)
    late_cast = (not exact and projection != "conv" and spec.patch_norm is None
                 and np.dtype(in_dtype).itemsize < dtype.itemsize)
    if in_dtype != dtype.name and not late_cast:
        x = G.cast(g, "input", x, dtype.name)
    if exact and pre is not None:
        x = G.preprocess(g, x, layout, pre.scale, pre.mean, pre.std, dtype)
    grid = None if opts.fixed_size else G.image_grid(g, x, layout, spec.patch_size)
    # exact sums over k in the reference's canonical (C, Ph, Pw) order, whatever the input layout
    order = "CHW" if exact else folding.patch_order(layout)
    kernel = folding.kernel_matrix(spec, weights, order, fold_preprocess=not exact).astype(dtype)
    bias = folding.patch_bias(spec, weights, fold_preprocess=not exact)
    has_bias = spec.patch_bias or (pre is not None and not exact)
    separate_bias = bias.astype(dtype) if exact and spec.patch_bias else None  # the reference's order
    table_bias = bias if has_bias and not exact else None
    if spec.patch_norm is not None:
        z = _normalised_patches(g, spec, weights, opts, x, grid, layout, order, kernel,
                                bias.astype(dtype) if has_bias else None, dtype, projection)
    elif _prefix_before_product(opts, projection):  # zero rows padded in front: (B, P + N, D) + full table
        patches = _patches(g, spec, opts, x, grid, layout, order, projection)
        z = G.embed(g, patches, kernel, separate_bias, spec.num_prefix_tokens, ordered=exact,
                    cast_to=dtype.name if late_cast else None)
        z = G.add_position(g, z, _table(g, spec, weights, opts, grid, table_bias, dtype))
    else:  # conv, gather: (B, N, D) + patch table, then the constant prefix rows joined in front
        if projection == "conv":
            z = conv_patches(g, x, _conv_kernel(spec, kernel), spec.patch_size)
        else:
            z = G.embed(g, _patches(g, spec, opts, x, grid, layout, order, projection), kernel, None, 0,
                        cast_to=dtype.name if late_cast else None)
        z = G.add_position(g, z, _table(g, spec, weights, opts, grid, table_bias, dtype, with_prefix=False))
        if spec.num_prefix_tokens:
            z = G.prepend_rows(g, z, folding.prefix_rows(spec, weights, dtype), z)

    z = normalize(g, z, spec.pre_norm, weights, "norm_pre", dtype, ordered=exact, stage="pre_norm")
    if dtype.name != opts.io_dtype:
        z = G.cast(g, "output", z, opts.io_dtype)
    # The last node writes z0 directly (no Identity).
    g.nodes[-1].output[0] = OUTPUT_NAME
    # ONNX requires a non-empty graph name; "" is a valid spec name.
    graph_in, graph_out = _io_infos(spec, opts)
    return helper.make_graph(g.nodes, spec.name or "vitstem_stem", [graph_in], [graph_out], g.initializers)


def build_model(spec: Spec, weights: Mapping[str, np.ndarray], opts: ExportOptions, producer_version: str):
    """A ModelProto with an explicit ir_version: the oldest that supports the opset (older runtimes load it)."""
    opset = [helper.make_opsetid("", opts.opset)]
    return helper.make_model(build_graph(spec, weights, opts), opset_imports=opset,
                             ir_version=helper.find_min_ir_version_for(opset), producer_name="vitstem",
                             producer_version=producer_version)
