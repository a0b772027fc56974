"""Values that become non-finite only after a cast or through the spec, and specs that validate but
would fail later (issue 12): each is refused with a clear error, never inf/NaN z0 or a ValueError."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fuzz import fuzz

import vitstem
from vitstem.spec import load_spec
from vitstem.spec.resampling import resample_matrix

SPEC = load_spec("vitstem_tiny_test")  # no preprocessing: float images in NCHW
F32_MAX = float(np.finfo(np.float32).max)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("values")
    w = vitstem.init_weights(SPEC)
    vitstem.export_onnx(SPEC, w, d / "fp32.onnx")
    vitstem.export_onnx(SPEC, w, d / "fp16io.onnx", precision="fp16", io_dtype="float16")
    vitstem.export_onnx(SPEC, w, d / "fp16.onnx", precision="fp16")
    return d


def _images(value, dtype):
    x = np.zeros(SPEC.input_shape(1), dtype)
    x[0, 1, 2, 3] = value
    return x


@pytest.mark.parametrize("model, value, dtype, words", [
    ("fp32.onnx", 1e39, np.float64, "beyond float32's range"),
    ("fp32.onnx", -3.5e38, np.float64, "beyond float32's range"),
    ("fp16io.onnx", 7e4, np.float32, "beyond float16's range"),
    ("fp16io.onnx", 1e300, np.float64, "beyond float16's range"),
    ("fp16.onnx", 7e4, np.float32, "beyond float16's range"),
])
def test_values_that_overflow_after_a_cast_are_refused(models, model, value, dtype, words):
    from vitstem.runtime import load

    stem = load(models / model)
    with pytest.raises(vitstem.InputError, match=words):
        stem(_images(value, dtype))
    finite = stem(_images(value / 1e6 if abs(value) < 1e10 else 1.0, dtype))
    assert np.isfinite(finite).all()


def test_finite_images_that_overflow_inside_are_refused(models):
    """6e4 fits float16, but a patch's sum of 48 such pixels does not: z0 would be inf."""
    from vitstem.runtime import load

    with pytest.raises(vitstem.InputError, match="non-finite values although the images are finite"):
        load(models / "fp16.onnx")(np.full(SPEC.input_shape(1), 6e4, np.float32))


def _doc(**changes):
    doc = {"spec_version": 1, "image_size": 8, "patch_size": 4, "embed_dim": 8, "in_channels": 3}
    doc.update(changes)
    return doc


PRE = {"scale": 1 / 255, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


@pytest.mark.parametrize("doc, path", [
    (_doc(input={"layout": "NCHW", "preprocess": {**PRE, "scale": 1e38}}), "input.preprocess.scale"),
    (_doc(input={"layout": "NCHW", "preprocess": {**PRE, "scale": 1e36, "std": [0.5, 1e-3, 0.5]}}),
     "input.preprocess.std[1]"),
    (_doc(input={"layout": "NCHW", "preprocess": {**PRE, "mean": [3e38, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}),
     "input.preprocess.std[0]"),
    (_doc(embed_dim=4, prefix={"class_token": False}, position_embedding={
        "kind": "sincos2d", "sincos_convention": "big_vision", "covers_prefix": False}), "embed_dim"),
    (_doc(resample={"policy": "custom", "mode": "bicubic", "cubic_coeff_a": 4.0, "antialias": False,
                    "coordinates": "half_pixel", "exclude_outside": True}), "resample.cubic_coeff_a"),
    (_doc(resample={"policy": "custom", "mode": "bicubic", "cubic_coeff_a": -8.0, "antialias": True,
                    "coordinates": "half_pixel", "exclude_outside": False}), "resample.cubic_coeff_a"),
])
def test_validation_catches_what_forward_would_refuse(doc, path):
    with pytest.raises(vitstem.SpecError, match=path.replace("[", r"\[").replace("]", r"\]")):
        load_spec(doc)


def test_the_refused_cubic_kernels_do_fail_somewhere():
    """The range rule is not arbitrary: a = 4 (K(0.5) = 0) leaves a row with zero weight."""
    with pytest.raises(ValueError, match="zero total weight"):
        resample_matrix(2, 1, mode="bicubic", cubic_coeff_a=4.0, antialias=False, coordinates="half_pixel",
                        exclude_outside=True)


@pytest.mark.slow
@fuzz(40)
@given(a=st.floats(-1.0, 0.0), n_in=st.integers(1, 24), n_out=st.integers(1, 24), antialias=st.booleans(),
       exclude=st.booleans(), align=st.booleans())
def test_every_accepted_cubic_kernel_resamples_at_every_size(a, n_in, n_out, antialias, exclude, align):
    coordinates = "align_corners" if align and not antialias else "half_pixel"
    m = resample_matrix(n_in, n_out, mode="bicubic", cubic_coeff_a=a, antialias=antialias, coordinates=coordinates,
                        exclude_outside=exclude)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=1e-12)


@fuzz(25)
@given(scale=st.floats(1e-6, 1e40), std=st.floats(1e-30, 10.0), mean=st.floats(-1e39, 1e39))
def test_a_preprocessing_that_validates_gives_finite_z0_on_uint8(scale, std, mean):
    doc = _doc(input={"layout": "NCHW", "preprocess": {"scale": scale, "mean": [mean] * 3, "std": [std] * 3}})
    try:
        spec = load_spec(doc)
    except vitstem.SpecError:
        return
    frames = np.array([0, 255], np.uint8).repeat(3 * 64 // 2).reshape(1, 3, 8, 8)
    weights = {k: np.zeros_like(v) for k, v in vitstem.init_weights(spec).items()}
    from vitstem.backends.numpy.stem import preprocess, to_nchw

    x = preprocess(spec, to_nchw(spec, frames), np.float32)
    assert np.isfinite(x).all()
    assert np.isfinite(vitstem.forward(spec, weights, frames)).all()
