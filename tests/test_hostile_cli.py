"""The CLI under hostile files and arguments: one line `vitstem: error: ...` naming what is wrong,
exit 2, no traceback, and no output file written."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import vitstem
from vitstem.cli import main

SPEC = vitstem.load_spec("vitstem_tiny_test")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    vitstem.save_weights(vitstem.init_weights(SPEC), d / "w.safetensors", SPEC)
    other = vitstem.load_spec({"spec_version": 1, "image_size": 4, "patch_size": 2, "embed_dim": 4})
    vitstem.save_weights(vitstem.init_weights(other), d / "other.safetensors", other)
    (d / "truncated.safetensors").write_bytes((d / "w.safetensors").read_bytes()[:-7])
    (d / "pickle.safetensors").write_bytes(pickle.dumps({"cls_token": [0.0] * 8}))
    np.save(d / "x.npy", np.zeros(SPEC.input_shape(2), np.float32))
    np.save(d / "x_nhwc.npy", np.zeros((2, 12, 16, 3), np.float32))
    nan = np.zeros(SPEC.input_shape(1), np.float32)
    nan[0, 0, 0, 0] = np.nan
    np.save(d / "x_nan.npy", nan)
    np.save(d / "x_int.npy", np.zeros(SPEC.input_shape(1), np.int64))
    (d / "junk.npy").write_bytes(os.urandom(100))
    (d / "bad.yaml").write_text("spec_version: 1\nimage_size: 16\npatch_size: 4\nembed_dim: -8\n")
    (d / "huge.yaml").write_text("spec_version: 1\nimage_size: 16\npatch_size: 4\nembed_dim: 1000000000\n")
    (d / "binary.yaml").write_bytes(b"\xff\xfe\x00junk")
    (d / "list.json").write_text("[1, 2, 3]")
    (d / "not_an_image.png").write_bytes(b"GIF89a" + os.urandom(40))
    (d / "junk.onnx").write_bytes(os.urandom(300))
    (d / "pickle.npz").write_bytes(pickle.dumps({"embedding/kernel": [0.0]}))
    np.savez(d / "object.npz", **{"embedding/kernel": np.array([object()], dtype=object)})
    vitstem.export_onnx(SPEC, vitstem.init_weights(SPEC), d / "m.onnx")
    return d


CASES = [
    # (argv with {d} for the files directory, words the one-line error must contain)
    (["spec", "show", "{d}/absent.yaml"], "is neither a spec file nor a preset"),
    (["spec", "validate", "{d}/bad.yaml"], "embed_dim: -8 is less than 1"),
    (["spec", "validate", "{d}/huge.yaml"], "embed_dim: patch kernel 1000000000x48"),
    (["spec", "validate", "{d}/binary.yaml"], "cannot read spec file"),
    (["spec", "validate", "{d}/list.json"], "a spec must be a mapping, got list"),
    (["init", "{d}/bad.yaml", "-o", "{d}/out"], "embed_dim"),
    (["init", "vitstem_tiny_test", "-o", "{d}/absent_dir/out"], "directory {d}/absent_dir does not exist"),
    (["init", "vitstem_tiny_test", "-o", "{d}"], "Is a directory"),
    # Regressions: ENAMETOOLONG escaped as a traceback (from Path.is_file and from mkstemp).
    (["init", "vitstem_tiny_test", "-o", "{d}/" + "w" * 300], "File name too long: {d}/www"),
    (["spec", "validate", "s" * 300], "cannot read spec file sss"),
    (["forward", "vitstem_tiny_test", "{d}/x.npy", "--weights", "{d}/absent.safetensors", "-o", "{d}/out"],
     "cannot read weights file"),
    (["forward", "vitstem_tiny_test", "{d}/x.npy", "--weights", "{d}/other.safetensors", "-o", "{d}/out"],
     "saved for spec 'custom' sha256:"),
    (["forward", "vitstem_tiny_test", "{d}/x.npy", "--weights", "{d}/truncated.safetensors", "-o", "{d}/out"],
     "not a readable safetensors file"),
    (["forward", "vitstem_tiny_test", "{d}/x.npy", "--weights", "{d}/pickle.safetensors", "-o", "{d}/out"],
     "not a readable safetensors file"),
    (["forward", "vitstem_tiny_test", "{d}/absent.npy", "--weights", "{d}/w.safetensors", "-o", "{d}/out"],
     "No such file or directory"),
    (["forward", "vitstem_tiny_test", "{d}/junk.npy", "--weights", "{d}/w.safetensors", "-o", "{d}/out"],
     "is not a readable .npy array"),
    (["forward", "vitstem_tiny_test", "{d}/x_nhwc.npy", "--weights", "{d}/w.safetensors", "-o", "{d}/out"],
     "12 channels at the NCHW channel axis, expected 3 (is the layout right?)"),
    (["forward", "vitstem_tiny_test", "{d}/x_nan.npy", "--weights", "{d}/w.safetensors", "-o", "{d}/out"],
     "1 non-finite values"),
    (["forward", "vitstem_tiny_test", "{d}/x_int.npy", "--weights", "{d}/w.safetensors", "-o", "{d}/out"],
     "dtype int64"),
    (["forward", "vitstem_tiny_test", "{d}/x.npy", "--weights", "{d}/w.safetensors", "-o", "{d}/absent_dir/out"],
     "directory {d}/absent_dir does not exist"),
    (["export", "vitstem_tiny_test", "--weights", "{d}/truncated.safetensors", "-o", "{d}/out"],
     "not a readable safetensors file"),
    (["export", "vitstem_tiny_test", "--weights", "{d}/w.safetensors", "-o", "{d}/absent_dir/m.onnx"],
     "does not exist"),
    (["check", "--no-mobile", "{d}/absent.onnx"], "cannot read"),
    (["check", "--no-mobile", "{d}/junk.onnx"], "junk.onnx"),
    (["check", "--no-mobile", "{d}/w.safetensors"], "w.safetensors"),
    (["import", "{d}/pickle.safetensors", "--format", "timm", "-o", "{d}/out"], "not a readable safetensors file"),
    (["import", "{d}/pickle.npz", "--format", "big_vision", "-o", "{d}/out"], "it is a Python pickle, which vitstem never loads"),
    (["import", "{d}/object.npz", "--format", "big_vision", "-o", "{d}/out"], "member embedding/kernel.npy: it holds Python objects"),
    (["import", "{d}/other.safetensors", "--format", "timm", "-o", "{d}/out"], "patch_embed.proj.weight"),
    (["run", "{d}/absent.onnx", "{d}/x.npy", "-o", "{d}/out"], "no such model file"),
    (["run", "{d}/junk.onnx", "{d}/x.npy", "-o", "{d}/out"], "no vitstem.digest that matches the file"),
    (["run", "{d}/m.onnx", "{d}/x_nhwc.npy", "-o", "{d}/out"], "channels"),
    (["run", "{d}/m.onnx", "{d}/junk.npy", "-o", "{d}/out"], "is not a readable .npy array"),
    (["run", "{d}/m.onnx", "{d}/not_an_image.png", "-o", "{d}/out"], "normalised float images"),
    (["run", "{d}/m.onnx", "{d}/x.npy", "{d}/not_an_image.png", "-o", "{d}/out"], "not both"),
]


@pytest.mark.parametrize("argv, words", CASES, ids=[" ".join(c[0][:2]) + f" #{i}" for i, c in enumerate(CASES)])
def test_user_errors_are_one_line_and_exit_2(files, capsys, argv, words):
    argv = [a.format(d=files) for a in argv]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vitstem: error: "), err
    assert words.format(d=files) in lines[0], lines[0]
    assert not (files / "out").exists() and not (files / "absent_dir").exists()
    assert not [p.name for p in files.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_exit_code_and_stderr_from_a_real_process(files):
    """The same, through `python -m vitstem`, as a shell sees it (no traceback on stderr)."""
    result = subprocess.run([sys.executable, "-m", "vitstem", "forward", "vitstem_tiny_test", str(files / "x_nan.npy"),
                             "--weights", str(files / "w.safetensors"), "-o", str(files / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "vitstem: error: images contain 1 non-finite values (NaN or Inf)\n"


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Only user errors are turned into one line: anything else is a bug and must show where it is."""
    import vitstem.spec.cli as spec_cli

    def broken(args):
        raise RuntimeError("an internal bug")

    monkeypatch.setattr(spec_cli, "_spec_list", broken)
    with pytest.raises(RuntimeError, match="an internal bug"):
        main(["spec", "list"])


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["forward", "vitstem_tiny_test"])
    assert info.value.code == 2 and "required" in capsys.readouterr().err
