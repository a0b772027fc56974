"""`providers=`: a provider this onnxruntime build lacks is one clear error, not a silent CPU run."""

import subprocess
import sys

import numpy as np
import pytest

import vitstem.runtime
from vitstem import export_onnx
from vitstem.errors import ProviderError
from vitstem.runtime.providers import check_available, check_started
from vitstem.spec import init_weights, load_spec


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    spec = load_spec("vitstem_tiny_test")
    return export_onnx(spec, init_weights(spec), tmp_path_factory.mktemp("prov") / "m.onnx")


def test_the_build_has_no_cuda_here():
    import onnxruntime as ort

    assert "CUDAExecutionProvider" not in ort.get_available_providers()  # the premise of the tests below


def test_a_missing_provider_is_refused_and_onnxruntime_alone_would_fall_back(model):
    import onnxruntime as ort

    with pytest.raises(ProviderError, match=r"CUDAExecutionProvider is not in this onnxruntime build \(it has .*CPU"):
        vitstem.runtime.load(model, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.warns(UserWarning):  # what the refusal saves the user from: a warning and a CPU session
        session = ort.InferenceSession(str(model), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_available_providers_run(model):
    stem = vitstem.runtime.load(model, providers=["CPUExecutionProvider"])
    assert stem.session.get_providers() == ["CPUExecutionProvider"]
    assert vitstem.runtime.load(model).session.get_providers() == ["CPUExecutionProvider"]
    x = np.zeros((1, 3, *stem.spec.image_size), np.float32)
    assert np.array_equal(stem(x), vitstem.runtime.load(model, providers=("CPUExecutionProvider", {}))(x))


def test_the_checks_by_themselves():
    assert check_available("A", ["A", "B"]) == ["A"]
    with pytest.raises(ProviderError, match="give one or more"):
        check_available([], ["A"])
    with pytest.raises(ProviderError, match="C is in this onnxruntime build but did not start"):
        check_started(["C", "A"], ["A"], "m.onnx")


def test_cli_refuses_with_exit_code_2(model, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 12, 16), np.float32))
    done = subprocess.run([sys.executable, "-m", "vitstem", "run", str(model), str(tmp_path / "x.npy"), "-o",
                           str(tmp_path / "z.npy"), "--providers", "TensorrtExecutionProvider"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "TensorrtExecutionProvider is not in this onnxruntime build" in done.stderr
    assert not (tmp_path / "z.npy").exists()
