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
from export_cases import run_ort
from test_interop_agreement import assert_agrees
from vitstem.backends.numpy.bound import fast_error_bound
from vitstem.interop import from_hf, import_checkpoint, to_hf_state_dict

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
    "CLIPVision": ("CLIPVisionConfig", "CLIPVisionModel", {}, {"interpolate_pos_encoding": True}),
    "MetaClip2Vision": ("MetaClip2VisionConfig", "MetaClip2VisionModel", {}, {"interpolate_pos_encoding": True}),
    "OwlViTVision": ("OwlViTVisionConfig", "OwlViTVisionModel", {}, {"interpolate_pos_encoding": True}),
    "SiglipVision": ("SiglipVisionConfig", "SiglipVisionModel", {}, {"interpolate_pos_encoding": True}),
    "BlipVision": ("BlipVisionConfig", "BlipVisionModel", {}, {"interpolate_pos_encoding": True}),
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


def assert_backends_and_onnx(spec, weights, x, resampled: bool) -> None:
    """Exact z0 bit-identical on every backend and in ONNX; fast ONNX within the bound."""
    from vitstem.export import build_onnx

    exact = vitstem.forward(spec, weights, x, profile="exact")
    for backend in ("torch", "tensorflow"):
        ours = vitstem.forward(spec, weights, x, backend=backend, profile="exact")
        assert np.array_equal(ours, exact), f"{backend} exact differs in {(ours != exact).sum()} elements"
    size = [tuple(x.shape[2:])] if spec.dynamic_image_size else "fixed"
    onnx_exact = run_ort(build_onnx(spec, weights, profile="exact", image_size=size), x)
    assert np.array_equal(onnx_exact, exact), f"ONNX exact differs in {(onnx_exact != exact).sum()} elements"
    onnx_fast = run_ort(build_onnx(spec, weights, image_size=size), x)
    bound = fast_error_bound(spec, weights, x, resampled_in_float32=resampled)
    assert np.all(np.abs(onnx_fast - exact) <= bound)


CASES = [(family, NATIVE) for family in PEERS] + [
    (family, hw) for family in PEERS if family != "Beit-relative" for hw in OTHER_SIZES]


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
