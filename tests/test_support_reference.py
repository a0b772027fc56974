"""assert_matches_reference gives the conformance suite's verdicts: it passes the engines' own z0 and fails
a one-ULP change in exact, an element just past the fast bound, and fp16 output off by more than its bound."""

import numpy as np
import pytest

import vitstem
from support.seeded import tiny_case
from support.reference import assert_matches_reference
from vitstem.backends.numpy.bound import fast_error_bound


def _tiny():
    return tiny_case(weight_seed=5, image_seed=2)


def test_exact_passes_the_reference_bits_and_fails_one_ulp():
    spec, weights, images = _tiny()
    exact = vitstem.forward(spec, weights, images, backend="torch", profile="exact")
    assert assert_matches_reference(exact, spec, weights, images, "exact").max_abs_diff == 0
    off = exact.copy()
    off[0, 3, 1] = np.nextafter(off[0, 3, 1], np.float32(np.inf))
    with pytest.raises(AssertionError, match=r"exact verdict fails: element \(0, 3, 1\).*1 of 448 elements differ"):
        assert_matches_reference(off, spec, weights, images, "exact")


def test_fast_fails_just_past_the_bound():
    spec, weights, images = _tiny()
    fast = vitstem.forward(spec, weights, images, profile="fast")
    assert assert_matches_reference(fast, spec, weights, images).max_ratio <= 1
    exact = vitstem.forward(spec, weights, images, profile="exact").astype(np.float64)
    bound = fast_error_bound(spec, weights, images)
    off = fast.copy()
    off[1, 0, 2] = np.float32(exact[1, 0, 2] + 1.5 * bound[1, 0, 2])
    with pytest.raises(AssertionError, match="fast verdict fails"):
        assert_matches_reference(off, spec, weights, images)


def test_fp16_bound_is_relative_to_the_largest_value():
    spec, weights, images = _tiny()
    exact = vitstem.forward(spec, weights, images, profile="exact")
    scale = float(np.abs(exact).max())
    near = exact * np.float32(1 + 1e-3)  # |d| <= 1e-3 max|z|, inside 4e-3 max|z|; every token keeps its direction
    assert_matches_reference(near, spec, weights, images, precision="fp16")
    far = exact.copy()
    far[0, 0, 0] += np.float32(5e-3 * scale)
    with pytest.raises(AssertionError, match="fp16 verdict fails"):
        assert_matches_reference(far, spec, weights, images, precision="fp16")
