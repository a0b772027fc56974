"""The check every interop test uses (`support.reference.assert_agrees`): a peer's z0 against our three
backends, within the error bound.

A peer is itself a float32 ("fast") engine, so |peer - exact| <= bound and |peer - our fast| <= 2 bound,
where bound = fast_error_bound(spec, weights, images) (with the float32 resampling term when the
peer resamples its table in float32). The tests below show the check can fail.
"""

import numpy as np
import pytest

import vitstem
from support.seeded import tiny_case
from support.reference import assert_agrees


def _tiny():
    return tiny_case(weight_seed=3, image_seed=0)


def test_agreement_accepts_a_faithful_float32_engine():
    spec, weights, images = _tiny()
    peer = vitstem.forward(spec, weights, images, backend="torch")
    diffs = assert_agrees(spec, weights, images, peer)
    assert diffs["exact"] < 1e-5


def test_agreement_rejects_a_one_percent_error_in_one_element():
    spec, weights, images = _tiny()
    peer = vitstem.forward(spec, weights, images).copy()
    peer[1, 5, 3] *= 1.01
    with pytest.raises(AssertionError, match="peer vs exact"):
        assert_agrees(spec, weights, images, peer)


def test_agreement_rejects_swapped_prefix_tokens():
    spec, weights, images = _tiny()
    peer = vitstem.forward(spec, weights, images)[:, [1, 0, *range(2, spec.num_tokens())]]
    with pytest.raises(AssertionError):
        assert_agrees(spec, weights, images, peer)
