"""One output rule for every command (issue 12): nothing but a regular file is replaced, an input is never
an output, permissions are kept, a missing directory is refused, errors name the path as typed, on one line."""

import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fuzz import fuzz

import vitstem
from vitstem.outputs import write_bytes
from vitstem.spec import load_spec

SPEC = load_spec("vitstem_tiny_test")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("out")
    (d / "s.json").write_text(SPEC.to_json())
    vitstem.save_weights(vitstem.init_weights(SPEC), d / "w.safetensors", SPEC)
    vitstem.export_onnx(SPEC, vitstem.init_weights(SPEC), d / "m.onnx")
    np.save(d / "x.npy", np.zeros(SPEC.input_shape(1), np.float32))
    return d


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "vitstem", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def _commands(d, out):
    """Every command that writes a file, with `out` as its output."""
    return {
        "init": ["init", d / "s.json", "-o", out],
        "export": ["export", d / "s.json", "--weights", d / "w.safetensors", "-o", out],
        "run": ["run", d / "m.onnx", d / "x.npy", "-o", out],
        "forward": ["forward", d / "s.json", d / "x.npy", "--weights", d / "w.safetensors", "-o", out],
        "conform": ["conform", d / "s.json", "-q", "--json", out],
    }


def _special_files(tmp):
    """(name, path) of files that are not regular: a character device (as /dev/null), a FIFO, a symlink to each."""
    made = []
    if os.geteuid() == 0:
        os.mknod(tmp / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        made.append(("device", tmp / "null"))
    os.mkfifo(tmp / "fifo")
    made.append(("fifo", tmp / "fifo"))
    for name, path in list(made):
        (tmp / f"link-{name}").symlink_to(path)
        made.append((f"symlink to {name}", tmp / f"link-{name}"))
    return made


@pytest.mark.slow
@pytest.mark.parametrize("command", ["init", "export", "run", "forward"])
def test_nothing_but_a_regular_file_is_replaced(work, tmp_path, command):
    for name, path in _special_files(tmp_path):
        before = os.lstat(path)
        result = _cli(*_commands(work, path)[command])
        assert result.returncode == 2, (name, result.stderr)
        assert "not a regular file" in result.stderr and result.stderr.count("\n") == 1, result.stderr
        after = os.lstat(path)
        assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino), name


def test_a_symlink_to_a_regular_file_is_written_through(work, tmp_path):
    (tmp_path / "real.npy").write_bytes(b"old")
    (tmp_path / "link.npy").symlink_to(tmp_path / "real.npy")
    assert _cli(*_commands(work, tmp_path / "link.npy")["run"]).returncode == 0
    assert (tmp_path / "link.npy").is_symlink() and np.load(tmp_path / "real.npy").shape[0] == 1


@pytest.mark.slow
@pytest.mark.parametrize("command", ["init", "export", "run", "forward", "conform"])
def test_a_directory_is_named_as_typed(work, tmp_path, command):
    (tmp_path / "d").mkdir()
    result = _cli(*_commands(work, "d")[command], cwd=tmp_path)
    assert result.returncode == 2 and result.stderr == "vitstem: error: Is a directory: d\n", result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", ["init", "export", "run", "forward", "conform"])
def test_a_missing_directory_is_refused_not_created(work, tmp_path, command):
    result = _cli(*_commands(work, tmp_path / "missing" / "f")[command])
    assert result.returncode == 2 and "does not exist" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "missing").exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["init", "export", "run", "forward"])
def test_permissions_of_a_replaced_file_are_kept(work, tmp_path, command):
    out = tmp_path / "secret"
    out.write_bytes(b"old")
    out.chmod(0o600)
    assert _cli(*_commands(work, out)[command]).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and out.read_bytes() != b"old"


@pytest.mark.slow
def test_outputs_that_are_inputs_are_refused(work, tmp_path):
    import shutil

    for f in ("s.json", "w.safetensors", "m.onnx", "x.npy"):
        shutil.copy(work / f, tmp_path / f)
    (tmp_path / "alias.safetensors").symlink_to(tmp_path / "w.safetensors")
    os.link(tmp_path / "x.npy", tmp_path / "hard.npy")
    d = tmp_path
    cases = [
        ["export", d / "s.json", "--weights", d / "w.safetensors", "-o", d / "w.safetensors"],
        ["export", d / "s.json", "--weights", d / "w.safetensors", "-o", d / "alias.safetensors"],
        ["export", d / "s.json", "--weights", d / "w.safetensors", "-o", d / "s.json"],
        ["run", d / "m.onnx", d / "x.npy", "-o", d / "x.npy"],
        ["run", d / "m.onnx", d / "x.npy", "-o", d / "hard.npy"],
        ["run", d / "m.onnx", d / "x.npy", "-o", d / "m.onnx"],
        ["forward", d / "s.json", d / "x.npy", "--weights", d / "w.safetensors", "-o", d / "x.npy"],
    ]
    before = {f: (d / f).read_bytes() for f in ("s.json", "w.safetensors", "m.onnx", "x.npy")}
    for args in cases:
        result = _cli(*args)
        assert result.returncode == 2 and "is an input of this command" in result.stderr, (args, result.stderr)
    assert before == {f: (d / f).read_bytes() for f in before}
    clash = _cli("export", d / "s.json", "--weights", d / "w.safetensors", "-o", d / "m.ort", "--ort")
    assert clash.returncode == 2 and "are the same file" in clash.stderr and not (d / "m.ort").exists()


def test_import_never_replaces_its_checkpoint(tmp_path):
    """`import DIR/weights.safetensors -o DIR` would write DIR/weights.safetensors over the checkpoint."""
    from safetensors.numpy import save_file

    weights = vitstem.init_weights(SPEC)
    save_file(weights, str(tmp_path / "weights.safetensors"))  # canonical names are timm's
    before = (tmp_path / "weights.safetensors").read_bytes()
    result = _cli("import", tmp_path / "weights.safetensors", "--format", "timm", "-o", tmp_path)
    assert result.returncode == 2 and "is an input of this command" in result.stderr
    assert (tmp_path / "weights.safetensors").read_bytes() == before


def test_python_api_refuses_a_directory_and_a_device(tmp_path):
    weights = vitstem.init_weights(SPEC)
    with pytest.raises(vitstem.VitstemError, match=f"Is a directory: {tmp_path}"):
        vitstem.export_onnx(SPEC, weights, tmp_path)
    with pytest.raises(vitstem.VitstemError, match="Is a directory"):
        vitstem.save_weights(weights, tmp_path, SPEC)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(vitstem.VitstemError, match="not a regular file"):
        write_bytes(tmp_path / "fifo", b"x")


@fuzz(30)
@given(name=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1,
                    max_size=20))
def test_errors_stay_one_line_whatever_the_path_contains(tmp_path_factory, name):
    """Newlines, tabs, escapes in a path: the message is still one line and names it."""
    from vitstem.outputs import shown

    d = tmp_path_factory.mktemp("names")
    if name in (".", ".."):
        return
    for target in (d / "missing" / name, d / name):
        if target == d / name:
            target.mkdir()
        with pytest.raises(vitstem.VitstemError) as info:
            write_bytes(target, b"x")
        message = str(info.value)
        assert "\n" not in message and "\r" not in message and shown(target) in message
