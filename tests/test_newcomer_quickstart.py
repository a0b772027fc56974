"""The README's quick start, run verbatim: a timm user and a transformers user get from their checkpoint to a
checked model on the edge runtime, and the z0 they get is their peer library's own for that photo."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from support.newcomer_files import photo, save_timm_checkpoint, tiny_hf_dir, tiny_timm_model, typed
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart(name: str) -> list[str]:
    """The command lines of the ```sh block after `<!-- quickstart: NAME` in the README."""
    match = re.search(rf"<!-- quickstart: {name}\b.*?-->\s*```sh\n(.*?)```", README.read_text(), re.S)
    assert match, f"README has no quick start block {name!r}"
    lines = [line.strip() for line in match.group(1).splitlines() if line.strip() and not line.startswith("#")]
    assert lines and all(line.startswith("vitstem ") for line in lines), lines
    return lines


def run_all(lines, cwd) -> list[str]:
    outputs = []
    for line in lines:
        result = typed(line, cwd)
        assert result.returncode == 0, (line, result.stderr)
        assert result.stderr == "", (line, result.stderr)  # vitstem's output is the only output
        outputs.append(result.stdout)
    return outputs


@pytest.mark.slow
def test_timm_quick_start_verbatim(tmp_path):
    import timm.data

    model = tiny_timm_model()
    save_timm_checkpoint(model, tmp_path / "model.safetensors")
    photo(tmp_path / "cat.jpg")
    out = run_all(quickstart("timm"), tmp_path)
    assert "from timm's default pretrained_cfg for vit_base_patch16_224" in out[0]
    assert "ok: stem.onnx" in out[2] and "precision fp32" in out[2] and "(proven: exporting --weights again" in out[2]
    # timm's own eval transform and stem on the same photo
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    x = transform(Image.open(tmp_path / "cat.jpg").convert("RGB"))[None]
    with torch.no_grad():
        expected = model.norm_pre(model._pos_embed(model.patch_embed(x))).numpy()
    z0 = np.load(tmp_path / "z0.npy")
    assert z0.shape == expected.shape == (1, 197, 32)
    np.testing.assert_allclose(z0, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.slow
def test_hf_quick_start_verbatim(tmp_path):
    model, processor = tiny_hf_dir(tmp_path / "vit-hf")
    photo(tmp_path / "cat.jpg")
    out = run_all(quickstart("hf"), tmp_path)
    assert "from preprocessor_config.json" in out[0] and "--resize exact --interpolation bilinear" in out[0]
    assert "ok: hf-stem.onnx" in out[2]
    image = Image.open(tmp_path / "cat.jpg").convert("RGB")
    theirs = processor(image, return_tensors="pt")["pixel_values"]
    # transformers 5 resizes with torchvision on a uint8 tensor, Pillow's bilinear up to one level apart
    ours = np.asarray(image.resize((224, 224), Image.Resampling.BILINEAR), np.float32).transpose(2, 0, 1)[None]
    ours = torch.from_numpy((ours / 255 - 0.5) / 0.5)
    level = (theirs - ours).abs() * 127.5
    assert level.max() <= 1.0001 and (level > 0.5).float().mean() < 0.005
    with torch.no_grad():
        expected = model.embeddings(ours).numpy()
        near = model.embeddings(theirs).numpy()
    z0 = np.load(tmp_path / "hf-z0.npy")
    assert z0.shape == expected.shape == (1, 197, 32)
    np.testing.assert_allclose(z0, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    np.testing.assert_allclose(z0, near, rtol=0, atol=0.02 * np.abs(near).max())


@pytest.mark.parametrize("name", ["timm", "hf"])
def test_quick_start_is_short(name):
    assert len(quickstart(name)) <= 5
