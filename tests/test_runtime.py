"""The edge runtime: same z0 as the graph, clear input errors, numpy + onnxruntime only, `vitstem run`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import vitstem
import vitstem.runtime
from support.export_cases import TINY, images, run_ort, small_spec, spec_and_weights
from support.import_blocker import BLOCKER
from vitstem.backends.numpy.bound import fast_error_bound
from vitstem.errors import ExportError, InputError
from vitstem.export import build_onnx, export_onnx


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    spec, weights = spec_and_weights(small_spec())
    path = export_onnx(spec, weights, tmp_path_factory.mktemp("rt") / "small.onnx")
    return spec, weights, path


def test_runtime_reads_the_spec_and_computes_z0(small_model):
    spec, weights, path = small_model
    stem = vitstem.runtime.load(path, threads=1)
    assert stem.spec == spec and stem.layout == "NCHW" and stem.input_dtype == "float32"
    x = images(spec, batch=3)
    z = stem(x)
    exact = vitstem.forward(spec, weights, x, profile="exact")
    assert np.all(np.abs(z.astype(np.float64) - exact) <= fast_error_bound(spec, weights, x))
    np.testing.assert_array_equal(stem(x.astype(np.uint8)), z)  # uint8 pixels are fed as float32, exactly


@pytest.mark.parametrize("bad, message", [
    (lambda x: x[0], "expected rank 4"),
    (lambda x: x.transpose(0, 2, 3, 1), "channels at the NCHW channel axis"),
    (lambda x: x[:, :2], "2 channels"),
    (lambda x: x[:, :, :8], "size 8x24 is not one this model was exported for \\(16x24\\)"),
    (lambda x: x[:, :, :15], "not a positive multiple of the patch size"),
    (lambda x: np.where(x > 250, np.nan, x), "non-finite"),
    (lambda x: x.astype(np.int32), "dtype int32"),
    (lambda x: x[:0], "the batch is empty"),
])
def test_runtime_rejects_bad_input_with_a_clear_error(small_model, bad, message):
    spec, _, path = small_model
    with pytest.raises(InputError, match=message):
        vitstem.runtime.load(path)(bad(images(spec)))


def test_runtime_checks_sizes_batch_and_frames(tmp_path):
    spec, weights = spec_and_weights(small_spec())
    listed = vitstem.runtime.load(export_onnx(spec, weights, tmp_path / "l.onnx", image_size=[(16, 24), (8, 8)]))
    assert listed(images(spec, hw=(8, 8))).shape == (2, 2 + 4, 16)
    with pytest.raises(InputError, match="16x8 is not one this model was exported for \\(16x24, 8x8\\)"):
        listed(images(spec, hw=(16, 8)))
    fixed_batch = vitstem.runtime.load(export_onnx(spec, weights, tmp_path / "b.onnx", batch=2))
    with pytest.raises(InputError, match="exported for batch 2"):
        fixed_batch(images(spec, batch=3))
    frames = vitstem.runtime.load(export_onnx(spec, weights, tmp_path / "f.onnx", preprocess_in_graph=True))
    pixels = np.random.default_rng(0).integers(0, 256, (2, 16, 24, 3), dtype=np.uint8)
    assert frames.layout == "NHWC"
    np.testing.assert_array_equal(frames(pixels), run_ort(build_onnx(spec, weights, preprocess_in_graph=True), pixels))
    with pytest.raises(InputError, match="takes uint8 frames"):
        frames(pixels.astype(np.float32))
    exact = vitstem.runtime.load(export_onnx(spec, weights, tmp_path / "e.onnx", profile="exact"))
    with pytest.raises(InputError, match="exact profile takes float32"):
        exact(images(spec).astype(np.float64) + 1e-9)


def test_runtime_refuses_files_that_are_not_vitstem_models(tmp_path, small_model):
    import onnx

    _, _, path = small_model
    truncated = tmp_path / "t.onnx"
    truncated.write_bytes(path.read_bytes()[:1000])
    # The digest is verified on the raw bytes before onnxruntime parses them; without it, ORT's refusal.
    with pytest.raises(ExportError, match="no vitstem.digest that matches the file"):
        vitstem.runtime.load(truncated)
    with pytest.raises(ExportError, match="onnxruntime cannot load it"):
        vitstem.runtime.load(truncated, verify=False)
    model = onnx.load(path)
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, bare)
    with pytest.raises(ExportError, match="metadata has no vitstem.digest"):
        vitstem.runtime.load(bare)
    with pytest.raises(ExportError, match="metadata has no vitstem.spec"):
        vitstem.runtime.load(bare, verify=False)
    with pytest.raises(ExportError, match="no such model file"):
        vitstem.runtime.load(tmp_path / "missing.onnx")


def test_runtime_needs_only_numpy_and_onnxruntime(tmp_path, small_model):
    """Loading and running a stem imports neither onnx nor vitstem.export (nor any framework)."""
    spec, _, path = small_model
    x = images(spec)
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run([sys.executable, "-c", BLOCKER, str(path), str(tmp_path / "x.npy"), str(tmp_path / "z.npy")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == spec.name
    np.testing.assert_array_equal(np.load(tmp_path / "z.npy"), vitstem.runtime.load(path)(x))


@pytest.mark.parametrize("module", ["onnx", "vitstem.export", "vitstem.export.metadata"])
def test_blocker_really_blocks(module):
    code = BLOCKER.split("import numpy as np")[0] + f"import {module}\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    first_blocked = "onnx" if module == "onnx" else "vitstem.export"
    assert result.returncode != 0 and f"blocked import of {first_blocked}\n" in result.stderr, result.stderr


def test_cli_run_with_npy_and_with_image_files(tmp_path, small_model):
    from PIL import Image

    from vitstem.cli import main

    spec, weights, path = small_model
    x = images(spec)
    np.save(tmp_path / "a.npy", x[:1])
    np.save(tmp_path / "b.npy", x[1:])
    assert main(["run", str(path), str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "-o", str(tmp_path / "z.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "z.npy"), vitstem.runtime.load(path)(x))

    pixels = x.astype(np.uint8).transpose(0, 2, 3, 1)  # (B, H, W, C)
    files = []
    for i, frame in enumerate(pixels):
        files.append(str(tmp_path / f"img{i}.png"))
        Image.fromarray(frame).save(files[-1])
    assert main(["run", str(path), *files, "-o", str(tmp_path / "zi.npy")]) == 0
    zi = np.load(tmp_path / "zi.npy")
    exact = vitstem.forward(spec, weights, x, profile="exact")
    assert np.all(np.abs(zi.astype(np.float64) - exact) <= fast_error_bound(spec, weights, x))

    Image.fromarray(pixels[0][:8]).save(tmp_path / "small.png")
    assert main(["run", str(path), str(tmp_path / "small.png"), "-o", str(tmp_path / "zs.npy")]) == 2
    assert not (tmp_path / "zs.npy").exists()


def test_cli_run_reports_errors_in_one_line(tmp_path, small_model, capsys):
    from vitstem.cli import main

    _, _, path = small_model
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 5), np.float32))
    assert main(["run", str(path), str(tmp_path / "bad.npy"), "-o", str(tmp_path / "z.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "expected rank 4" in err
    tiny, tiny_w = spec_and_weights(TINY)
    tiny_path = export_onnx(tiny, tiny_w, tmp_path / "tiny.onnx")
    (tmp_path / "p.png").write_bytes(b"")
    assert main(["run", str(tiny_path), str(tmp_path / "p.png"), "-o", str(tmp_path / "z.npy")]) == 2
    assert "normalised float images" in capsys.readouterr().err
