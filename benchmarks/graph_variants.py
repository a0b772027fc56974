"""Hand-built ONNX structures of the stem against the bare MatMul floor in ONNX Runtime: the variants the
docs cite, showing why the exporter emits the graph it does (see benchmarks/README.md). Each is built from
the exporter's folded constants (vitstem.export.folding) at its opset, and checked against the NumPy
reference (exact, within fast_error_bound) before it is timed; one thread count per process.

    python benchmarks/graph_variants.py [--spec NAME] [--batch 1 8] [--threads 2] [--runs 60] [--only NAME...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import vitstem
from harness.ort_models import bare_matmul_model, ort_session, use_global_threads
from harness.quiet import ForeignLoad, wait_for_quiet
from harness.timing import against_floor, interleaved_times
from vitstem.backends.numpy.bound import fast_error_bound
from vitstem.conformance.matrix import sample_images
from vitstem.export import build_onnx, folding
from vitstem.export.options import DEFAULT_OPSET
from vitstem.spec.vocabulary import INPUT_NAME, OUTPUT_NAME, Layout


class Folded:
    """The exporter's float32 constants of one stem: kernel rows, patch table (+ folded bias), prefix rows."""

    def __init__(self, spec, weights):
        if spec.pre_norm or spec.patch_norm or spec.input.remainder == "drop" or not spec.num_prefix_tokens:
            raise ValueError(f"{spec.name}: the variants cover stems with prefix tokens and no norms or remainder")
        self.spec, self.weights = spec, weights
        self.c, self.d, (self.ph, self.pw), (self.gh, self.gw) = (spec.in_channels, spec.embed_dim, spec.patch_size,
                                                                  spec.patch_grid())
        self.h, self.w = spec.image_size
        self.n, self.k, self.p = self.gh * self.gw, spec.patch_dim, spec.num_prefix_tokens
        self.z0 = ["B", self.p + self.n, self.d]
        bias = folding.patch_bias(spec, weights, fold_preprocess=True)
        self.patch_table = folding.patch_rows(spec, weights, (self.gh, self.gw), bias).astype(np.float32)
        self.prefix = folding.prefix_rows(spec, weights, np.float32)
        self.full_table = np.concatenate([self.prefix, self.patch_table])
        self.kernel = self.e(Layout.NCHW).T.reshape(self.d, self.c, self.ph, self.pw)  # OIHW

    def e(self, layout: Layout) -> np.ndarray:
        """(K, D) float32 kernel rows in the patch order of `layout`'s patchify."""
        return folding.kernel_matrix(self.spec, self.weights, folding.patch_order(layout), True).astype(np.float32)

    def input_shape(self, layout: Layout) -> list:
        return list(layout.shape("B", self.c, self.h, self.w))


def _init(name, array):
    return numpy_helper.from_array(np.ascontiguousarray(array), name)


def _model(nodes, inits, input_shape, output_shape, name, output=OUTPUT_NAME):
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, input_shape)],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, output_shape)],
                              initializer=inits)
    opsets = [helper.make_opsetid("", DEFAULT_OPSET)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))


def _prepend_prefix(f: Folded, patches: str):
    """Concat([Expand(prefix rows, (B, P, D)), patches], axis=1) -> z0."""
    inits = [_init("prefix", f.prefix[None]), _init("prefix_dims", np.array([f.p, f.d], np.int64))]
    nodes = [helper.make_node("Shape", [INPUT_NAME], ["batch"], start=0, end=1),
             helper.make_node("Concat", ["batch", "prefix_dims"], ["prefix_shape"], axis=0),
             helper.make_node("Expand", ["prefix", "prefix_shape"], ["prefix_b"]),
             helper.make_node("Concat", ["prefix_b", patches], [OUTPUT_NAME], axis=1)]
    return nodes, inits


