"""Every transformers vision family with a ViT stem, from tiny random configs (nothing downloaded).

The peer's z0 is the tensor its first encoder layer receives (a forward pre-hook on that layer),
so the pre-norm (CLIP's pre_layrnorm) and the forward's own handling of sizes are included.
Each family is checked at its native size and, where it resamples, at a larger square and a
smaller non-square size: the peer within the fast bound of our exact z0 and within twice it of
our fast NumPy/PyTorch/TensorFlow z0 (assert_agrees), our exact z0 bit-identical across the
backends and the exported ONNX graph, the fast ONNX graph within the bound.
"""

from __future__ import annotations

import numpy as np
import pytest

import vitstem
from support.reference import assert_agrees, assert_backends_and_onnx
from vitstem.interop import from_hf, import_checkpoint, to_hf_state_dict

pytestmark = pytest.mark.slow

TINY = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
NATIVE = (32, 32)
OTHER_SIZES = ((48, 48), (24, 40))

# family -> (config class, model class, config kwargs beyond TINY, forward kwargs for other sizes)
PEERS = {
    "ViTMSN": ("ViTMSNConfig", "ViTMSNModel", {}, {"interpolate_pos_encoding": True}),
    "ViTMAE": ("ViTMAEConfig", "ViTMAEModel", {"mask_ratio": 0.0}, {"interpolate_pos_encoding": True}),
    "IJepa": ("IJepaConfig", "IJepaModel", {}, {"interpolate_pos_encoding": True}),
    "Dinov2": ("Dinov2Config", "Dinov2Model", {}, {}),
    "Dinov2WithRegisters": ("Dinov2WithRegistersConfig", "Dinov2WithRegistersModel", {"num_register_tokens": 2}, {}),
    "DINOv3ViT": ("DINOv3ViTConfig", "DINOv3ViTModel", {"num_register_tokens": 2}, {}),
    "Beit": ("BeitConfig", "BeitModel", {"use_absolute_position_embeddings": True}, {"interpolate_pos_encoding": True}),
    "Beit-relative": ("BeitConfig", "BeitModel", {"use_absolute_position_embeddings": False,
                                                  "use_relative_position_bias": True}, {"interpolate_pos_encoding": True}),
    "Data2VecVision": ("Data2VecVisionConfig", "Data2VecVisionModel", {"use_absolute_position_embeddings": True},
                       {"interpolate_pos_encoding": True}),
    "Data2VecVision-relative": ("Data2VecVisionConfig", "Data2VecVisionModel", {"use_absolute_position_embeddings": False},
                                {"interpolate_pos_encoding": True}),
    "Aimv2Vision": ("Aimv2VisionConfig", "Aimv2VisionModel", {}, {}),  # native size only: it never resamples
    "DPT": ("DPTConfig", "DPTModel", {"is_hybrid": False}, {}),
    "CLIPVision": ("CLIPVisionConfig", "CLIPVisionModel", {}, {"interpolate_pos_encoding": True}),
    "MetaClip2Vision": ("MetaClip2VisionConfig", "MetaClip2VisionModel", {}, {"interpolate_pos_encoding": True}),
    "OwlViTVision": ("OwlViTVisionConfig", "OwlViTVisionModel", {}, {"interpolate_pos_encoding": True}),
    "SiglipVision": ("SiglipVisionConfig", "SiglipVisionModel", {}, {"interpolate_pos_encoding": True}),
    "BlipVision": ("BlipVisionConfig", "BlipVisionModel", {}, {"interpolate_pos_encoding": True}),
    # copies of CLIP's / OwlViT's / BLIP's embeddings in other models
    **{name: (f"{name}Config", f"{name}Model", {}, {"interpolate_pos_encoding": True}) for name in (
        "AltCLIPVision", "ChineseCLIPVision", "GitVision", "Owlv2Vision", "Blip2Vision", "InstructBlipVision",
        "InstructBlipVideoVision")},
    "CLIPSegVision": ("CLIPSegVisionConfig", "CLIPSegVisionModel", {}, {}),
}


