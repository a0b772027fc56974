"""Inputs that used to be read wrongly or silently (issue 12): 16-bit images, missing or non-object configs,
duplicate keys, int8 calibrated on degenerate images."""

import json
import subprocess
import sys

import numpy as np
import pytest

import vitstem
from vitstem.spec import load_spec

PRE_SPEC = load_spec({"spec_version": 1, "name": "pre", "image_size": 8, "patch_size": 4, "embed_dim": 8,
                      "input": {"layout": "NCHW", "preprocess": {"scale": 1 / 255, "mean": [0.5] * 3,
                                                                 "std": [0.25] * 3}}})


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "vitstem", *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    vitstem.export_onnx(PRE_SPEC, vitstem.init_weights(PRE_SPEC), d / "m.onnx")
    return d / "m.onnx"


@pytest.mark.slow
@pytest.mark.parametrize("suffix, dtype", [(".png", np.uint16), (".tif", np.int32), (".tif", np.float32)])
def test_images_that_do_not_convert_faithfully_are_refused(model, tmp_path, suffix, dtype):
    """A 16-bit PNG was clipped to 8 bits silently."""
    from PIL import Image

    from vitstem.runtime import load
    from vitstem.runtime.cli import read_image

    values = (np.arange(64).reshape(8, 8) * 1000).astype(dtype)
    path = tmp_path / f"x{suffix}"
    Image.fromarray(values).save(path)
    with pytest.raises(vitstem.InputError, match="image mode [IF]"):
        read_image(str(path), load(model))
    result = _cli("run", model, path, "-o", tmp_path / "z.npy")
    assert result.returncode == 2 and "does not convert" in result.stderr and not (tmp_path / "z.npy").exists()


def test_8bit_images_run_and_other_sizes_are_refused_before_decoding(model, tmp_path):
    from PIL import Image

    from vitstem.runtime import load
    from vitstem.runtime.cli import read_image

    frame = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(frame).save(tmp_path / "ok.png")
    np.testing.assert_array_equal(read_image(str(tmp_path / "ok.png"), load(model)), frame)
    Image.fromarray(np.zeros((4000, 3000), np.uint8)).save(tmp_path / "big.png")
    with pytest.raises(vitstem.InputError, match="the image is 4000x3000, the model takes 8x8"):
        read_image(str(tmp_path / "big.png"), load(model))


@pytest.mark.parametrize("text, suffix", [("embed_dim: 8\nembed_dim: 16\n", ".yaml"),
                                          ('{"embed_dim": 8, "embed_dim": 16}', ".json"),
                                          ("input:\n  layout: NCHW\n  layout: NHWC\n", ".yaml")])
def test_duplicate_keys_are_refused(tmp_path, text, suffix):
    path = tmp_path / f"s{suffix}"
    path.write_text(text)
    with pytest.raises(vitstem.SpecError, match="duplicate key"):
        load_spec(path)


def _checkpoint(tmp_path):
    from safetensors.numpy import save_file

    spec = load_spec("vitstem_tiny_test")
    save_file(vitstem.init_weights(spec), str(tmp_path / "model.safetensors"))
    return tmp_path / "model.safetensors"


@pytest.mark.parametrize("content, words", [
    (None, "No such file"), ("[1, 2]", "expected a JSON object, got list"), ('"x"', "expected a JSON object"),
    ('{"a": 1, "a": 2}', "duplicate key"), ("{", "cannot read"),
])
def test_a_named_config_that_cannot_be_read_is_an_error(tmp_path, content, words):
    checkpoint = _checkpoint(tmp_path)
    config = tmp_path / "given.json"
    if content is not None:
        config.write_text(content)
    result = _cli("import", checkpoint, "--format", "timm", "--config", config, "-o", tmp_path / "out")
    assert result.returncode == 2 and words in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", ["[]", "null", "3"])
