"""The norms of the stem as graph nodes, as the reference defines them (backends/numpy/stem.py).

LayerNorm: (z - mean) / sqrt(var + eps) * weight + bias (biased variance); RmsNorm:
z / sqrt(mean(z^2) + eps) * weight. In the exact profile every mean sums over D in order (a Scan,
see ordered.py); otherwise ReduceMean, or the fused opset-17 LayerNormalization.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .graph import GraphBuilder
from .ordered import ordered_mean_last


def reduce_mean_last(g: GraphBuilder, x: str, stage: str = "pre_norm") -> str:
    if g.opset >= 18:  # axes became an input in opset 18
        return g.op(stage, "ReduceMean", [x, g.ints(stage, "axes", [-1])], keepdims=1)
    return g.op(stage, "ReduceMean", [x], axes=[-1], keepdims=1)


def _mean(g: GraphBuilder, stage: str, x: str, size: int, ordered: bool) -> str:
    return ordered_mean_last(g, stage, x, size) if ordered else reduce_mean_last(g, x, stage)


def layer_norm(g: GraphBuilder, z: str, weight: np.ndarray, bias: np.ndarray, eps: float, fused: bool,
               ordered: bool = False, stage: str = "pre_norm") -> str:
    """LayerNorm over D with the biased variance. `fused`: the opset-17 op; otherwise the
    reference's own sequence (mean, centre, mean of squares, sqrt(var + eps), divide, affine).
    `ordered` (exact profile): the two means sum over D in order (Scan) instead of ReduceMean."""
    w = g.const(stage, "weight", weight)
    b = g.const(stage, "bias", bias)
    if fused:
        return g.op(stage, "LayerNormalization", [z, w, b], axis=-1, epsilon=float(eps))
    d = weight.shape[0]
    centred = g.op(stage, "Sub", [z, _mean(g, stage, z, d, ordered)])
    var = _mean(g, stage, g.op(stage, "Mul", [centred, centred]), d, ordered)
    std = g.op(stage, "Sqrt", [g.op(stage, "Add", [var, g.const(stage, "eps", np.asarray(eps, weight.dtype))])])
    return g.op(stage, "Add", [g.op(stage, "Mul", [g.op(stage, "Div", [centred, std]), w]), b])


def rms_norm(g: GraphBuilder, z: str, weight: np.ndarray, eps: float, ordered: bool = False,
             stage: str = "pre_norm") -> str:
    """RmsNorm over D: z / sqrt(mean(z * z) + eps) * weight, the reference's sequence (ONNX's own
    RMSNormalization needs opset 23, newer than ONNX Runtime's mobile builds)."""
    w = g.const(stage, "weight", weight)
    square_mean = _mean(g, stage, g.op(stage, "Mul", [z, z]), weight.shape[0], ordered)
    std = g.op(stage, "Sqrt", [g.op(stage, "Add", [square_mean, g.const(stage, "eps", np.asarray(eps, weight.dtype))])])
    return g.op(stage, "Mul", [g.op(stage, "Div", [z, std]), w])


def normalize(g: GraphBuilder, z: str, norm, weights: Mapping[str, np.ndarray], prefix: str, dtype, *,
              ordered: bool, stage: str) -> str:
    """The spec's `norm` (a Norm, or None: z unchanged) with the weights PREFIX.weight [, PREFIX.bias],
    in `dtype`; `ordered` (exact profile): means summed in order; otherwise fused LayerNormalization
    from opset 17."""
    if norm is None:
        return z
    weight = weights[f"{prefix}.weight"].astype(dtype)
    if norm.kind == "rms_norm":
        return rms_norm(g, z, weight, norm.eps, ordered=ordered, stage=stage)
    return layer_norm(g, z, weight, weights[f"{prefix}.bias"].astype(dtype), norm.eps,
                      fused=not ordered and g.opset >= 17, ordered=ordered, stage=stage)