def folded_two_step(f: Folded):
    """NCHW patchify as two single-axis moves (ORT has fast paths for those) instead of one 6-D Transpose."""
    inits = [_init("shape_a", np.array([0, f.c, f.gh, f.ph * f.w], np.int64)),
             _init("shape_b", np.array([-1, f.c * f.ph, f.gw, f.pw], np.int64)),
             _init("shape_rows", np.array([-1, f.n, f.k], np.int64)), _init("E", f.e(Layout.NCHW)),
             _init("table", f.patch_table)]
    nodes = [helper.make_node("Reshape", [INPUT_NAME, "shape_a"], ["xa"]),
             helper.make_node("Transpose", ["xa"], ["xat"], perm=[0, 2, 1, 3]),  # (B, gh, C, ph*gw*pw)
             helper.make_node("Reshape", ["xat", "shape_b"], ["xb"]),  # (B*gh, C*ph, gw, pw)
             helper.make_node("Transpose", ["xb"], ["xbt"], perm=[0, 2, 1, 3]),  # (B*gh, gw, C*ph, pw)
             helper.make_node("Reshape", ["xbt", "shape_rows"], ["patches"]),
             helper.make_node("MatMul", ["patches", "E"], ["xe"]),
             helper.make_node("Add", ["xe", "table"], ["xt"])]
    n2, i2 = _prepend_prefix(f, "xt")
    return _model(nodes + n2, inits + i2, f.input_shape(Layout.NCHW), f.z0, "folded_two_step")


def pad_flat_nhwc(f: Folded):
    """NHWC patchify; the P zero patches padded on the flattened (B, N*K) axis (one contiguous copy per
    image), MatMul, one Add of the full table: no output Concat."""
    inits = [_init("shape6", np.array([0, f.gh, f.ph, f.gw, f.pw, f.c], np.int64)),
             _init("flat", np.array([0, -1], np.int64)), _init("pads", np.array([0, f.p * f.k, 0, 0], np.int64)),
             _init("rows", np.array([0, -1, f.k], np.int64)), _init("E", f.e(Layout.NHWC)),
             _init("table", f.full_table)]
    nodes = [helper.make_node("Reshape", [INPUT_NAME, "shape6"], ["x6"]),
             helper.make_node("Transpose", ["x6"], ["x6t"], perm=[0, 1, 3, 2, 4, 5]),
             helper.make_node("Reshape", ["x6t", "flat"], ["xf"]),
             helper.make_node("Pad", ["xf", "pads"], ["xp"]),
             helper.make_node("Reshape", ["xp", "rows"], ["padded"]),
             helper.make_node("MatMul", ["padded", "E"], ["xe"]),
             helper.make_node("Add", ["xe", "table"], [OUTPUT_NAME])]
    return _model(nodes, inits, f.input_shape(Layout.NHWC), f.z0, "pad_flat_nhwc")


def _conv(f: Folded, source=INPUT_NAME, **pads):
    return helper.make_node("Conv", [source, "W"], ["y"], kernel_shape=[f.ph, f.pw], strides=[f.ph, f.pw], **pads)


