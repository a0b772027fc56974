"""Verdicts: does one engine's z0 agree with another's, by the rule of the cell's profile and precision?

- exact: bit-identical (np.array_equal), or fail.
- fast: |a - b| <= bound element by element, the bound from floating-point error analysis
  (`vitstem.backends.numpy.bound.fast_error_bound`: 1x against the exact reference, 2x between two
  fast engines, each of which is within 1x of it).
- fp16, int8: |d| <= a fraction of max|z| (the float32 exact result) for every element, plus a minimum
  cosine similarity per token (the export's documented bounds: vitstem.spec.vocabulary's FP16_* and INT8_*).
Every comparison also reports max |d|, max |d| / bound and ULP-distance percentiles (float32 ULPs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..spec.vocabulary import (FAST_BOUND_BETWEEN_ENGINES, FP16_MIN_COSINE, FP16_RELATIVE, INT8_MIN_COSINE,
                               INT8_RELATIVE)

KINDS = ("exact", "fast", "fp16", "int8")
RELATIVE_BOUNDS = {"fp16": (FP16_RELATIVE, FP16_MIN_COSINE), "int8": (INT8_RELATIVE, INT8_MIN_COSINE)}


def _fraction(x: float) -> str:
    return str(x) if x >= 1e-2 else f"{x:.0e}".replace("e-0", "e-")  # 0.1, 4e-3


# The rule of each kind in words, for the reports (from the constants above).
CRITERIA = {
    "exact": "bit-identical (np.array_equal)",
    "fast": "|d| <= fast_error_bound per element (1x vs the exact reference, "
            f"{FAST_BOUND_BETWEEN_ENGINES:g}x between two fast engines)",
    **{kind: f"|d| <= {_fraction(relative)} max|z| and per-token cosine >= {cosine}, vs the exact float32 z"
       for kind, (relative, cosine) in RELATIVE_BOUNDS.items()},
}
# Exact means bit-identical. Where two float64 sums round to opposite sides of a float32 tie, that
# cannot hold for engines summing in different orders; set True to accept such certified ties.
EXACT_ALLOWS_TIES = False
PLOT_SAMPLES = 4096  # per comparison, kept for the error-distribution plots


@dataclass
class Comparison:
    """The verdict of one comparison and the numbers behind it (bound: at the binding element)."""

    kind: str
    passed: bool
    max_abs_diff: float
    bound: float
    max_ratio: float
    ulp_p50: float
    ulp_p99: float
    ulp_max: float
    cosine_min: float
    relative_rms: float
    note: str = ""
    mismatches: int = 0  # elements that differ at all
    ties: int = 0  # exact: mismatches that are float64 double-rounding near-ties (see `near_ties`)
    ratio_sample: np.ndarray = field(default=None, repr=False)  # |d| / bound, for plots
    ulp_sample: np.ndarray = field(default=None, repr=False)

    def summary(self) -> dict:
        """The JSON-ready numbers (samples left out)."""
        keys = ("kind", "passed", "max_abs_diff", "bound", "max_ratio", "ulp_p50", "ulp_p99", "ulp_max",
                "cosine_min", "relative_rms", "mismatches", "ties", "note")
        return {k: _plain(getattr(self, k)) for k in keys}


def _plain(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else str(value)  # JSON has no inf/nan
    return value


def ordered_bits(x: np.ndarray) -> np.ndarray:
    """float32 values as int64 keys whose differences count the float32 values between them."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)  # -0.0 and +0.0 both map to 0


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How many float32 steps apart a and b are, element by element (0 iff equal as numbers)."""
    return np.abs(ordered_bits(a) - ordered_bits(b))


def token_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each token row (last axis) of a and b, in float64; 1 where both are zero."""
    a, b = (np.asarray(v, np.float64).reshape(-1, np.shape(v)[-1]) for v in (a, b))
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = np.einsum("ij,ij->i", a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / (na * nb)
    return np.where((na == 0) & (nb == 0), 1.0, np.where((na == 0) | (nb == 0), 0.0, cos))


def _sample(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    flat = values.ravel()
    if flat.size > PLOT_SAMPLES:
        flat = flat[rng.choice(flat.size, PLOT_SAMPLES, replace=False)]
    return flat.astype(np.float64)


def _failed(kind: str, note: str) -> Comparison:
    nan = float("nan")
    return Comparison(kind, False, nan, nan, nan, nan, nan, nan, nan, nan, note,
                      np.zeros(0), np.zeros(0))


def near_ties(a32: np.ndarray, b32: np.ndarray, z64: np.ndarray, error64: np.ndarray) -> np.ndarray:
    """Where a and b are adjacent float32 values and the float64 z0 lies within `error64` of their
    midpoint: two float64 evaluations summing in different orders may then round to either side
    (double rounding), so "one rounding at the end" cannot be bit-identical there."""
    mid = (a32.astype(np.float64) + b32.astype(np.float64)) / 2
    return (ulp_distance(a32, b32) == 1) & (np.abs(z64 - mid) <= error64)


def compare(candidate, baseline, kind: str, bound=None, *, ties=None) -> Comparison:
    """Compare `candidate` with `baseline` (float32 z0 of the same shape) by the rule of `kind`.

    `bound` is the per-element bound for kind "fast" (broadcastable to the shape); the other
    kinds derive theirs from the baseline. `ties` = (float64 z0, its float64 error bound) lets an
    exact mismatch be diagnosed as a double-rounding near-tie; it still fails unless
    EXACT_ALLOWS_TIES.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    a = np.asarray(candidate)
    b = np.asarray(baseline)
    if a.shape != b.shape:
        return _failed(kind, f"shape {a.shape} differs from {b.shape}")
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    finite = np.isfinite(a32)
    if not finite.all():
        return _failed(kind, f"{int(a32.size - np.count_nonzero(finite))} non-finite values")
    d = np.abs(a32.astype(np.float64) - b32.astype(np.float64))
    ulps = ulp_distance(a32, b32)
    cosine = float(token_cosine(a32, b32).min()) if a32.size else 1.0
    norm_b = float(np.linalg.norm(b32.astype(np.float64)))
    if norm_b:
        rel_rms = float(np.linalg.norm(d) / norm_b)
    else:
        rel_rms = 0.0 if not d.any() else float("inf")
    note = ""
    tie_count = 0
    if kind == "exact":
        limit = np.zeros_like(d)
        passed = bool(np.array_equal(a32, b32))
        if not passed and ties is not None:
            tie = near_ties(a32, b32, *ties)
            mismatched = int(np.count_nonzero(d))
            tie_count = int(np.count_nonzero(tie & (d > 0)))
            note = (f"{mismatched} of {d.size} elements differ; {tie_count} of them are 1-ULP float64 "
                    f"double-rounding near-ties")
            passed = EXACT_ALLOWS_TIES and tie_count == mismatched
    elif kind == "fast":
        if bound is None:
            raise ValueError("kind 'fast' needs a per-element bound")
        limit = np.broadcast_to(np.asarray(bound, np.float64), d.shape)
        passed = bool(np.all(d <= limit))
    else:  # fp16, int8: relative to the output's scale, and every token pointing the same way
        relative, min_cosine = RELATIVE_BOUNDS[kind]
        limit = np.full(d.shape, relative * float(np.abs(b32).max(initial=0.0)))
        passed = bool(np.all(d <= limit)) and cosine >= min_cosine
        if cosine < min_cosine:
            note = f"token cosine {cosine:.6f} < {min_cosine}"
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(d == 0, 0.0, d / limit)  # inf where a zero bound is exceeded
    worst = int(np.argmax(ratio)) if ratio.size else 0
    if not passed and ratio.size and (not note or kind == "exact"):
        where = np.unravel_index(worst, d.shape)
        note = "; ".join(filter(None, [note, (
            f"element {tuple(int(i) for i in where)}: {float(a32[where])!r} vs {float(b32[where])!r} "
            f"(|d| = {float(d[where]):.3g}, bound {float(limit[where]):.3g})")]))
    rng = np.random.default_rng(0)
    return Comparison(
        kind=kind, passed=passed,
        max_abs_diff=float(d.max(initial=0.0)),
        bound=float(limit.ravel()[worst]) if ratio.size else 0.0,
        max_ratio=float(ratio.max(initial=0.0)),
        ulp_p50=float(np.percentile(ulps, 50)) if ulps.size else 0.0,
        ulp_p99=float(np.percentile(ulps, 99)) if ulps.size else 0.0,
        ulp_max=float(ulps.max(initial=0)),
        cosine_min=cosine, relative_rms=rel_rms, note=note, mismatches=int(np.count_nonzero(d)), ties=tie_count,
        ratio_sample=_sample(ratio, rng), ulp_sample=_sample(ulps, rng),
    )
