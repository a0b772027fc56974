"""Model and checkpoint files that are not regular files (issue 12, round 2): a FIFO blocked `vitstem check`,
`run`, `compose` and `deploy --weights` forever at open(), /dev/zero never ended. Each is refused from
fstat/stat before anything is read, as the other readers already were."""

import os
import threading

import pytest

import vitstem
from vitstem.errors import VitstemError
from vitstem.spec import load_spec

SPEC = load_spec("vitstem_tiny_test")


def _refused_without_blocking(call, fifo):
    """`call()` raises a VitstemError within 20 s; if it blocks on the FIFO, unblock it and fail."""
    outcome = {}

    def target():
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - recorded and asserted below
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(20)
    if thread.is_alive():
        with open(fifo, "wb"):  # the reader's open() returns; it then reads an empty file
            pass
        thread.join(20)
        pytest.fail("blocked opening a FIFO")
    assert isinstance(outcome.get("error"), VitstemError), outcome
    return str(outcome["error"])


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "model.onnx"
    os.mkfifo(path)
    return path


@pytest.fixture(scope="module")
def stem(tmp_path_factory):
    d = tmp_path_factory.mktemp("stem")
    vitstem.export_onnx(SPEC, vitstem.init_weights(SPEC), d / "m.onnx")
    return d / "m.onnx"


def test_runtime_load_refuses_a_fifo(fifo):
    from vitstem.runtime import load

    assert "not a regular file" in _refused_without_blocking(lambda: load(fifo), fifo)


def test_check_refuses_a_fifo(fifo):
    from vitstem.export.checks import check_onnx

    assert "not a regular file" in _refused_without_blocking(lambda: check_onnx(fifo, mobile=False), fifo)


@pytest.mark.parametrize("role", ["stem", "encoder"])
def test_compose_refuses_a_fifo_or_a_device(fifo, stem, tmp_path, role):
    from vitstem.deploy.join import compose

    for special in (fifo, "/dev/zero"):
        args = (special, stem) if role == "stem" else (stem, special)
        message = _refused_without_blocking(lambda: compose(*args, tmp_path / "whole.onnx"), fifo)
        assert "not a regular file" in message and str(special) in message
    assert not (tmp_path / "whole.onnx").exists()


def test_a_directory_is_named_as_such(tmp_path):
    from vitstem.runtime.integrity import read_bounded

    with pytest.raises(VitstemError, match="^Is a directory: "):
        read_bounded(tmp_path)


def test_deploy_weights_fifo_and_wrong_sizes_are_weights_errors(fifo, tmp_path):
    """timm's load_state_dict raised a RuntimeError (a traceback) for tensors of another size."""
    import torch
    from safetensors.torch import save_file

    from vitstem.deploy.checkpoints import timm_model

    _refused_without_blocking(lambda: timm_model("vit_tiny_patch16_224", fifo), fifo)
    path = tmp_path / "small.safetensors"
    save_file({"cls_token": torch.zeros(1, 1, 32), "pos_embed": torch.zeros(1, 197, 32)}, path)
    with pytest.raises(VitstemError, match=r"does not fit timm's vit_tiny_patch16_224: size mismatch for \w+"):
        timm_model("vit_tiny_patch16_224", path)
