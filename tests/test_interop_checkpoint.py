"""File import without the peer: timm / transformers safetensors and big_vision npz -> spec + weights.

Checkpoints are written from randomly initialised peer models; the imported (spec, weights) must
give the peer's own z0 (within the bound) and equal what the model-object converters produce.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

import vitstem
from support.reference import assert_agrees
from support.hf_peers import hf_z0, tiny_model as hf_model
from support.timm_peers import random_stem as _random_stem, timm_z0, tiny_vit as _vit
from vitstem.interop import from_hf, from_timm, import_checkpoint
from vitstem.interop.checkpoint import table_grid


def _save_torch_state(model, path, prefix=""):
    from safetensors.torch import save_file

    save_file({prefix + k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))


def _images(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _same(a, b):
    spec_a, w_a = a
    spec_b, w_b = b
    assert spec_a.replace(name="x") == spec_b.replace(name="x")
    assert w_a.keys() == w_b.keys() and all(np.array_equal(w_a[k], w_b[k]) for k in w_a)


@pytest.mark.parametrize("rows,prefix,kwargs,expected", [
    (17, 1, {}, ((4, 4), True)),                          # 16 patches + cls
    (16, 1, {}, ((4, 4), False)),                         # no_embed_class
    (9, 5, {}, ((2, 2), True)),                           # both 9-5 and 9 are squares: covering wins
    (9, 5, {"no_embed_class": True}, ((3, 3), False)),
    (17, 1, {"image_size": (16, 64)}, ((2, 8), True)),    # the image grid fits: non-square
    (17, 1, {"image_size": (48, 48)}, ((4, 4), True)),    # does not fit 6x6: the table's own square grid
    (12, 0, {"grid": (3, 4)}, ((3, 4), False)),
])
def test_table_grid_rules(rows, prefix, kwargs, expected):
    assert table_grid(rows, prefix, (8, 8), **kwargs) == expected


def test_table_grid_errors_say_what_to_pass():
    with pytest.raises(vitstem.WeightsError, match="--grid"):
        table_grid(13, 1, (8, 8))
    with pytest.raises(vitstem.WeightsError, match="needs 13 or 12"):
        table_grid(17, 1, (8, 8), grid=(3, 4))


@pytest.mark.parametrize("kwargs", [dict(), dict(no_embed_class=True, reg_tokens=3), dict(pre_norm=True),
                                    dict(class_token=False, global_pool="avg", img_size=(24, 40)),
                                    dict(embed_norm_layer="layernorm"),
                                    dict(embed_norm_layer="rmsnorm", pre_norm=True, norm_layer="rmsnorm")])
def test_timm_safetensors_import_equals_from_timm(tmp_path, kwargs):
    model = _vit(**kwargs)
    _save_torch_state(model, tmp_path / "model.safetensors", prefix="model.")
    grid = None if "img_size" not in kwargs else (3, 5)  # a non-square table needs the grid (or image size)
    imported = import_checkpoint(tmp_path / "model.safetensors", "timm", grid=grid, pre_norm_eps=1e-6)
    _same(imported, from_timm(model, preprocess=None))
    spec, weights = imported
    x = _images(spec.input_shape(2))
    assert_agrees(spec, weights, x, timm_z0(model, x))


def test_timm_hub_config_gives_image_size_and_preprocessing(tmp_path):
    import timm

    model = _random_stem(timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, img_size=32,
                                           embed_dim=24, depth=1, num_heads=2, num_classes=0))
    _save_torch_state(model, tmp_path / "model.safetensors")
    cfg = {"architecture": "deit_tiny_distilled_patch16_224",
           "pretrained_cfg": {**model.pretrained_cfg, "input_size": [3, 32, 32]}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    _same(import_checkpoint(tmp_path / "model.safetensors", "timm"), from_timm(model))


def test_timm_import_at_another_image_size_resamples_like_timm(tmp_path):
    model = _vit(dynamic_img_size=True, reg_tokens=1)
    _save_torch_state(model, tmp_path / "model.safetensors")
    spec, weights = import_checkpoint(tmp_path / "model.safetensors", "timm", image_size=(48, 40))
    assert spec.image_size == (48, 40) and spec.pos_grid == (4, 4)
    x = _images(spec.input_shape(2))
    assert_agrees(spec, weights, x, timm_z0(model, x), resampled_in_float32=True)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["vit", "deit"])
def test_hf_safetensors_with_config_and_processor(tmp_path, kind):
    from transformers import ViTImageProcessor

    model = hf_model(kind)
    processor = ViTImageProcessor(image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.25, 0.3])
    _save_torch_state(model, tmp_path / "model.safetensors", prefix=f"{kind}.")
    model.config.to_json_file(str(tmp_path / "config.json"))
    processor.save_pretrained(str(tmp_path))
    imported = import_checkpoint(tmp_path / "model.safetensors", "hf")
    _same(imported, from_hf(model, image_processor=processor))
    spec, weights = import_checkpoint(tmp_path / "model.safetensors", "hf", preprocess=None, image_size=48)
    assert spec.dynamic_image_size and spec.resample.policy == "hf_pytorch"
    x = _images(spec.input_shape(2))
    assert_agrees(spec, weights, x, hf_z0(model, x, interpolate=True), resampled_in_float32=True)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "vitstem", "import", *map(str, args)], capture_output=True, text=True)


def test_cli_import_writes_spec_and_weights(tmp_path):
    model = _vit(reg_tokens=2)
    _save_torch_state(model, tmp_path / "model.safetensors")
    result = _cli(tmp_path / "model.safetensors", "--format", "timm", "-o", tmp_path / "out",
                  "--mean", 0.5, 0.5, 0.5, "--std", 0.5, 0.5, 0.5)
    assert result.returncode == 0, result.stderr
    spec = vitstem.load_spec(tmp_path / "out" / "spec.yaml")
    weights = vitstem.load_weights(tmp_path / "out" / "weights.safetensors", spec)
    expected = from_timm(model, preprocess={"scale": 1 / 255, "mean": [0.5] * 3, "std": [0.5] * 3})
    _same((spec, weights), expected)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["spec.yaml", "weights.safetensors"]  # no temp files


@pytest.mark.slow
def test_cli_big_vision_npz_json_spec(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "bv.npz", **{"embedding/kernel": rng.standard_normal((4, 4, 3, 8)).astype(np.float32),
                                     "embedding/bias": np.zeros(8, np.float32),
                                     "cls": np.ones((1, 1, 8), np.float32),
                                     "pos_embedding": rng.standard_normal((1, 9, 8)).astype(np.float32)})
    result = _cli(tmp_path / "bv.npz", "--format", "big_vision", "-o", tmp_path / "o", "--spec-format", "json")
    assert result.returncode == 0, result.stderr
    spec = vitstem.load_spec(tmp_path / "o" / "spec.json")
    assert (spec.image_size, spec.input.layout, spec.pos_prefix_rows, spec.resample.policy) == ((12, 12), "NHWC", 0, "big_vision")


@pytest.mark.slow
def test_cli_errors_are_one_line(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    result = _cli(tmp_path / "bad.safetensors", "--format", "timm", "-o", tmp_path / "o")
    assert result.returncode == 2 and result.stderr.startswith("vitstem: error:") and result.stderr.count("\n") == 1
    from safetensors.numpy import save_file

    save_file({"blocks.0.attn.qkv.weight": np.zeros((3, 3), np.float32)}, str(tmp_path / "enc.safetensors"))
    result = _cli(tmp_path / "enc.safetensors", "--format", "hf", "-o", tmp_path / "o")
    assert result.returncode == 2 and "patch_embeddings.projection.weight" in result.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_file_import_needs_no_framework(tmp_path):
    """The file path runs where no peer is installed: it must not even import one."""
    model = _vit(reg_tokens=1, pre_norm=True)
    _save_torch_state(model, tmp_path / "model.safetensors")
    code = ("import sys; from vitstem.interop import import_checkpoint, write_import; "
            f"spec, w = import_checkpoint({str(tmp_path / 'model.safetensors')!r}, 'timm', pre_norm_eps=1e-6); "
            f"write_import(spec, w, {str(tmp_path / 'out')!r}); "
            "print(','.join(m for m in ('torch', 'tensorflow', 'keras', 'timm', 'transformers', 'keras_hub', 'onnx') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    spec = vitstem.load_spec(tmp_path / "out" / "spec.yaml")
    _same((spec, vitstem.load_weights(tmp_path / "out" / "weights.safetensors", spec)), from_timm(model, preprocess=None))


def test_hf_import_refuses_other_embeddings(tmp_path):
    from safetensors.numpy import save_file

    tensors = {"embeddings.patch_embeddings.projection.weight": np.zeros((8, 3, 4, 4), np.float32),
               "embeddings.cls_token": np.zeros((1, 1, 8), np.float32),
               "embeddings.register_tokens": np.zeros((1, 4, 8), np.float32),
               "embeddings.position_embeddings": np.zeros((1, 17, 8), np.float32)}
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(vitstem.SpecError, match="register_tokens"):
        import_checkpoint(tmp_path / "model.safetensors", "hf")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "swin"}))
    with pytest.raises(vitstem.SpecError, match="model_type 'swin'"):
        import_checkpoint(tmp_path / "model.safetensors", "hf")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "siglip2_vision_model"}))
    with pytest.raises(vitstem.SpecError, match=r"Siglip2Vision \(NaFlex\).*variable-length"):
        import_checkpoint(tmp_path / "model.safetensors", "hf")
