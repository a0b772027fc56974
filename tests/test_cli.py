"""The CLI as a user runs it: one-line errors with exit 2, and the documented commands working."""

import json
import subprocess
import sys

import numpy as np
import pytest

import vitstem


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "vitstem", *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow
def test_spec_commands():
    listing = run("spec", "list")
    assert listing.returncode == 0 and "vit_base_patch16_224" in listing.stdout
    shown = run("spec", "show", "vit_base_patch16_224")
    assert vitstem.load_spec(json.loads(shown.stdout)) == vitstem.load_spec("vit_base_patch16_224")
    schema = json.loads(run("spec", "schema").stdout)
    assert schema["title"].startswith("vitstem spec")
    ok = run("spec", "validate", "vitstem_tiny_test")
    assert ok.returncode == 0 and vitstem.load_spec("vitstem_tiny_test").digest() in ok.stdout


def test_invalid_spec_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "bad.json").write_text('{"spec_version": 1, "image_size": [224, 225], "patch_size": 16, "embed_dim": 8}')
    result = run("spec", "validate", tmp_path / "bad.json")
    assert result.returncode == 2
    assert result.stderr.strip() == ("vitstem: error: image_size[1]: 225 is not divisible by patch_size[1] = 16; "
                                     "timm and transformers silently drop the trailing 1 pixel columns (a strided "
                                     "conv ignores them); set input.remainder: drop to do the same")


@pytest.mark.slow
def test_init_and_forward_match_the_api(tmp_path):
    spec = vitstem.load_spec("vitstem_tiny_test")
    assert run("init", "vitstem_tiny_test", "-o", tmp_path / "w.safetensors", "--seed", 5).returncode == 0
    x = np.random.default_rng(0).standard_normal(spec.input_shape(2)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = run("forward", "vitstem_tiny_test", tmp_path / "x.npy", "--weights", tmp_path / "w.safetensors",
                 "-o", tmp_path / "z.npy", "--profile", "exact")
    assert result.returncode == 0, result.stderr
    expected = vitstem.forward(spec, vitstem.init_weights(spec, seed=5), x, profile="exact")
    np.testing.assert_array_equal(np.load(tmp_path / "z.npy"), expected)


@pytest.mark.slow
def test_user_errors_have_no_traceback(tmp_path):
    cases = [
        ("forward", "vitstem_tiny_test", tmp_path / "missing.npy", "--weights", tmp_path / "w", "-o", tmp_path / "z.npy"),
        ("init", "no_such_preset", "-o", tmp_path / "w.safetensors"),
        ("init", "vitstem_tiny_test", "-o", tmp_path / "no_dir" / "w.safetensors"),
    ]
    for args in cases:
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    run("init", "vitstem_tiny_test", "-o", tmp_path / "w.safetensors")
    bad = run("forward", "vitstem_tiny_test", tmp_path / "x.npy", "--weights", tmp_path / "w.safetensors", "-o", tmp_path / "z")
    assert bad.returncode == 2 and "is not a readable .npy array" in bad.stderr
