"""The optional norms in PyTorch, as the reference's `normalize`: F.layer_norm / F.rms_norm in float32,
the reference's formulas with every mean summed in order d = 0..D-1 in float64 (the exact profile)."""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

from ...spec.exact import sum_in_order


def _row_mean(v: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis (kept), summed in order d = 0..D-1 (float64, the exact profile):
    one Split node, then D ordered adds of (1, B, T) slices."""
    return (sum_in_order(torch.split(v.movedim(-1, 0), 1)) / v.shape[-1]).movedim(0, -1)


def _eps(z: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.tensor(eps, dtype=z.dtype, device=z.device)  # a Python float would reach ONNX as float32


def layer_norm(z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the last axis with the biased variance: F.layer_norm in float32 (or the module's
    float16/bfloat16, accumulated in float32 by torch); in float64 the reference's formula."""
    if z.dtype != torch.float64:
        return F.layer_norm(z, (z.shape[-1],), weight, bias, eps)
    centred = z - _row_mean(z)
    var = _row_mean(centred * centred)
    return centred / torch.sqrt(var + _eps(z, eps)) * weight + bias


def rms_norm(z: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RmsNorm over the last axis, z / sqrt(mean(z^2) + eps) * weight: F.rms_norm in float32; in float64
    the reference's formula."""
    if z.dtype != torch.float64:
        return F.rms_norm(z, (z.shape[-1],), weight, eps)
    return z / torch.sqrt(_row_mean(z * z) + _eps(z, eps)) * weight


def normalize(norm, weights: Mapping[str, torch.Tensor], prefix: str, z: torch.Tensor) -> torch.Tensor:
    """The spec's `norm` (a Norm, or None: z unchanged) with the weights PREFIX.weight [, PREFIX.bias]."""
    if norm is None:
        return z
    weight = weights[f"{prefix}.weight"].to(z.dtype)
    if norm.kind == "rms_norm":
        return rms_norm(z, weight, norm.eps)
    return layer_norm(z, weight, weights[f"{prefix}.bias"].to(z.dtype), norm.eps)