def peer(family: str, seed: int = 0, **config_changes):
    """A tiny random-weight model of `family`; every parameter redrawn so zero-initialised tokens count."""
    import torch
    import transformers

    config_name, model_name, extra, _ = PEERS[family]
    args = dict(TINY, image_size=NATIVE[0], patch_size=8, num_channels=3, **extra)
    args.update(config_changes)
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(getattr(transformers, config_name)(**args)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape) * (0.2 if "weight" in name and p.ndim == 4 else 1.0))
    return model


def first_layer(model):
    """The first encoder layer: the first module whose class name ends in 'Layer'."""
    for module in model.modules():
        if type(module).__name__.endswith("Layer"):
            return module
    raise AssertionError(f"no encoder layer in {type(model).__name__}")


def peer_z0(model, x: np.ndarray, **forward_kwargs) -> np.ndarray:
    """What the model's first encoder layer receives for pixel_values x (ViTMAE: unshuffled noise)."""
    import torch

    seen = []

    def hook(module, args, kwargs):
        seen.append((args[0] if args else kwargs["hidden_states"]).detach().clone())

    handle = first_layer(model).register_forward_pre_hook(hook, with_kwargs=True)
    pixels = torch.from_numpy(x)
    if type(model).__name__.startswith("ViTMAE"):
        n = model.embeddings.patch_embeddings.num_patches if x.shape[2:] == NATIVE else \
            (x.shape[2] // 8) * (x.shape[3] // 8)
        forward_kwargs["noise"] = torch.arange(n, dtype=torch.float32).expand(x.shape[0], n)
    try:
        with torch.no_grad():
            model(pixel_values=pixels, **forward_kwargs)
    finally:
        handle.remove()
    return seen[0].numpy()


def images(hw, batch=2, seed=1):
    return np.random.default_rng(seed).standard_normal((batch, 3, *hw)).astype(np.float32)


CASES = [(family, NATIVE) for family in PEERS] + [  # no table: one other size shows "any size works"
    (family, hw) for family in PEERS if family != "Aimv2Vision"
    for hw in (OTHER_SIZES[1:] if family.endswith("-relative") else OTHER_SIZES)]


@pytest.mark.parametrize("family,hw", CASES, ids=[f"{f}-{h}x{w}" for f, (h, w) in CASES])
def test_family_z0_matches_the_peer(family, hw):
    model = peer(family)
    native = hw == NATIVE
    forward_kwargs = {} if native else PEERS[family][3]
    spec, weights = from_hf(model, interpolate_pos_encoding=None if native else True)
    assert spec.image_size == NATIVE and spec.input.preprocess is None
    x = images(hw)
    resampled = not native and spec.position_embedding.kind == "learned"
    assert_agrees(spec, weights, x, peer_z0(model, x, **forward_kwargs), resampled_in_float32=resampled)
    assert_backends_and_onnx(spec, weights, x, resampled)


def _same(a, b):
    (spec_a, w_a), (spec_b, w_b) = a, b
    assert spec_a.replace(name="x") == spec_b.replace(name="x")
    assert w_a.keys() == w_b.keys() and all(np.array_equal(w_a[k], w_b[k]) for k in w_a)


@pytest.mark.parametrize("family", list(PEERS))
def test_checkpoint_directory_imports_as_the_model_converts(tmp_path, family):
    # save_pretrained writes config.json + model.safetensors: what a downloaded model directory holds.
    model = peer(family)
    model.save_pretrained(str(tmp_path))
    _same(import_checkpoint(tmp_path / "model.safetensors", "hf"), from_hf(model))


@pytest.mark.parametrize("family", ["Dinov2WithRegisters", "CLIPVision", "SiglipVision", "DINOv3ViT", "Beit",
                                    "Aimv2Vision"])
def test_state_dict_back_to_the_family_reproduces_z0(family):
    import torch

    source = peer(family, seed=0)
    spec, weights = from_hf(source)
    target = peer(family, seed=1)
    state = to_hf_state_dict(spec, weights, family)
    missing, unexpected = target.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    assert not unexpected and not [k for k in missing if "embeddings." in k and "mask_token" not in k]
    x = images(NATIVE)
    assert np.array_equal(peer_z0(target, x), peer_z0(source, x))


def test_state_dict_back_refuses_what_the_family_lacks():
    spec, weights = from_hf(peer("Dinov2WithRegisters"))
    with pytest.raises(vitstem.SpecError, match=r"CLIPVision .* no register tokens, no patch bias, a LayerNorm"):
        to_hf_state_dict(spec, weights, "CLIPVision")
    with pytest.raises(vitstem.SpecError, match="unknown transformers family 'Swin'"):
        to_hf_state_dict(spec, weights, "Swin")
    weights = dict(weights, pos_embed=weights["pos_embed"] + 1.0)  # the registers now get a position
    with pytest.raises(vitstem.SpecError, match="no position for the register tokens"):
        to_hf_state_dict(spec, weights, "Dinov2WithRegisters")


def test_wrappers_give_the_bare_models_spec():
    import torch
    import transformers

    torch.manual_seed(0)
    vision = transformers.CLIPVisionConfig(**TINY, image_size=32, patch_size=8)
    clip = transformers.CLIPModel(transformers.CLIPConfig(
        vision_config=vision.to_dict(), text_config=dict(TINY, vocab_size=50))).eval()
    _same(from_hf(clip), from_hf(clip.vision_model))
    assert from_hf(clip)[0].pre_norm.eps == vision.layer_norm_eps
    classifier = transformers.Dinov2ForImageClassification(transformers.Dinov2Config(
        **TINY, image_size=32, patch_size=8, num_labels=3)).eval()
    _same(from_hf(classifier), from_hf(classifier.dinov2))
    siglip = transformers.SiglipForImageClassification(transformers.SiglipConfig(
        vision_config=dict(TINY, image_size=32, patch_size=8), text_config=dict(TINY, vocab_size=50), num_labels=3))
    _same(from_hf(siglip), from_hf(siglip.vision_model))
    # the embeddings module alone: the same stem without the pre-norm that sits beside it
    alone = from_hf(clip.vision_model.embeddings)[0]
    assert alone.pre_norm is None and alone.replace(name="x") == from_hf(clip)[0].replace(name="x", pre_norm=None)


def test_clip_image_processor_becomes_the_preprocessing():
    import torch
    from transformers import CLIPImageProcessor

    processor = CLIPImageProcessor()  # OpenAI CLIP mean/std, rescale 1/255
    model = peer("CLIPVision")
    spec, weights = from_hf(model, image_processor=processor)
    assert spec.input.preprocess.mean == tuple(processor.image_mean)
    pixels = np.random.default_rng(3).integers(0, 256, spec.input_shape(2), dtype=np.uint8)
    normalised = processor(images=list(torch.from_numpy(pixels)), do_resize=False, do_center_crop=False,
                           return_tensors="pt")["pixel_values"].numpy()
    assert_agrees(spec, weights, pixels, peer_z0(model, normalised))


def test_refusals_name_the_missing_feature():
    import transformers

    siglip2 = transformers.Siglip2VisionModel(transformers.Siglip2VisionConfig(**TINY, patch_size=8, num_patches=16))
    with pytest.raises(vitstem.SpecError, match=r"Siglip2Vision \(NaFlex\) \(Siglip2VisionModel\) cannot be converted: "
                                                "it embeds variable-length sequences"):
        from_hf(siglip2)
    with pytest.raises(vitstem.SpecError, match="Aimv2Vision adds its table without resampling"):
        from_hf(peer("Aimv2Vision"), interpolate_pos_encoding=True)
    hybrid = transformers.DPTModel(transformers.DPTConfig(**TINY, image_size=32, patch_size=8, is_hybrid=True))
    with pytest.raises(vitstem.SpecError, match=r"DPT \(hybrid\) \(DPTModel\) cannot be converted: .*hybrid stem"):
        from_hf(hybrid)
    with pytest.raises(vitstem.SpecError, match="ViTMAE with mask_ratio 0.75"):
        from_hf(peer("ViTMAE", mask_ratio=0.75))
    # no longer refused: the conv drops the 4 pixels past the last whole patch (input.remainder, issue 18)
    spec, _ = from_hf(peer("SiglipVision", image_size=36))
    assert spec.input.remainder == "drop" and spec.patch_grid() == (4, 4)


def test_cli_imports_a_model_directory_with_its_processor(tmp_path):
    import subprocess
    import sys

    import torch
    from transformers import CLIPImageProcessor

    model = peer("CLIPVision")
    processor = CLIPImageProcessor(image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.25, 0.3])
    model.save_pretrained(str(tmp_path / "clip"))
    processor.save_pretrained(str(tmp_path / "clip"))
    result = subprocess.run([sys.executable, "-m", "vitstem", "import", str(tmp_path / "clip"), "--format", "hf",
                             "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    spec = vitstem.load_spec(tmp_path / "out" / "spec.yaml")
    _same((spec, vitstem.load_weights(tmp_path / "out" / "weights.safetensors", spec)),
          from_hf(model, image_processor=processor))
    assert spec.pre_norm.eps == model.config.layer_norm_eps and not spec.patch_bias
    pixels = np.random.default_rng(4).integers(0, 256, spec.input_shape(2), dtype=np.uint8)
    normalised = processor(images=list(torch.from_numpy(pixels)), do_resize=False, do_center_crop=False,
                           return_tensors="pt")["pixel_values"].numpy()
    weights = vitstem.load_weights(tmp_path / "out" / "weights.safetensors", spec)
    assert_agrees(spec, weights, pixels, peer_z0(model, normalised))
    result = subprocess.run([sys.executable, "-m", "vitstem", "import", str(tmp_path), "--format", "hf",
                             "-o", str(tmp_path / "o2")], capture_output=True, text=True)
    assert result.returncode == 2 and "has no model.safetensors" in result.stderr


@pytest.mark.parametrize("family", ["Dinov2", "SiglipVision"])
def test_checkpoint_at_another_size_resamples_as_the_family(tmp_path, family):
    model = peer(family)
    model.save_pretrained(str(tmp_path))
    spec, weights = import_checkpoint(tmp_path, "hf", image_size=(24, 40))
    assert spec.dynamic_image_size and spec.pos_grid == (4, 4)
    x = images((24, 40))
    assert_agrees(spec, weights, x, peer_z0(model, x, **PEERS[family][3]), resampled_in_float32=True)


def test_checkpoint_refusals_name_the_problem(tmp_path):
    import json

    model = peer("SiglipVision")
    model.save_pretrained(str(tmp_path))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_processor_type": "SiglipImageProcessor",
                                                                   "do_normalize": True}))
    with pytest.raises(vitstem.SpecError, match="SiglipImageProcessor preprocessor config gives no image_mean"):
        import_checkpoint(tmp_path, "hf")
    assert import_checkpoint(tmp_path, "hf", preprocess=None)[0].input.preprocess is None
    (tmp_path / "model.safetensors").rename(tmp_path / "model-00001-of-00001.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text("{}")
    with pytest.raises(vitstem.SpecError, match="sharded checkpoint"):
        import_checkpoint(tmp_path, "hf")


@pytest.mark.parametrize("family", ["SiglipVision", "Dinov2"])
def test_image_size_not_a_multiple_of_the_patch_drops_as_the_peer(family):
    """so400m/14 at 384 in miniature: 36 px with patch 8 leaves 4 pixel rows and columns the conv drops."""
    model = peer(family, image_size=36)
    spec, weights = from_hf(model)
    assert spec.input.remainder == "drop" and spec.patch_grid() == (4, 4)
    x = images((36, 36))
    assert_agrees(spec, weights, x, peer_z0(model, x), resampled_in_float32=False)
    assert_backends_and_onnx(spec, weights, x, resampled=False)
