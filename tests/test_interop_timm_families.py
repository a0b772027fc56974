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
from export_cases import run_ort
from test_interop_agreement import assert_agrees
from test_interop_timm import _random_stem
from vitstem.backends.numpy.bound import fast_error_bound
from vitstem.interop import from_timm

BASE = dict(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=0)


def _eva(**kw):
    from timm.models.eva import Eva

    return Eva(**{**BASE, **kw})


def _family(cls_path, **kw):
    import importlib

    module, name = cls_path.rsplit(".", 1)
    args = {**BASE, **kw}
    if name.endswith("Encoder"):  # VLM towers have no classifier
        del args["num_classes"]
    return getattr(importlib.import_module(f"timm.models.{module}"), name)(**args)


def _rms_norm():
    from timm.layers import RmsNorm

    return RmsNorm


def _gemma4(**kw):
    """Gemma 4 fixes no size itself: the converter reads pretrained_cfg's input_size (as registered models have)."""
    model = _family("gemma4_vit.Gemma4VitEncoder", **kw)
    model.pretrained_cfg = {"input_size": (3, *kw["img_size"]), "mean": (0.0,) * 3, "std": (1.0,) * 3}
    return model


PEERS = {  # name -> (builder, other sizes to run when the family resamples)
    "eva_cls_reg_rope_dynamic": lambda: _eva(num_reg_tokens=2, use_rot_pos_emb=True, dynamic_img_size=True),
    "eva_no_embed_class_pre_norm": lambda: _eva(num_reg_tokens=3, no_embed_class=True, use_pre_transformer_norm=True,
                                                img_size=(24, 40), patch_size=(8, 4)),
    "eva_rms_pre_norm": lambda: _eva(use_pre_transformer_norm=True, norm_layer=_rms_norm()),
    "eva_rope_only_no_cls": lambda: _eva(class_token=False, global_pool="avg", use_abs_pos_emb=False,
                                         use_rot_pos_emb=True, dynamic_img_size=True),
    "beit_abs_pos": lambda: _family("beit.Beit", use_abs_pos_emb=True, use_rel_pos_bias=True),
    "beit_shared_rel_pos_only": lambda: _family("beit.Beit", use_abs_pos_emb=False, use_shared_rel_pos_bias=True),
    "cait": lambda: _family("cait.Cait", depth_token_only=1),
    "convit_cls_late": lambda: _family("convit.ConVit", local_up_to_layer=1),
    "convit_cls_first": lambda: _family("convit.ConVit", local_up_to_layer=0),
    "relpos_cls": lambda: _family("vision_transformer_relpos.VisionTransformerRelPos", class_token=True,
                                  global_pool="token"),
    "relpos_no_cls": lambda: _family("vision_transformer_relpos.VisionTransformerRelPos"),
    "qwen3_encoder_table_3x3": lambda: _family("qwen3_vit.Qwen3VitEncoder", pos_embed_grid_size=3),
    "deepseek_encoder_rope_only": lambda: _family("deepseek_vit.DeepseekVitEncoder", global_pool="avg"),
    "gemma4_encoder_fixed_size": lambda: _gemma4(img_size=(32, 48), position_embedding_size=8, global_pool="avg"),
    "sam_pre_norm": lambda: _family("vision_transformer_sam.VisionTransformerSAM", pre_norm=True, neck_chans=0,
                                    window_size=2, use_rel_pos=True, img_size=(32, 48)),
}
OTHER_SIZES = [(48, 48), (24, 40)]  # for families that resample: larger square and smaller non-square


def first_block_input(model, x: np.ndarray) -> np.ndarray:
    """The tensor model.forward_features feeds blocks[0], as (B, tokens, D) (SAM's NHWC grid row-major)."""
    import torch

    seen = []
    hook = model.blocks[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    try:
        with torch.no_grad():
            model.forward_features(torch.from_numpy(x))
    finally:
        hook.remove()
    z = seen[0]
    return z.reshape(z.shape[0], -1, z.shape[-1]).numpy()


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
