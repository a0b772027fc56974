"""timm's other ViT families (Eva, Beit, Cait, ConVit, VisionTransformerRelPos, VisionTransformerSAM,
Qwen3VitEncoder, DeepseekVitEncoder, Gemma4VitEncoder) -> from_timm -> our z0 equals the tensor the peer feeds its first block.

Peers are tiny random models (depth 1, nothing downloaded). The peer's z0 is captured with a forward
pre-hook on blocks[0] while the model runs its own forward_features, so nothing of timm's stem is
re-implemented here. Each case checks: every fast backend within the bound of the exact reference
(assert_agrees), the exact profile bit-identical on NumPy, PyTorch and TensorFlow, and the exported
ONNX graph in ONNX Runtime within the bound; at the native size and, for families that resample,
at two other sizes, one non-square.
"""

import numpy as np
import pytest

import vitstem
from support.export_cases import run_ort
from support.reference import assert_agrees
from support.timm_peers import FAMILY_ARGS as BASE, PEERS, eva as _eva, family as _family, first_block_input
from support.timm_peers import random_stem as _random_stem
from vitstem.backends.numpy.bound import fast_error_bound
from vitstem.interop import from_timm

OTHER_SIZES = [(48, 48), (24, 40)]  # for families that resample: larger square and smaller non-square


def _images(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def assert_peer_everywhere(spec, weights, model, x, resampled: bool) -> None:
    """Fast backends within the bound, exact bit-identical across backends, ONNX Runtime within the bound."""
    from vitstem.export import build_onnx

    assert_agrees(spec, weights, x, first_block_input(model, x), resampled_in_float32=resampled)
    exact = vitstem.forward(spec, weights, x, profile="exact")
    for backend in ("torch", "tensorflow"):
        assert np.array_equal(vitstem.forward(spec, weights, x, backend=backend, profile="exact"), exact), backend
    onnx_model = build_onnx(spec, weights, image_size="dynamic" if spec.dynamic_image_size else "fixed")
    bound = fast_error_bound(spec, weights, x, resampled_in_float32=resampled)
    assert np.all(np.abs(run_ort(onnx_model, x).astype(np.float64) - exact) <= bound)


@pytest.mark.slow
@pytest.mark.parametrize("peer", sorted(PEERS))
def test_family_z0_matches_the_first_block_input(peer):
    model = _random_stem(PEERS[peer]())
    spec, weights = from_timm(model, preprocess=None)
    sizes = [spec.image_size] + (OTHER_SIZES if spec.dynamic_image_size else [])
    for size in sizes:
        x = _images((2, 3, *size))
        grid = (size[0] // spec.patch_size[0], size[1] // spec.patch_size[1])
        resampled = spec.position_embedding.kind == "learned" and tuple(spec.pos_grid) != grid
        assert_peer_everywhere(spec, weights, model, x, resampled)


def test_family_facts_are_read_from_the_model():
    facts = {}
    for peer in ("eva_cls_reg_rope_dynamic", "eva_no_embed_class_pre_norm", "cait", "convit_cls_first",
                 "convit_cls_late", "sam_pre_norm", "beit_shared_rel_pos_only"):
        spec, _ = from_timm(_random_stem(PEERS[peer]()), preprocess=None)
        pe = spec.position_embedding
        facts[peer] = (spec.prefix_tokens, pe.kind, pe.covers_prefix, spec.pre_norm is not None, spec.patch_bias,
                       spec.dynamic_image_size)
    assert facts == {
        "eva_cls_reg_rope_dynamic": (("cls_token", "reg_tokens[0]", "reg_tokens[1]"), "learned", True, False, True, True),
        "eva_no_embed_class_pre_norm": (("cls_token", "reg_tokens[0]", "reg_tokens[1]", "reg_tokens[2]"), "learned",
                                        False, True, False, False),
        "cait": ((), "learned", False, False, True, False),  # the class token joins after every block
        "convit_cls_first": (("cls_token",), "learned", False, False, True, False),
        "convit_cls_late": ((), "learned", False, False, True, False),
        "sam_pre_norm": ((), "learned", False, True, False, True),
        "beit_shared_rel_pos_only": (("cls_token",), "none", True, False, True, False),
    }


def test_eva_preprocessing_from_pretrained_cfg_on_uint8_pixels():
    import timm
    import torch

    model = _random_stem(timm.create_model("eva02_tiny_patch14_224", pretrained=False, img_size=28, depth=1,
                                           num_classes=0))
    spec, weights = from_timm(model)
    cfg = model.pretrained_cfg
    assert spec.input.preprocess.mean == tuple(cfg["mean"]) and spec.input.preprocess.std == tuple(cfg["std"])
    pixels = np.random.default_rng(2).integers(0, 256, spec.input_shape(2), dtype=np.uint8)
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    normalised = ((torch.from_numpy(pixels).float() / 255 - mean) / std).numpy()
    assert_agrees(spec, weights, pixels, first_block_input(model, normalised))


def test_refusals_name_the_missing_feature():
    import timm
    from timm.models.naflexvit import NaFlexVit

    cases = {
        "HybridEmbed: a CNN backbone": _family("convit.ConVit", hybrid_backbone=timm.create_model(
            "resnet10t", pretrained=False, features_only=True, out_indices=[2])),
        "variable-length, variable-aspect patch sequences": NaFlexVit(**BASE),
        "patch_drop drops tokens in training mode": _eva(patch_drop_rate=0.5).train(),
        "_pos_embed is overridden": type("MyEva", (timm.models.eva.Eva,), {"_pos_embed": lambda self, x: x})(**BASE),
    }
    for reason, model in cases.items():
        with pytest.raises(vitstem.SpecError, match=reason):
            from_timm(model)


def test_gemma4_in_model_rescale_is_folded_into_the_preprocessing():
    model = _random_stem(PEERS["gemma4_encoder_fixed_size"]())
    floats, _ = from_timm(model, preprocess=None)  # the model's own input: [0, 1] floats, rescaled 2x - 1
    assert (floats.input.preprocess.scale, floats.input.preprocess.mean, floats.input.preprocess.std) == (
        2.0, (1.0,) * 3, (1.0,) * 3)
    assert not floats.dynamic_image_size and floats.image_size == (32, 48)
    spec, weights = from_timm(model)  # pretrained_cfg: pixels / 255 with mean 0, std 1 before the model
    pixels = np.random.default_rng(4).integers(0, 256, spec.input_shape(2), dtype=np.uint8)
    assert_agrees(spec, weights, pixels, first_block_input(model, pixels.astype(np.float32) / np.float32(255)))
