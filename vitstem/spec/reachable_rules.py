"""Spec rules for what later code would refuse: a spec that validates must also run.

Each rule takes the normalised document (as rules.semantic_problems does) and returns
(field path, reason) pairs. They cover what the sin-cos table, the resampler and the float32
preprocessing would otherwise reject (or turn into inf) at the first forward or export.
"""

from __future__ import annotations

F32_TINY, F32_MAX = 1.1754943508222875e-38, 3.4028234663852886e38  # smallest normal, largest finite
CUBIC_A_RANGE = (-1.0, 0.0)  # the Keys kernels peers use (-0.5, -0.75); outside it rows can sum to 0


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def sincos_rule(d: dict) -> list[tuple[str, str]]:
    pe = d["position_embedding"]
    if pe["kind"] == "sincos2d" and pe.get("sincos_convention") == "big_vision" and is_number(d["embed_dim"]) \
            and d["embed_dim"] < 8:
        return [("embed_dim", f"{d['embed_dim']} is below 8, which the big_vision sin-cos convention needs "
                              "(it divides by embed_dim // 4 - 1)")]
    return []


def cubic_rule(d: dict) -> list[tuple[str, str]]:
    rs = d["resample"]
    a = rs.get("cubic_coeff_a")
    if rs["policy"] != "custom" or rs.get("mode") != "bicubic" or not is_number(a):
        return []
    lo, hi = CUBIC_A_RANGE
    if not lo <= a <= hi:
        return [("resample.cubic_coeff_a", f"{a!r} is outside [{lo}, {hi}]: such cubic kernels can give an output "
                                           "with zero total weight at some sizes")]
    return []


def preprocess_range_rule(d: dict) -> list[tuple[str, str]]:
    """uint8 pixels 0..255 must stay finite in float32 through (p * scale - mean) / std."""
    pre = d["input"]["preprocess"]
    if pre is None or not is_number(pre["scale"]):
        return []
    problems = []
    if not F32_TINY <= pre["scale"] <= F32_MAX:
        return []  # reported by rules._float_range_rule
    if abs(255 * pre["scale"]) > F32_MAX:
        problems.append(("input.preprocess.scale", f"{pre['scale']!r} * 255 overflows float32"))
        return problems
    for i, (m, s) in enumerate(zip(pre["mean"], pre["std"])):
        if not (is_number(m) and is_number(s)) or not F32_TINY <= s <= F32_MAX or abs(m) > F32_MAX:
            continue  # reported by rules._float_range_rule
        largest = max(abs(0 - m), abs(255 * pre["scale"] - m)) / s
        if largest > F32_MAX:
            problems.append((f"input.preprocess.std[{i}]", f"{s!r}: pixels 0..255 preprocess to {largest:.3g}, "
                                                           "beyond float32's range"))
    return problems


RULES = (sincos_rule, cubic_rule, preprocess_range_rule)
