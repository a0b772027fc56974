"""Canonical weights: names, shapes and layouts (a public contract), seeded init, and checks.

| name              | shape           | layout / meaning                                  |
|-------------------|-----------------|---------------------------------------------------|
| patch_embed.weight| (D, C, Ph, Pw)  | OIHW conv kernel; E = weight.reshape(D, K).T      |
| patch_embed.bias  | (D,)            | only with patch_bias                              |
| patch_embed.norm.weight | (D,)      | only with patch_norm                              |
| patch_embed.norm.bias   | (D,)      | only with patch_norm of kind layer_norm           |
| cls_token         | (1, 1, D)       | only with a class token                           |
| dist_token        | (1, 1, D)       | only with a distillation token                    |
| reg_tokens        | (1, R, D)       | only with R > 0 register tokens                   |
| pos_embed         | (1, T, D)       | learned tables only; T = prefix rows + gh*gw      |
| norm_pre.weight   | (D,)            | only with pre_norm                                |
| norm_pre.bias     | (D,)            | only with pre_norm of kind layer_norm             |
"""

from __future__ import annotations

import zlib
from typing import Mapping

import numpy as np

from ..errors import InputError, WeightsError
from .inputs import faithful_array
from .loading import load_spec
from .model import Norm, Spec

DTYPE = np.float32
NORM_GAINS = ("patch_embed.norm.weight", "norm_pre.weight")  # initialised around 1, as the peers do
MAX_PROBLEMS = 20  # listed in one WeightsError; the rest are counted


def weight_shapes(spec: "Spec | str") -> dict[str, tuple[int, ...]]:
    """Name -> shape of every weight the spec (a Spec, preset name or spec file) needs, in canonical order."""
    spec = load_spec(spec)
    d = spec.embed_dim
    shapes: dict[str, tuple[int, ...]] = {"patch_embed.weight": (d, spec.in_channels, *spec.patch_size)}
    if spec.patch_bias:
        shapes["patch_embed.bias"] = (d,)
    shapes.update(norm_shapes("patch_embed.norm", spec.patch_norm, d))
    if spec.prefix.class_token:
        shapes["cls_token"] = (1, 1, d)
    if spec.prefix.dist_token:
        shapes["dist_token"] = (1, 1, d)
    if spec.prefix.register_tokens:
        shapes["reg_tokens"] = (1, spec.prefix.register_tokens, d)
    if spec.position_embedding.kind == "learned":
        gh, gw = spec.pos_grid
        shapes["pos_embed"] = (1, spec.pos_prefix_rows + gh * gw, d)
    shapes.update(norm_shapes("norm_pre", spec.pre_norm, d))
    return shapes


def norm_shapes(prefix: str, norm: Norm | None, d: int) -> dict[str, tuple[int, ...]]:
    """The weights of one norm: PREFIX.weight, and PREFIX.bias for layer_norm; none without the norm."""
    if norm is None:
        return {}
    return {f"{prefix}.weight": (d,), **({f"{prefix}.bias": (d,)} if norm.kind == "layer_norm" else {})}


def _stream(seed: int, name: str, count: int) -> np.ndarray:
    """`count` float64 values uniform in [-1, 1) from PCG64's raw output.

    Raw bit-generator output is fixed by the algorithm (unlike Generator.normal, whose stream
    NumPy may change between releases), so the bytes are the same on every machine.
    """
    bits = np.random.PCG64(np.random.SeedSequence([seed, zlib.crc32(name.encode())])).random_raw(count)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1.0


def init_weights(spec: "Spec | str", seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic, framework-free weights for `spec` (a Spec, preset name or spec file): uniform with
    std 1/sqrt(K) for the kernel, 0.02 elsewhere."""
    spec = load_spec(spec)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    weights = {}
    for name, shape in weight_shapes(spec).items():
        count = int(np.prod(shape))
        std = 1.0 / np.sqrt(spec.patch_dim) if name == "patch_embed.weight" else 0.02
        values = _stream(seed, name, count) * (std * np.sqrt(3.0))  # uniform[-a, a] has std a/sqrt(3)
        if name in NORM_GAINS:
            values += 1.0
        weights[name] = values.reshape(shape).astype(DTYPE)
    return weights


def weight_problems(weights: Mapping[str, object], spec: Spec) -> list[str]:
    """Every mismatch between `weights` and what `spec` needs (names, shapes, dtypes, finiteness)."""
    if not isinstance(weights, Mapping):
        return [f"weights must be a mapping of name -> array, got {type(weights).__name__}"]
    expected = weight_shapes(spec)
    problems = [f"missing weight {n!r} with shape {s}" for n, s in expected.items() if n not in weights]
    problems += [f"unexpected weight {n!r} (the spec does not use it)" for n in weights if n not in expected]
    for name, shape in expected.items():
        if name not in weights:
            continue
        value = weights[name]
        if not isinstance(value, np.ndarray):
            problems.append(f"weight {name!r} is a {type(value).__name__}, not a numpy array")
            continue
        if value.dtype != DTYPE:
            problems.append(f"weight {name!r} has dtype {value.dtype}, expected float32")
        if tuple(value.shape) != shape:
            problems.append(f"weight {name!r} has shape {tuple(value.shape)}, expected {shape}")
        elif value.dtype.kind == "f" and not np.isfinite(value).all():
            bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
            problems.append(f"weight {name!r} has {bad} non-finite values (NaN or Inf)")
    return problems


def _native(weights: Mapping[str, object], problems: list[str]) -> Mapping[str, object]:
    """The arrays of `weights` by the one dtype rule of spec.inputs.faithful_array: another byte order
    becomes native (same values); a masked array with masked entries is a problem."""
    if not isinstance(weights, Mapping):
        return weights
    out = dict(weights)
    for name, value in weights.items():
        if isinstance(value, np.ndarray) and (isinstance(value, np.ma.MaskedArray) or not value.dtype.isnative):
            try:
                out[name] = faithful_array(value, f"weight {name!r}")
            except InputError as exc:
                problems.append(str(exc))
                out[name] = np.ma.getdata(value)  # so the other checks see plain values
    return out


def check_weights(weights: Mapping[str, object], spec: Spec) -> dict[str, np.ndarray]:
    """`weights` as a plain dict after checking it against `spec`; WeightsError lists every problem.
    Arrays in another byte order come back native (the same values)."""
    problems: list[str] = []
    weights = _native(weights, problems)
    problems += weight_problems(weights, spec)
    if len(problems) > MAX_PROBLEMS:  # a hostile file may name a million tensors: keep the line readable
        problems = problems[:MAX_PROBLEMS] + [f"and {len(problems) - MAX_PROBLEMS} more problems"]
    if problems:
        raise WeightsError("; ".join(problems))
    return dict(weights)
