"""Assertions that hold a z0 to the NumPy reference by the conformance suite's own verdict rules."""

from __future__ import annotations

import numpy as np

import vitstem
from support.export_cases import run_ort
from vitstem.backends.numpy.bound import fast_error_bound
from vitstem.conformance.verdicts import Comparison, compare
from vitstem.spec import load_spec
from vitstem.spec.vocabulary import FAST_BOUND_BETWEEN_ENGINES, Precision, Profile

BACKENDS = ("numpy", "torch", "tensorflow")


def assert_matches_reference(z, spec, weights, images, profile: str = "fast", *, precision: str = "fp32",
                             resampled_in_float32: bool = False) -> Comparison:
    """Assert `z` (an engine's z0 for `images`) passes the verdict `vitstem conform` gives its cell against the
    reference's exact z0: exact bit-identical; fast within fast_error_bound (with the float32 resampling term
    when the engine resized the table in float32); fp16/int8 within their relative bounds and token cosine.
    Returns the Comparison (max |d|, max |d|/bound, ULPs, cosine) for further checks."""
    spec = load_spec(spec)
    profile, precision = Profile.parse(profile, "profile"), Precision.parse(precision, "precision")
    reference = vitstem.forward(spec, weights, images, profile="exact")
    z = np.asarray(z)
    assert z.shape == reference.shape, f"z0 shape {z.shape}, the reference's {reference.shape}"
    if precision is Precision.FP32:
        assert z.dtype == np.float32, f"an fp32 z0 is float32, got {z.dtype}"
    kind = profile.value if precision is Precision.FP32 else precision.value
    bound = None
    if kind == Profile.FAST:
        bound = fast_error_bound(spec, weights, images, resampled_in_float32=resampled_in_float32)
    result = compare(z, reference, kind, bound)
    assert result.passed, (f"{kind} verdict fails: {result.note or 'see the numbers'} (max |d| {result.max_abs_diff:.3g}, "
                           f"{result.max_ratio:.3g} x the bound, {result.mismatches} of {z.size} elements differ)")
    return result


def assert_agrees(spec, weights, images, peer_z0, *, resampled_in_float32: bool = False) -> dict[str, float]:
    """A peer (itself a float32 engine) is within the fast bound of the exact z0 and within twice the bound of
    every backend's fast z0, element by element; the max |difference| per backend."""
    peer = np.asarray(peer_z0, dtype=np.float64)
    exact = vitstem.forward(spec, weights, images, profile="exact")
    assert peer.shape == exact.shape, f"peer z0 {peer.shape} vs ours {exact.shape}"
    bound = fast_error_bound(spec, weights, images, resampled_in_float32=resampled_in_float32)
    worst = np.abs(peer - exact) / bound
    assert np.all(np.abs(peer - exact) <= bound), f"peer vs exact: {worst.max():.3g} x the bound at {np.argmax(worst)}"
    diffs = {"exact": float(np.abs(peer - exact).max())}
    for backend in BACKENDS:
        ours = vitstem.forward(spec, weights, images, backend=backend, profile="fast")
        excess = np.abs(peer - ours) - FAST_BOUND_BETWEEN_ENGINES * bound
        assert np.all(excess <= 0), f"peer vs {backend} fast exceeds twice the bound by {excess.max():.3g}"
        diffs[backend] = float(np.abs(peer - ours).max())
    return diffs


def assert_backends_and_onnx(spec, weights, x, resampled: bool) -> None:
    """Exact z0 bit-identical on every backend and in ONNX; fast ONNX within the bound."""
    from vitstem.export import build_onnx

    exact = vitstem.forward(spec, weights, x, profile="exact")
    for backend in ("torch", "tensorflow"):
        ours = vitstem.forward(spec, weights, x, backend=backend, profile="exact")
        assert np.array_equal(ours, exact), f"{backend} exact differs in {(ours != exact).sum()} elements"
    size = [tuple(x.shape[2:])] if spec.dynamic_image_size else "fixed"
    onnx_exact = run_ort(build_onnx(spec, weights, profile="exact", image_size=size), x)
    assert np.array_equal(onnx_exact, exact), f"ONNX exact differs in {(onnx_exact != exact).sum()} elements"
    onnx_fast = run_ort(build_onnx(spec, weights, image_size=size), x)
    bound = fast_error_bound(spec, weights, x, resampled_in_float32=resampled)
    assert np.all(np.abs(onnx_fast - exact) <= bound)
