"""Presets: spec documents for well-known stems, named as timm names the models.

Each preset is a plain mapping (what a user would write in YAML); `load_spec(name)` validates it.
"""

from __future__ import annotations

from .model import SPEC_VERSION
from .vocabulary import Layout

NCHW, NHWC = Layout.NCHW.value, Layout.NHWC.value  # plain strings: a preset is what a user would write

DEFAULT_PRESET = "vit_base_patch16_224"

INCEPTION = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}  # timm ViT (augreg), SigLIP
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}  # DeiT, DINOv2
CLIP = {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}

WIDTHS = {"tiny": 192, "small": 384, "base": 768, "large": 1024, "huge": 1280}
# timm's patch-14 ViTs run at 224 and 336 (384 is not a multiple of 14; see so400m below for one that does).
SIZES = {14: (224, 336), 16: (224, 384), 32: (224, 384)}


def _vit(name, *, image, patch, dim, norm=INCEPTION, **extra) -> dict:
    doc = {
        "spec_version": SPEC_VERSION,
        "name": name,
        "image_size": [image, image] if isinstance(image, int) else list(image),
        "in_channels": 3,
        "patch_size": [patch, patch],
        "embed_dim": dim,
        "input": {"layout": NCHW, "preprocess": {"scale": 1 / 255, **norm}},
        "resample": {"policy": "timm"},
    }
    doc.update(extra)
    return doc


def _build_presets() -> dict[str, dict]:
    presets = {}
    for size, dim in WIDTHS.items():
        for patch, images in SIZES.items():
            for image in images:
                name = f"vit_{size}_patch{patch}_{image}"
                presets[name] = _vit(name, image=image, patch=patch, dim=dim)
    extra = [
        # DeiT distilled: [cls, dist, patches], the table covers both prefix tokens.
        _vit("deit_base_distilled_patch16_224", image=224, patch=16, dim=768, norm=IMAGENET,
             prefix={"class_token": True, "dist_token": True}),
        # DINOv2 with registers: no_embed_class (table of 37x37 patches only), 4 registers after cls.
        _vit("vit_base_patch14_reg4_dinov2", image=518, patch=14, dim=768, norm=IMAGENET,
             prefix={"class_token": True, "register_tokens": 4},
             position_embedding={"kind": "learned", "covers_prefix": False}, dynamic_image_size=True),
        # CLIP: no patch bias, LayerNorm ln_pre over z0.
        _vit("vit_base_patch16_clip_224", image=224, patch=16, dim=768, norm=CLIP,
             patch_bias=False, pre_norm={"eps": 1e-5}),
        # SigLIP: no class token; the table covers the patches only.
        _vit("vit_base_patch16_siglip_224", image=224, patch=16, dim=768,
             prefix={"class_token": False}, position_embedding={"kind": "learned", "covers_prefix": False}),
        # SigLIP so400m/14 (timm vit_so400m_patch14_siglip_224 / _384): no class token, table of patches only.
        # 384 is not a multiple of 14: the strided conv uses 27 x 14 = 378 pixels and drops 6 rows and columns.
        *(_vit(f"vit_so400m_patch14_siglip_{image}", image=image, patch=14, dim=1152,
               prefix={"class_token": False}, position_embedding={"kind": "learned", "covers_prefix": False},
               **({"input": {"layout": NCHW, "remainder": "drop",
                             "preprocess": {"scale": 1 / 255, **INCEPTION}}} if image % 14 else {}))
          for image in (224, 384)),
        # MAE: fixed 2-D sin-cos table with a zero row for the class token.
        _vit("mae_vit_base_patch16_224", image=224, patch=16, dim=768, norm=IMAGENET,
             position_embedding={"kind": "sincos2d", "sincos_convention": "mae", "covers_prefix": True}),
        # big_vision ViT-S/16 (gap head): no class token, fixed sin-cos, NHWC, x/127.5 - 1.
        _vit("big_vision_vit_s16_sincos_224", image=224, patch=16, dim=384,
             prefix={"class_token": False},
             position_embedding={"kind": "sincos2d", "sincos_convention": "big_vision", "covers_prefix": False},
             input={"layout": NHWC, "preprocess": {"scale": 1 / 127.5, "mean": [1.0] * 3, "std": [1.0] * 3}},
             resample={"policy": "big_vision"}),
        # A tiny stem for tests and golden vectors: every prefix token, non-square everything.
        {"spec_version": SPEC_VERSION, "name": "vitstem_tiny_test", "image_size": [12, 16], "in_channels": 3,
         "patch_size": [4, 2], "embed_dim": 8,
         "prefix": {"class_token": True, "dist_token": True, "register_tokens": 2},
         "position_embedding": {"kind": "learned", "covers_prefix": True},
         "input": {"layout": NCHW, "preprocess": None}, "resample": {"policy": "timm"},
         "dynamic_image_size": True},
    ]
    presets.update({doc["name"]: doc for doc in extra})
    return presets


PRESETS: dict[str, dict] = _build_presets()


def preset_names() -> list[str]:
    return sorted(PRESETS)