def test_a_preprocessor_config_that_is_not_an_object_is_an_error(tmp_path, content):
    from vitstem.interop.checkpoint import import_checkpoint

    checkpoint = _checkpoint(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(content)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(vitstem.SpecError, match="preprocessor_config.json: expected a JSON object"):
        import_checkpoint(checkpoint, "hf")


@pytest.mark.parametrize("value", [1, 128])
def test_int8_calibrated_on_one_value_is_refused(value):
    """All calibration pixels one value: the activation range collapses to [0, value] and ordinary images clip.
    (All 255 is not degenerate here: the range [0, 255] is every pixel's, and that model passes.)"""
    from vitstem.export import build_onnx

    calibration = np.full((4, 3, 8, 8), value, np.uint8).astype(np.float32)
    with pytest.raises(vitstem.ExportError, match="misses the documented int8 bound on the synthetic images"):
        build_onnx(PRE_SPEC, vitstem.init_weights(PRE_SPEC), precision="int8", calibration=calibration)


def test_int8_calibrated_on_zeros_quantizes_pixels_losslessly():
    """All calibration pixels 0: an empty range, for which ONNX Runtime's quantizer takes scale 1 and zero point
    0, so pixels 0..255 quantize exactly; with the MatMul's sums scaled straight to float the model is within
    the bound on ordinary images (the Conv graph also requantized z0 on that empty range, and was refused)."""
    import onnx
    import onnxruntime as ort

    from vitstem.export import build_onnx
    from vitstem.export.int8_bound import int8_error

    weights = vitstem.init_weights(PRE_SPEC)
    model = build_onnx(PRE_SPEC, weights, precision="int8", calibration=np.zeros((4, 3, 8, 8), np.float32))
    scales = [onnx.numpy_helper.to_array(i) for i in model.graph.initializer if i.name.endswith("_scale")]
    assert any(s.size == 1 and float(s) == 1.0 for s in scales)  # the patches' activation scale
    images = np.random.default_rng(5).integers(0, 256, (6, 3, 8, 8)).astype(np.float32)
    z = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"images": images})[0]
    relative, cosine = int8_error(z, vitstem.forward(PRE_SPEC, weights, images, profile="exact"))
    assert relative < 0.02 and cosine > 0.999


@pytest.mark.parametrize("calibration", ["dark frames", "grey frames"])
def test_int8_on_uint8_frames_takes_the_bytes_whatever_the_calibration(calibration):
    """uint8 frames: the folded kernel multiplies raw bytes, so they are quantized with scale 1 and zero point 0
    (no QuantizeLinear left), not with a range calibrated on the user's images: frames calibrated on dark or
    grey images give the very z0 of the default calibration, where a calibrated range clipped the pixels
    outside it (ViT-S/16 calibrated on a dark set, max 40, was refused: min token cosine -0.14)."""
    import onnxruntime as ort

    from vitstem.export import build_onnx

    weights = vitstem.init_weights(PRE_SPEC)
    rng = np.random.default_rng(7)
    frames = {"dark frames": rng.integers(0, 40, (4, 8, 8, 3), dtype=np.uint8),
              "grey frames": rng.integers(100, 141, (4, 8, 8, 3), dtype=np.uint8)}[calibration]
    default = build_onnx(PRE_SPEC, weights, precision="int8", preprocess_in_graph=True)
    model = build_onnx(PRE_SPEC, weights, precision="int8", preprocess_in_graph=True, calibration=frames)
    assert "QuantizeLinear" not in {n.op_type for n in model.graph.node}
    images = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    run = lambda m: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(  # noqa: E731
        None, {"images": images})[0]
    assert np.array_equal(run(model), run(default))


@pytest.mark.parametrize("blocked, args, extra", [
    # (check without onnx falls back to onnxruntime's checks: tests/test_newcomer_install.py)
    ("onnxruntime", ["run", "{d}/m.onnx", "{d}/x.npy", "-o", "{d}/z.npy"], "edge"),
    ("onnx", ["export", "vitstem_tiny_test", "--weights", "{d}/w.safetensors", "-o", "{d}/n.onnx"], "onnx"),
    ("torch", ["forward", "vitstem_tiny_test", "{d}/x.npy", "--weights", "{d}/w.safetensors", "-o", "{d}/z.npy",
               "--backend", "torch"], "torch"),
    ("tensorflow", ["forward", "vitstem_tiny_test", "{d}/x.npy", "--weights", "{d}/w.safetensors", "-o",
                    "{d}/z.npy", "--backend", "tensorflow"], "tf"),
])
def test_a_missing_extra_is_one_line_naming_it(tmp_path, blocked, args, extra):
    spec = load_spec("vitstem_tiny_test")
    vitstem.save_weights(vitstem.init_weights(spec), tmp_path / "w.safetensors", spec)
    vitstem.export_onnx(spec, vitstem.init_weights(spec), tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.zeros(spec.input_shape(1), np.float32))
    code = (f"import sys; sys.modules[{blocked!r}] = None; from vitstem.cli import main; "
            f"sys.exit(main({[a.format(d=tmp_path) for a in args]!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"vitstem: error: this command needs {blocked}, which is not installed: "
                             f"pip install 'vitstem[{extra}]' (see Install in the README)\n")
