"""One line per error on the command line, whatever happens (issue 12, round 2): a path holding a newline
was printed raw by every reader (weights, .npy, model files), and NumPy's overflow RuntimeWarnings were
printed before the error line when values overflowed float32."""

import contextlib
import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fuzz import fuzz

import vitstem
from vitstem.cli import main
from vitstem.spec import load_spec

SPEC = load_spec("vitstem_tiny_test")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("lines")
    vitstem.save_weights(vitstem.init_weights(SPEC), d / "w.safetensors", SPEC)
    vitstem.export_onnx(SPEC, vitstem.init_weights(SPEC), d / "m.onnx")
    np.save(d / "x.npy", np.zeros(SPEC.input_shape(1), np.float32))
    return d


def _one_error_line(argv) -> str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main([str(a) for a in argv]) == 2
    text = err.getvalue()
    assert text.count("\n") == 1 and text.startswith("vitstem: error: "), text
    return text


@fuzz(10)
@given(name=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1,
                    max_size=12).map(lambda s: s + "\n\r\t" if s not in (".", "..") else "a\nb"))
def test_a_bad_input_path_gives_one_line(work, tmp_path_factory, name):
    d = tmp_path_factory.mktemp("bad")
    (d / name).write_bytes(b"not a file vitstem reads")
    for argv in (["forward", "vitstem_tiny_test", "--weights", d / name, work / "x.npy", "-o", d / "z.npy"],
                 ["forward", "vitstem_tiny_test", "--weights", work / "w.safetensors", d / name, "-o", d / "z.npy"],
                 ["run", d / name, work / "x.npy", "-o", d / "z.npy"],
                 ["check", d / name, "--no-mobile"]):
        _one_error_line(argv)


def test_overflow_warnings_do_not_add_lines(work, tmp_path, recwarn):
    np.save(tmp_path / "big.npy", np.full(SPEC.input_shape(1), 1e39))
    for argv in (["forward", "vitstem_tiny_test", "--weights", work / "w.safetensors", tmp_path / "big.npy",
                  "-o", tmp_path / "z.npy"],
                 ["run", work / "m.onnx", tmp_path / "big.npy", "-o", tmp_path / "z.npy"]):
        _one_error_line(argv)
