"""Sums in the exact profile's fixed order (vitstem/spec/exact.py), as ONNX Scan loops.

MatMul and ReduceMean add in whatever order the runtime likes, which moves float64 results by an
ulp or so and, once in ~300 000 elements, z0's float32 rounding. A Scan visits k = 0, 1, ... in
order and adds one term per step, so ONNX Runtime reproduces the reference's float64 bits. The
accumulator starts at -0.0, the exact additive identity of IEEE arithmetic (-0.0 + t == t for
every t, signed zeros included), so the first step gives t_0 itself, as the reference does.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper


_DOUBLE = TensorProto.DOUBLE


def _body(name: str, nodes: list, inputs: dict[str, int], outputs: dict[str, int]):
    """A Scan body of float64 values with the given ranks (dims left to the runtime)."""
    info = [helper.make_tensor_value_info(n, _DOUBLE, [None] * r) for n, r in inputs.items()]
    out = [helper.make_tensor_value_info(n, _DOUBLE, [None] * r) for n, r in outputs.items()]
    return helper.make_graph(nodes, name, info, out)


def _negative_zeros(g, stage: str, x: str, last: int | None) -> str:
    """-0.0 filled like `x` without its last axis (then with `last` appended, if given)."""
    shape = g.op(stage, "Shape", [x])
    rank_minus_1 = g.op(stage, "Slice", [shape, g.ints(stage, "start", [0]), g.ints(stage, "end", [-1])])
    if last is not None:
        rank_minus_1 = g.op(stage, "Concat", [rank_minus_1, g.ints(stage, "last", [last])], axis=0)
    fill = helper.make_tensor("value", _DOUBLE, [1], [-0.0])
    return g.op(stage, "ConstantOfShape", [rank_minus_1], value=fill)


def _last_axis_first(g, stage: str, x: str, rank: int) -> str:
    """Move the summed axis to the front: Scan then walks contiguous slices, and axis 0 is the
    only scan axis onnx's ReferenceEvaluator implements."""
    return g.op(stage, "Transpose", [x], perm=[rank - 1, *range(rank - 1)])


def _scan(g, stage: str, state: str, scans: list[str], body) -> str:
    name = g._name(f"{stage}/Scan")
    g.nodes.append(helper.make_node("Scan", [state, *scans], [name], name=name, body=body,
                                    num_scan_inputs=len(scans)))
    return name


def ordered_matmul(g, stage: str, x: str, kernel: np.ndarray, rank: int = 3) -> str:
    """x (..., K) of rank `rank` @ kernel (K, D), float64, summing x_k * kernel[k] for k = 0..K-1 in order."""
    mul_axes = helper.make_tensor("axes", TensorProto.INT64, [1], [-1])
    body_nodes = [
        helper.make_node("Unsqueeze", ["x_k", "unsqueeze_axes"], ["x_k_col"]) if g.opset >= 13
        else helper.make_node("Unsqueeze", ["x_k"], ["x_k_col"], axes=[-1]),
        helper.make_node("Mul", ["x_k_col", "e_k"], ["term"]),
        helper.make_node("Add", ["acc", "term"], ["acc_next"]),
    ]
    if g.opset >= 13:
        body_nodes.insert(0, helper.make_node("Constant", [], ["unsqueeze_axes"], value=mul_axes))
    body = _body(f"{stage}_ordered_matmul", body_nodes, {"acc": rank, "x_k": rank - 1, "e_k": 1}, {"acc_next": rank})
    start = _negative_zeros(g, stage, x, kernel.shape[1])
    columns = _last_axis_first(g, stage, x, rank)
    return _scan(g, stage, start, [columns, g.const(stage, "kernel", kernel.astype(np.float64))], body)


def ordered_mean_last(g, stage: str, x: str, size: int, rank: int = 3) -> str:
    """mean over the last axis (kept, size `size`) of x of rank `rank`, summing d = 0..size-1 in order, then / size."""
    body = _body(f"{stage}_ordered_sum", [helper.make_node("Add", ["acc", "x_d"], ["acc_next"])],
                 {"acc": rank - 1, "x_d": rank - 1}, {"acc_next": rank - 1})
    total = _scan(g, stage, _negative_zeros(g, stage, x, None), [_last_axis_first(g, stage, x, rank)], body)
    axes = g.ints(stage, "keep_axis", [-1])
    kept = (g.op(stage, "Unsqueeze", [total, axes]) if g.opset >= 13
            else g.op(stage, "Unsqueeze", [total], axes=[-1]))
    return g.op(stage, "Div", [kept, g.const(stage, "size", np.asarray(size, np.float64))])