def conv_cl_concat(f: Folded):
    """Conv without bias -> Transpose to NHWC (ORT fuses it into its NCHWc reorder) -> Reshape (B, N, D)
    -> Add(patch table) -> Concat(prefix rows): the exporter's fast NCHW structure."""
    inits = [_init("W", f.kernel), _init("shape_bnd", np.array([0, f.n, f.d], np.int64)), _init("table", f.patch_table)]
    nodes = [_conv(f), helper.make_node("Transpose", ["y"], ["yt"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["yt", "shape_bnd"], ["y3"]), helper.make_node("Add", ["y3", "table"], ["xt"])]
    n2, i2 = _prepend_prefix(f, "xt")
    return _model(nodes + n2, inits + i2, f.input_shape(Layout.NCHW), f.z0, "conv_cl_concat")


def conv_strip(f: Folded):
    """The patch rows as one strip, (B, C, gh*ph, W) -> (B, C, ph, gh*W), so a Conv with kernel = stride =
    patch yields the N patches in order and its pads=[0, P*pw, 0, 0] write the P prefix rows: no Pad, no Concat."""
    inits = [_init("W", f.kernel), _init("shape5", np.array([0, f.c, f.gh, f.ph, f.w], np.int64)),
             _init("strip", np.array([0, f.c, f.ph, f.gh * f.w], np.int64)),
             _init("rows", np.array([0, f.p + f.n, f.d], np.int64)), _init("table", f.full_table)]
    nodes = [helper.make_node("Reshape", [INPUT_NAME, "shape5"], ["x5"]),
             helper.make_node("Transpose", ["x5"], ["x5t"], perm=[0, 1, 3, 2, 4]),
             helper.make_node("Reshape", ["x5t", "strip"], ["xs"]), _conv(f, "xs", pads=[0, f.p * f.pw, 0, 0]),
             helper.make_node("Transpose", ["y"], ["yt"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["yt", "rows"], ["y3"]), helper.make_node("Add", ["y3", "table"], [OUTPUT_NAME])]
    return _model(nodes, inits, f.input_shape(Layout.NCHW), f.z0, "conv_strip")


def gather_rows(f: Folded, layout: Layout):
    """Patchify by one (multi-threaded) Gather of the image's contiguous pixel rows (pw*C floats from NHWC,
    pw from NCHW) instead of a Transpose, then MatMul -> Add(patch table) -> Concat(prefix rows)."""
    gh, gw, ph = f.gh, f.gw, f.ph
    if layout == Layout.NHWC:  # row (i*ph + r)*gw + j of the (B, H*gw, pw*C) view -> patch (i, j), row r
        i, r, j = np.meshgrid(np.arange(gh), np.arange(ph), np.arange(gw), indexing="ij")
        index, view = ((i * ph + r) * gw + j).transpose(0, 2, 1), [0, -1, f.pw * f.c]
    else:  # row ((c*gh + i)*ph + r)*gw + j of the (B, C*H*gw, pw) view -> patch (i, j), (c, r)
        c, i, r, j = np.meshgrid(np.arange(f.c), np.arange(gh), np.arange(ph), np.arange(gw), indexing="ij")
        index, view = (((c * gh + i) * ph + r) * gw + j).transpose(1, 3, 0, 2), [0, -1, f.pw]
    inits = [_init("view", np.array(view, np.int64)), _init("index", index.reshape(-1).astype(np.int64)),
             _init("rows", np.array([0, f.n, f.k], np.int64)), _init("E", f.e(layout)), _init("table", f.patch_table)]
    nodes = [helper.make_node("Reshape", [INPUT_NAME, "view"], ["xv"]),
             helper.make_node("Gather", ["xv", "index"], ["xg"], axis=1),
             helper.make_node("Reshape", ["xg", "rows"], ["patches"]),
             helper.make_node("MatMul", ["patches", "E"], ["xe"]), helper.make_node("Add", ["xe", "table"], ["xt"])]
    n2, i2 = _prepend_prefix(f, "xt")
    return _model(nodes + n2, inits + i2, f.input_shape(layout), f.z0, f"gather_{layout.value.lower()}")


def _gather_product(f: Folded, with_table: bool):
    """The exporter's Gather patchify (vitstem.export.patches.pixel_runs) -> MatMul [-> Add(patch table)]: no prefix rows."""
    from vitstem.export.patches import pixel_runs

    first, offsets = pixel_runs(Layout.NCHW, f.c, (f.ph, f.pw), (f.gh, f.gw))
    inits = [_init("view", np.array([0, -1, f.pw], np.int64)), _init("index", first + offsets),
             _init("rows", np.array([0, f.n, f.k], np.int64)), _init("E", f.e(Layout.NCHW))]
    nodes = [helper.make_node("Reshape", [INPUT_NAME, "view"], ["xv"]),
             helper.make_node("Gather", ["xv", "index"], ["xg"], axis=1),
             helper.make_node("Reshape", ["xg", "rows"], ["patches"]),
             helper.make_node("MatMul", ["patches", "E"], ["xe" if with_table else OUTPUT_NAME])]
    if with_table:
        nodes.append(helper.make_node("Add", ["xe", "table"], [OUTPUT_NAME]))
        inits.append(_init("table", f.patch_table))
    name = "proj_gather_table" if with_table else "proj_gather_tokens"
    return _model(nodes, inits, f.input_shape(Layout.NCHW), ["B", f.n, f.d], name)


def gather_prefix_after(f: Folded, how: str):
    """The exporter's Gather -> MatMul, then the prefix rows written another way than its Add + Concat:
    `pad` pads P zero rows on the MatMul's output (no Shape/Expand nodes), `concat` concatenates P zero rows
    broadcast over the batch; both then add the full (P + N, D) table."""
    product = _gather_product(f, False).graph
    nodes, inits = list(product.node), list(product.initializer)
    nodes[-1].output[0] = "xe"
    if how == "pad":
        nodes.append(helper.make_node("Pad", ["xe", "pads"], ["xp"]))
        inits.append(_init("pads", np.array([0, f.p, 0, 0, 0, 0], np.int64)))
    else:
        nodes += [helper.make_node("Shape", ["xe"], ["batch"], start=0, end=1),
                  helper.make_node("Concat", ["batch", "ones"], ["shape"], axis=0),
                  helper.make_node("Expand", ["zeros", "shape"], ["zb"]),
                  helper.make_node("Concat", ["zb", "xe"], ["xp"], axis=1)]
        inits += [_init("ones", np.array([1, 1], np.int64)), _init("zeros", np.zeros((1, f.p, f.d), np.float32))]
    nodes.append(helper.make_node("Add", ["xp", "table"], [OUTPUT_NAME]))
    inits.append(_init("table", f.full_table))
    return _model(nodes, inits, f.input_shape(Layout.NCHW), f.z0, f"gather_{how}_then_add")


def projections(f: Folded) -> dict:
    """The lower bounds: `proj_conv_nchw`, the Conv with ORT's multi-threaded NCHWc -> NCHW reorder (not
    yet token-major); `proj_conv_tokens`, the Conv in token-major (B, N, D), ORT's single-threaded
    NCHWc -> NHWC reorder included; `proj_gather_tokens`, the exporter's Gather patchify + MatMul, and
    `proj_gather_table` with the patch-table Add too: the default graph without its prefix rows.
    name -> (model, its output from the (B, N, D) patch rows, whether the patch table is added)."""
    nchw = _model([_conv(f)], [_init("W", f.kernel)], f.input_shape(Layout.NCHW), ["B", f.d, f.gh, f.gw],
                  "proj_conv_nchw", output="y")
    tokens = _model([_conv(f), helper.make_node("Transpose", ["y"], ["yt"], perm=[0, 2, 3, 1]),
                     helper.make_node("Reshape", ["yt", "rows"], [OUTPUT_NAME])],
                    [_init("W", f.kernel), _init("rows", np.array([0, f.n, f.d], np.int64))],
                    f.input_shape(Layout.NCHW), ["B", f.n, f.d], "proj_conv_tokens")
    same = lambda rows: rows  # noqa: E731
    return {"proj_conv_nchw": (nchw, lambda rows: rows.transpose(0, 2, 1).reshape(-1, f.d, f.gh, f.gw), False),
            "proj_conv_tokens": (tokens, same, False), "proj_gather_tokens": (_gather_product(f, False), same, False),
            "proj_gather_table": (_gather_product(f, True), same, True)}


def cases(spec, weights, batch: int, seed: int = 0) -> dict:
    """name -> (model, feed, expected, bound) for one batch: the variants and the exporter's own graphs."""
    f = Folded(spec, weights)
    pixels = sample_images(spec, batch, spec.image_size, seed).astype(np.float32)
    nhwc = np.ascontiguousarray(pixels.transpose(Layout.NHWC.from_nchw))
    z = vitstem.forward(spec, weights, pixels, profile="exact")
    bound = fast_error_bound(spec, weights, pixels)
    graphs = {"export_default": (build_onnx(spec, weights), pixels),
              "export_batch_static": (build_onnx(spec, weights, batch=batch), pixels),
              "folded_two_step": (folded_two_step(f), pixels), "pad_flat_nhwc": (pad_flat_nhwc(f), nhwc),
              "conv_cl_concat": (conv_cl_concat(f), pixels), "conv_strip": (conv_strip(f), pixels),
              "gather_nchw": (gather_rows(f, Layout.NCHW), pixels), "gather_nhwc": (gather_rows(f, Layout.NHWC), nhwc),
              "gather_pad_then_add": (gather_prefix_after(f, "pad"), pixels),
              "gather_concat_then_add": (gather_prefix_after(f, "concat"), pixels)}
    out = {name: (model, {INPUT_NAME: x}, z, bound) for name, (model, x) in graphs.items()}
    projected = z[:, f.p:].astype(np.float64) - f.patch_table  # the reference's patch rows without the table
    out.update({name: (model, {INPUT_NAME: pixels}, output(z[:, f.p:] if table else projected), output(bound[:, f.p:]))
                for name, (model, output, table) in projections(f).items()})
    return out


def run(spec_name, batches, threads, runs, levels, warmup=5, only=None, wait_quiet_s=0.0) -> dict:
    weights = vitstem.init_weights(spec := vitstem.load_spec(spec_name))
    results = {"spec": spec.name, "opset": DEFAULT_OPSET, "runs": runs, "threads": threads,
               "load_average_1m_before": os.getloadavg()[0], "cases": []}
    for b in batches:
        candidates, rows = {}, np.random.default_rng(1).standard_normal((b * spec.num_patches, spec.patch_dim))
        floor = ort_session(bare_matmul_model(b * spec.num_patches, spec.patch_dim, spec.embed_dim), threads=threads)
        candidates["floor"] = lambda f=floor, x=rows.astype(np.float32): f.run(None, {"x": x})
        for name, (model, feed, expected, bound) in cases(spec, weights, b).items():
            if only and name not in only:
                continue
            for level in levels:
                sess = ort_session(model, threads=threads, level=level)
                excess = float((np.abs(sess.run(None, feed)[0] - expected) - bound).max())
                if excess > 0:
                    raise AssertionError(f"variant {name} at level {level} is wrong: {excess} beyond the bound")
                candidates[f"{name}@{level}"] = lambda sess=sess, feed=feed: sess.run(None, feed)
        if wait_quiet_s:
            wait_for_quiet(wait_quiet_s)
        probe, cpu = ForeignLoad().start(), {}
        times = interleaved_times(candidates, runs, warmup, cpu=cpu)
        foreign = probe.stop()
        case = {"batch": b, "threads": threads, "foreign_cpu_load": foreign, "figures": against_floor(times, cpu, "floor")}
        results["cases"].append(case)
        print(f"\nbatch {b}, {threads} threads (median of {runs}; other processes used {foreign or 0:.2f} CPUs)")
        for name, fig in sorted(case["figures"].items(), key=lambda kv: kv[1]["median_ms"]):
            print(f"  {name:34s} {fig['median_ms']:8.3f} ms  x{fig['ratio_to_floor']:.3f}   "
                  f"(min {fig['min_ms']:.3f} ms, x{fig['min_ratio_to_floor']:.3f}; cpu x{fig['cpu_ratio_to_floor']:.3f})")
    results["load_average_1m_after"] = os.getloadavg()[0]
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="vit_base_patch16_224", help="spec file or preset name")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--levels", nargs="+", default=["all"], choices=["disable", "basic", "extended", "all"])
    ap.add_argument("--only", nargs="+", help="variant names to time (default: all)")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    use_global_threads(args.threads)
    results = run(args.spec, args.batch, args.threads, args.runs, args.levels, only=args.only,
                  wait_quiet_s=args.wait_quiet)
    if args.json:
        from vitstem.files import atomic_write_bytes

        atomic_write_bytes(Path(args.json), (json.dumps(results, indent=1, sort_keys=True) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
