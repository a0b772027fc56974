"""Build a validated (spec, canonical weights) pair from the facts every converter extracts.

Each peer converter reads its model or file into the same handful of facts (an OIHW kernel, the
prefix tokens, a position table and how it covers them, sizes, preprocessing); this module is
the one place that turns those facts into a spec document and checks the weights against it.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..errors import SpecError, WeightsError
from ..spec import Spec, check_weights, load_spec
from ..spec.model import SPEC_VERSION
from ..spec.vocabulary import Layout


def as_float32(value, what: str) -> np.ndarray:
    """A numpy float32 copy of a tensor-like (numpy, torch, TF/Keras variable), contiguous.

    Always a copy: torch's .numpy() shares memory with the parameter, and the weights must not
    change when the model is trained or edited afterwards.
    """
    if hasattr(value, "detach"):  # torch: leave the autograd graph and the device
        value = value.detach().cpu()
        if str(value.dtype) in ("torch.bfloat16", "torch.float16"):
            value = value.float()
        value = value.numpy()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # TF tensors / Keras variables
        value = value.numpy()
    array = np.asarray(value)
    if array.dtype.kind != "f":
        raise WeightsError(f"{what} has dtype {array.dtype}; a floating-point tensor was expected")
    return np.array(array, dtype=np.float32, order="C", copy=True)


def preprocess_doc(scale: float, mean, std) -> dict:
    """The spec's input.preprocess mapping: x = (pixels * scale - mean) / std."""
    return {"scale": float(scale), "mean": [float(m) for m in mean], "std": [float(s) for s in std]}


def square_side(count: int) -> int | None:
    """s with s*s == count, or None."""
    side = math.isqrt(count) if count >= 0 else -1
    return side if side >= 1 and side * side == count else None


def assemble(*, name: str, kernel: np.ndarray, image_size: tuple[int, int], bias: np.ndarray | None = None,
             cls: np.ndarray | None = None, dist: np.ndarray | None = None, reg: np.ndarray | None = None,
             pos: np.ndarray | None = None, covers_prefix: bool = True, pos_grid: tuple[int, int] | None = None,
             sincos: str | None = None, pre_norm: tuple | None = None, patch_norm: tuple | None = None,
             layout: str = Layout.NCHW, preprocess: dict | None = None, resample: str = "timm",
             dynamic_image_size: bool = False, remainder: str = "refuse") -> tuple[Spec, dict[str, np.ndarray]]:
    """(spec, weights) from peer facts; `kernel` is OIHW, `pos` is (1, T, D) or None.

    `pos_grid` is the table's patch grid when it differs from the grid of `image_size` (the spec
    then resamples it to that grid). `pre_norm` and `patch_norm`: (weight, bias, eps) for a
    LayerNorm, or (kind, weight, bias or None, eps) with kind layer_norm or rms_norm (no bias).
    `remainder` is the spec's input.remainder: "drop" when the peer's strided conv ignores the
    pixels past the last whole patch. SpecError/WeightsError name the tensor that does not fit.
    """
    kernel = as_float32(kernel, "the patch kernel")
    if kernel.ndim != 4:
        raise WeightsError(f"the patch kernel has shape {kernel.shape}; expected (D, C, Ph, Pw)")
    d, c, ph, pw = kernel.shape
    image_grid = (image_size[0] // ph, image_size[1] // pw)
    grid = tuple(pos_grid) if pos_grid is not None else image_grid
    weights = {"patch_embed.weight": kernel}
    if bias is not None:
        weights["patch_embed.bias"] = as_float32(bias, "the patch bias").reshape(-1)
    for key, value, what in (("cls_token", cls, "the class token"), ("dist_token", dist, "the distillation token")):
        if value is not None:
            weights[key] = as_float32(value, what).reshape(1, 1, -1)
    registers = 0
    if reg is not None:
        weights["reg_tokens"] = as_float32(reg, "the register tokens").reshape(1, -1, d)
        registers = weights["reg_tokens"].shape[1]
    if pos is not None:
        kind = "learned"
        weights["pos_embed"] = as_float32(pos, "the position table").reshape(1, -1, d)
    else:
        kind = "sincos2d" if sincos else "none"
    norms = {}
    for field, prefix, what, facts in (("pre_norm", "norm_pre", "pre-norm", pre_norm),
                                       ("patch_norm", "patch_embed.norm", "patch norm", patch_norm)):
        if facts is None:
            continue
        norm_kind, weight, norm_bias, eps = ("layer_norm", *facts) if len(facts) == 3 else facts
        norms[field] = {"kind": norm_kind, "eps": float(eps)}
        weights[f"{prefix}.weight"] = as_float32(weight, f"the {what} weight").reshape(-1)
        if norm_bias is not None:
            weights[f"{prefix}.bias"] = as_float32(norm_bias, f"the {what} bias").reshape(-1)
    doc = {
        "spec_version": SPEC_VERSION,
        "name": name,
        "image_size": [int(image_size[0]), int(image_size[1])],
        "in_channels": int(c),
        "patch_size": [int(ph), int(pw)],
        "embed_dim": int(d),
        "patch_bias": bias is not None,
        "prefix": {"class_token": cls is not None, "dist_token": dist is not None, "register_tokens": registers},
        "position_embedding": {
            "kind": kind,
            # Without prefix tokens coverage means nothing; one canonical value keeps specs comparable.
            "covers_prefix": bool(covers_prefix) and (cls is not None or dist is not None or registers > 0),
            "grid": [int(grid[0]), int(grid[1])] if kind == "learned" and grid != image_grid else None,
            "sincos_convention": sincos if kind == "sincos2d" else None,
        },
        "pre_norm": norms.get("pre_norm"),
        "patch_norm": norms.get("patch_norm"),
        "input": {"layout": layout, "preprocess": preprocess, "remainder": remainder},
        "resample": {"policy": resample},
        "dynamic_image_size": bool(dynamic_image_size),
    }
    spec = load_spec(doc)
    try:
        return spec, check_weights(weights, spec)
    except WeightsError as exc:
        raise WeightsError(f"the peer's tensors do not fit the spec they imply ({exc})") from None


def checked_preprocess(preprocess: Mapping | None, channels: int) -> dict | None:
    """A user-given preprocess mapping validated against the channel count (SpecError otherwise)."""
    if preprocess is None:
        return None
    doc = preprocess_doc(preprocess.get("scale", 1 / 255), preprocess["mean"], preprocess["std"])
    if len(doc["mean"]) != channels or len(doc["std"]) != channels:
        raise SpecError([("input.preprocess", f"mean and std need {channels} values each")])
    return doc
