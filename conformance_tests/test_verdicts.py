"""The verdict rules against hand-derived numbers: each must be able to fail, and fail for the right reason."""

import numpy as np
import pytest

from vitstem.backends.numpy import forward
from vitstem.backends.numpy.bound import fast_error_bound
from vitstem.conformance.verdicts import (FP16_RELATIVE, INT8_MIN_COSINE, INT8_RELATIVE, compare, near_ties,
                                          token_cosine, ulp_distance)
from vitstem.spec import init_weights, load_spec

F32 = np.float32


def _next(x, k=1):
    """k float32 steps up from x."""
    x = F32(x)
    for _ in range(k):
        x = np.nextafter(x, F32(np.inf))
    return x


def test_ulp_distance_counts_float32_steps():
    a = np.array([1.0, 0.0, -1.0, 1.0, -np.finfo(F32).smallest_subnormal, 3.5], F32)
    b = np.array([_next(1.0), -0.0, _next(-1.0, 3), 2.0, np.finfo(F32).smallest_subnormal, 3.5], F32)
    # 1.0 -> 2.0 spans one binade: 2^23 steps; -min_subnormal -> +min_subnormal: 2 steps through zero.
    assert ulp_distance(a, b).tolist() == [1, 0, 3, 2**23, 2, 0]


@pytest.fixture(scope="module")
def tiny():
    spec = load_spec("vitstem_tiny_test")
    weights = init_weights(spec, seed=3)
    images = np.random.default_rng(0).standard_normal((2, 3, 12, 16)).astype(F32)
    exact = forward(spec, weights, images, profile="exact")
    return spec, weights, images, exact, fast_error_bound(spec, weights, images)


def test_exact_passes_identical_and_fails_one_ulp(tiny):
    *_, exact, _ = tiny
    assert compare(exact.copy(), exact, "exact").passed
    off = exact.copy()
    off[1, 5, 3] = _next(off[1, 5, 3])
    verdict = compare(off, exact, "exact")
    assert not verdict.passed
    assert verdict.ulp_max == 1 and verdict.max_abs_diff == float(np.spacing(np.abs(exact[1, 5, 3])))
    assert "(1, 5, 3)" in verdict.note


def test_fast_fails_when_one_element_exceeds_its_bound(tiny):
    *_, exact, bound = tiny
    fast = forward(*tiny[:3], profile="fast")
    assert compare(fast, exact, "fast", bound).passed
    where = (0, 9, 2)
    inside, outside = fast.copy(), fast.copy()
    inside[where] = exact[where] + F32(0.5 * bound[where])
    outside[where] = exact[where] + F32(1.5 * bound[where])  # 1.5x: float32 rounding cannot bring it back
    ok, bad = compare(inside, exact, "fast", bound), compare(outside, exact, "fast", bound)
    assert ok.passed and ok.max_ratio <= 1
    assert not bad.passed and "(0, 9, 2)" in bad.note
    assert bad.max_ratio == pytest.approx(1.5, rel=1e-3)
    assert bad.bound == pytest.approx(bound[where])


def test_fp16_bound_is_relative_to_the_output_scale(tiny):
    *_, exact, _ = tiny
    scale = float(np.abs(exact).max())
    ok = exact * F32(1 + FP16_RELATIVE / 4)  # within FP16_RELATIVE / 4 |z| everywhere, cosine 1
    bad = exact.copy()
    bad[0, 0, 0] += F32(2 * FP16_RELATIVE * scale)
    assert compare(ok, exact, "fp16").passed
    verdict = compare(bad, exact, "fp16")
    assert not verdict.passed and verdict.max_ratio == pytest.approx(2, rel=1e-3)


def test_int8_judges_the_scaled_error_and_each_token_cosine(tiny):
    *_, exact, _ = tiny
    scale = float(np.abs(exact).max())
    ok = exact * F32(1 - INT8_RELATIVE / 2)  # |d| = 0.05 |z| everywhere, cosine 1
    verdict = compare(ok, exact, "int8")
    assert verdict.passed and verdict.max_ratio == pytest.approx(0.5, rel=1e-3)
    bad = exact.copy()
    bad[1, 7, 0] += F32(1.2 * INT8_RELATIVE * scale)
    verdict = compare(bad, exact, "int8")
    assert not verdict.passed and verdict.max_ratio == pytest.approx(1.2, rel=1e-3) and "(1, 7, 0)" in verdict.note
    # One token reversed: every element within the bound (a prefix token is small), but its cosine is -1.
    flipped = exact.copy()
    flipped[0, 0] *= -1
    assert np.abs(flipped - exact).max() <= INT8_RELATIVE * scale
    verdict = compare(flipped, exact, "int8")
    assert not verdict.passed and verdict.cosine_min == pytest.approx(-1.0) and verdict.cosine_min < INT8_MIN_COSINE


def test_token_cosine_by_hand():
    a = np.array([[[1.0, 0.0], [3.0, 4.0], [0.0, 0.0], [1.0, 1.0]]])
    b = np.array([[[0.0, 2.0], [6.0, 8.0], [0.0, 0.0], [-1.0, 0.0]]])
    assert token_cosine(a, b) == pytest.approx([0.0, 1.0, 1.0, -0.5**0.5])


def test_shape_mismatch_and_non_finite_fail(tiny):
    *_, exact, bound = tiny
    assert "shape" in compare(exact[:, :-1], exact, "fast", bound[:, :-1]).note
    nan = exact.copy()
    nan[0, 0, 0] = np.nan
    verdict = compare(nan, exact, "exact")
    assert not verdict.passed and "non-finite" in verdict.note


def test_near_ties_tell_double_rounding_from_real_mismatches():
    lo = F32(0.1)
    hi = _next(lo)
    mid = (float(lo) + float(hi)) / 2
    a = np.array([lo, lo, lo], F32)
    b = np.array([hi, hi, _next(lo, 2)], F32)
    z64 = np.array([mid + 1e-17, mid + 1e-12, mid])
    # Only the first is within the float64 error (1e-16) of the midpoint of two adjacent floats.
    assert near_ties(a, b, z64, np.full(3, 1e-16)).tolist() == [True, False, False]
    verdict = compare(a.reshape(1, 1, 3), b.reshape(1, 1, 3), "exact", ties=(z64.reshape(1, 1, 3), np.full((1, 1, 3), 1e-16)))
    assert not verdict.passed and verdict.ties == 1 and verdict.note.startswith("3 of 3 elements differ; 1 of them")
