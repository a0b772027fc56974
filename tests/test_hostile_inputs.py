"""Hostile image batches: every engine (NumPy, PyTorch, TensorFlow, the ONNX Runtime edge stem)
raises the same InputError naming what is wrong; non-contiguous arrays simply work, bit for bit."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.engine_runners import ENGINES, SPECS, runners, valid_batch  # noqa: F401  (runners is a fixture)
from support.fuzz import fuzz

import vitstem


def _channel_axis(spec):
    return 1 if spec.input.layout == "NCHW" else 3


def _spatial_axes(spec):
    return (2, 3) if spec.input.layout == "NCHW" else (1, 2)


def _mutations(spec, x):
    """name -> (hostile batch, words the InputError must contain)."""
    c, (ah, aw) = _channel_axis(spec), _spatial_axes(spec)
    ph, pw = spec.patch_size
    other_layout = x.transpose(0, 2, 3, 1) if spec.input.layout == "NCHW" else x.transpose(0, 3, 1, 2)
    floats = spec.input.preprocess is None
    nan = x.astype(np.float32)
    nan.flat[nan.size // 2] = np.nan
    inf = x.astype(np.float32)
    inf.flat[0] = -np.inf
    cases = {
        "rank 3": (x[0], "expected rank 4"),
        "rank 5": (x[None], "expected rank 4"),
        "rank 0": (np.float32(1.0), "expected rank 4"),
        "empty batch": (x[:0], "the batch is empty"),
        "channels": (np.concatenate([x, x.take([0], axis=c)], axis=c), "channels at the"),
        "one channel": (x.take([0], axis=c), "channels at the"),
        "wrong layout": (other_layout, "(is the layout right?)"),
        "height not divisible": (x.take(range(x.shape[ah] - 1), axis=ah), "not a positive multiple of the patch size"),
        "width not divisible": (np.concatenate([x, x.take([0], axis=aw)], axis=aw) if pw > 1 else
                                x.take(range(x.shape[aw] - 1), axis=aw) if x.shape[aw] > 1 else x[:0],
                                "not a positive multiple of the patch size" if pw > 1 or x.shape[aw] > 1
                                else "the batch is empty"),
        "zero height": (x.take([], axis=ah), "not a positive multiple of the patch size"),
        "NaN": (nan, "non-finite values (NaN or Inf)"),
        "-Inf": (inf, "non-finite values (NaN or Inf)"),
        "bool": (x > 0, "dtype bool"),
        "complex": (x.astype(np.complex64), "dtype complex64"),
        "object": (x.astype(object), "dtype object"),
        "strings": (x.astype(str), "dtype <U"),
        "ragged": ([x[0], x[0, :1]], "cannot be read as an array"),
        "int32": (x.astype(np.int32), "dtype int32"),
    }
    if floats:
        cases["uint8 without preprocess"] = (x.astype(np.uint8), "takes normalised float images (no preprocess)")
    if not spec.dynamic_image_size:
        bigger = np.concatenate([x, x.take(range(ph), axis=ah)], axis=ah)
        cases["other size, not dynamic"] = (bigger, "differs from the spec's")
    return cases


MUTATIONS = {key: sorted(_mutations(spec, valid_batch(spec, np.random.default_rng(0)))) for key, spec in SPECS.items()}
SPEC_AND_MUTATION = st.sampled_from(sorted(SPECS)).flatmap(lambda key: st.tuples(st.just(key), st.sampled_from(MUTATIONS[key])))


@fuzz(30)
@given(case=SPEC_AND_MUTATION, seed=st.integers(0, 2**16))
def test_every_engine_raises_the_same_input_error(runners, case, seed):
    key, mutation = case
    spec = SPECS[key]
    x, words = _mutations(spec, valid_batch(spec, np.random.default_rng(seed)))[mutation]
    messages = {}
    for engine in ENGINES:
        with pytest.raises(vitstem.InputError) as info:
            runners[engine](key, x)
        messages[engine] = str(info.value)
    assert words in messages["numpy"], (mutation, messages["numpy"])
    assert len(set(messages.values())) == 1, messages


def _views(x):
    """Non-contiguous arrays with the same values as `x`."""
    big = np.zeros(tuple(2 * s for s in x.shape), x.dtype)
    big[::2, ::2, ::2, ::2] = x
    flipped = np.ascontiguousarray(x[:, :, ::-1, ::-1])[:, :, ::-1, ::-1]
    other = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return {"strided": big[::2, ::2, ::2, ::2], "negative strides": flipped, "transposed": other,
            "fortran": np.asfortranarray(x)}


@pytest.mark.slow
@fuzz(6)
@given(key=st.sampled_from(sorted(SPECS)), seed=st.integers(0, 2**16), batch=st.integers(1, 3))
def test_non_contiguous_batches_give_the_contiguous_z0_bit_for_bit(runners, key, seed, batch):
    spec = SPECS[key]
    x = valid_batch(spec, np.random.default_rng(seed), batch)
    for engine in ENGINES:
        expected = runners[engine](key, x)
        assert expected.shape == (batch, spec.num_tokens(), spec.embed_dim)
        for name, view in _views(x).items():
            assert not view.flags.c_contiguous and np.array_equal(view, x)
            np.testing.assert_array_equal(runners[engine](key, view), expected, err_msg=f"{engine} {name}")


def test_other_float_dtypes_are_accepted_as_their_values(runners):
    """float16 and float64 batches are read as values; float16 holds these pixels exactly."""
    spec = SPECS["nchw_dynamic"]
    x = np.round(valid_batch(spec, np.random.default_rng(1)) * 8) / 8
    for engine in ENGINES:
        expected = runners[engine]("nchw_dynamic", x.astype(np.float32))
        for dtype in (np.float16, np.float64):
            np.testing.assert_array_equal(runners[engine]("nchw_dynamic", x.astype(dtype)), expected,
                                          err_msg=f"{engine} {dtype}")


def test_dynamic_sizes_not_divisible_name_the_patch():
    spec = SPECS["nchw_dynamic"]
    with pytest.raises(vitstem.InputError, match=r"image size 13x16 is not a positive multiple of the patch size 4x2"):
        vitstem.forward(spec, vitstem.init_weights(spec), np.zeros((1, 3, 13, 16), np.float32))
