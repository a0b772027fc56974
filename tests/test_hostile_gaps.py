"""Hostile input, the gaps left after issue 12's second round: casts that overflow (one InputError, no
NumPy warning) and the Keras layer's NumPy inputs (the one dtype rule)."""

import warnings

import numpy as np
import pytest

import vitstem
from vitstem.spec import load_spec
from vitstem.spec.inputs import faithful_array

SPEC = load_spec("vitstem_tiny_test")  # NCHW normalised floats, no norms
NORMED = load_spec({"spec_version": 1, "image_size": 8, "patch_size": 4, "embed_dim": 8,
                    "input": {"layout": "NCHW", "preprocess": {"mean": [0.5] * 3, "std": [0.25] * 3}},
                    "pre_norm": {}, "patch_norm": {"kind": "layer_norm"}})


# -- casts that overflow: the InputError alone, no NumPy RuntimeWarning -----------------------------
def _quietly(call):
    """(the InputError `call` raised or None, the RuntimeWarnings it emitted, its result or None)."""
    error = result = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except vitstem.InputError as exc:
            error = exc
    return error, [w for w in caught if issubclass(w.category, RuntimeWarning)], result


@pytest.mark.parametrize("spec", [SPEC, NORMED], ids=["plain", "preprocess+norms"])
@pytest.mark.parametrize("value", [1e300, -4e38])
def test_a_float64_pixel_beyond_float32_is_one_input_error(spec, value):
    """fast casts the batch to float32: refused at the cast, naming the range, before anything else sees inf."""
    x = np.full(spec.input_shape(1), 0.5)
    x[0, 1, 2, 3] = value
    error, warned, _ = _quietly(lambda: vitstem.forward(spec, vitstem.init_weights(spec), x))
    assert warned == [] and "images have values beyond float32's range" in str(error)
    assert f"max |x| = {abs(value):.6g}" in str(error)


@pytest.mark.parametrize("value, overflows", [(1e300, True), (-4e38, False)])
def test_exact_rounds_z0_to_float32_without_warnings(value, overflows):
    """exact computes in float64 and rounds z0 once: 1e300 x a ~0.1 kernel is past float32 there (refused by
    the z0 check), -4e38 x ~0.1 is not (returned, as torch's exact computes it)."""
    x = np.full(SPEC.input_shape(1), 0.5)
    x[0, 1, 2, 3] = value
    weights = vitstem.init_weights(SPEC)
    error, warned, z = _quietly(lambda: vitstem.forward(SPEC, weights, x, profile="exact"))
    assert warned == []
    if overflows:
        assert "non-finite values although the images are finite: they overflow float32" in str(error)
    else:
        np.testing.assert_array_equal(z, vitstem.forward(SPEC, weights, x, profile="exact", backend="torch"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("casts")
    w = vitstem.init_weights(SPEC)
    vitstem.export_onnx(SPEC, w, d / "fp32.onnx")
    vitstem.export_onnx(SPEC, w, d / "exact.onnx", profile="exact")
    vitstem.export_onnx(SPEC, w, d / "fp16io.onnx", precision="fp16", io_dtype="float16")
    return d


@pytest.mark.parametrize("model, value, dtype, words", [
    ("fp32.onnx", 1e39, np.float64, "beyond float32's range"),
    ("exact.onnx", -1e300, np.float64, "beyond float32's range"),
    ("fp16io.onnx", 1e300, np.float64, "beyond float16's range"),
    ("fp16io.onnx", -7e4, np.float32, "beyond float16's range"),
])
def test_the_runtime_casts_without_warnings(models, model, value, dtype, words):
    from vitstem.runtime import load

    x = np.zeros(SPEC.input_shape(1), dtype)
    x[0, 0, 0, 0] = value
    error, warned, _ = _quietly(lambda: load(models / model)(x))
    assert warned == [] and error is not None and words in str(error)


def test_a_long_double_beyond_float64_is_one_input_error():
    x = np.zeros(SPEC.input_shape(1), np.longdouble)
    x.flat[5] = np.longdouble(2) ** 1100
    for call in (lambda: faithful_array(x), lambda: vitstem.forward(SPEC, vitstem.init_weights(SPEC), x)):
        error, warned, _ = _quietly(call)
        assert warned == [] and "1 values float64 cannot hold exactly" in str(error)


# -- the Keras layer called on NumPy arrays: the one dtype rule ---------------------------------------
@pytest.mark.parametrize("profile", ["fast", "exact"])
def test_the_keras_layer_takes_numpy_arrays_by_the_one_dtype_rule(profile):
    from vitstem.backends.tensorflow import VitStemLayer

    layer = VitStemLayer(SPEC, profile)
    x = np.random.default_rng(3).standard_normal(SPEC.input_shape(2))
    native = layer(x).numpy()
    if profile == "exact":  # the reference's bits; fast is held to a bound only
        np.testing.assert_array_equal(native, vitstem.forward(SPEC, layer.canonical_weights(), x, profile=profile))
    np.testing.assert_array_equal(layer(x.astype(np.longdouble)).numpy(), native)  # float64 holds every value
    np.testing.assert_array_equal(layer(images=x.astype(">f8")).numpy(), native)
    np.testing.assert_array_equal(layer(np.ma.masked_array(x, mask=False)).numpy(), native)
    lossy = x.astype(np.longdouble)
    lossy.flat[7] = 1 + np.longdouble(2) ** -60  # a long double's 64-bit significand holds it, float64's not
    with pytest.raises(vitstem.InputError, match=r"^images: dtype float\d+ \(long double\) with 1 values float64"):
        layer(lossy)
    with pytest.raises(vitstem.InputError, match=r"^images: a masked array with 1 masked values"):
        layer(np.ma.masked_array(x, mask=np.arange(x.size).reshape(x.shape) == 4))

