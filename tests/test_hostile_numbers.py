"""Numeric options and API arguments that would reach NumPy or ONNX Runtime as nonsense: one line, exit 2."""

from __future__ import annotations

import numpy as np
import pytest

import vitstem
from vitstem.cli import main
from vitstem.errors import InputError


@pytest.mark.parametrize("args, message", [
    (["init", "vitstem_tiny_test", "--seed", "-1", "-o", "{d}/w.safetensors"], "--seed: must be a non-negative integer"),
    (["init", "vitstem_tiny_test", "--seed", "1e3", "-o", "{d}/w.safetensors"], "--seed: must be a non-negative integer"),
    (["golden", "vitstem_tiny_test", "--batch", "-3", "-o", "{d}/g"], "--batch: must be a positive integer"),
    (["golden", "vitstem_tiny_test", "--batch", "0", "-o", "{d}/g"], "--batch: must be a positive integer"),
    (["run", "{d}/m.onnx", "{d}/x.npy", "-o", "{d}/z.npy", "--threads", "-2"], "--threads: must be a positive integer"),
])
def test_numeric_options_are_refused_by_the_parser(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main([a.format(d=tmp_path) for a in args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("seed", [-1, 2.5, "0", True])
def test_init_weights_refuses_a_seed_that_is_not_a_non_negative_integer(seed):
    with pytest.raises(InputError, match="seed must be a non-negative integer"):
        vitstem.init_weights("vitstem_tiny_test", seed=seed)
    assert np.array_equal(vitstem.init_weights("vitstem_tiny_test", seed=np.int64(3))["patch_embed.weight"],
                          vitstem.init_weights("vitstem_tiny_test", seed=3)["patch_embed.weight"])


def test_an_unknown_backend_is_an_input_error_naming_the_choices():
    spec = vitstem.load_spec("vitstem_tiny_test")
    x = np.zeros(spec.input_shape(1), np.float32)
    with pytest.raises(InputError, match="backend must be one of numpy, torch, tensorflow, got 'jax'"):
        vitstem.forward(spec, vitstem.init_weights(spec), x, backend="jax")
