"""timm's ViT-family classes other than VisionTransformer -> (spec, weights), or a specific refusal.

z0 is the tensor each class's own `forward_features` feeds its first block (`blocks[0]`), in eval
mode (dropouts are the identity). Read from timm 1.0.31's sources:
- Eva (EVA02, DINOv3, PE, ...): patch_embed -> [cls; registers; patches] (+ pos_embed, before or after
  the concat as `no_embed_class` says) -> norm_pre. RoPE is applied to q and k inside attention, so
  it is not part of z0 (a model without `use_abs_pos_emb` has no position in z0 at all). With
  `dynamic_img_size` the table goes through `resample_abs_pos_embed` (the `timm` policy).
- Beit: [cls; patches] + pos_embed (covers cls, optional); relative position bias is in attention.
- Cait: patches + pos_embed. The class token is not in z0: it only enters the class-attention blocks
  (`blocks_token_only`) after all of `blocks`, as the query; its weight is not part of the stem.
- ConVit: patches (+ pos_embed). The class token is prepended before block `local_up_to_layer`, so it
  is in z0 (with no position) only when that is 0.
- VisionTransformerRelPos: [cls; patches], no absolute table (relative positions are in attention).
- Qwen3VitEncoder (Qwen3-VL towers; Qwen3VitClassifier wraps one as `encoder`): patches + a learned
  square table (pos_embed_grid_size, 48) resampled bilinearly with align_corners to every other grid
  (`resample_pos_embed_grid`): the `big_vision` policy's matrices; RoPE in attention, no prefix.
- DeepseekVitEncoder (and DeepseekVitClassifier's `encoder`): patches only; RoPE is its only position.
- Gemma4VitEncoder (and Gemma4VitClassifier's `encoder`): see timm_gemma4.py (fixed size only).
- VisionTransformerSAM: patches (B, gh, gw, D) + pos_embed (1, gh, gw, D) -> norm_pre, NHWC token
  grid; z0 is that tensor flattened row-major to (B, gh*gw, D). Other sizes (its PatchEmbed is not
  strict) resample the table with `resample_abs_pos_embed_nhwc`: the same call as the `timm` policy.
"""

from __future__ import annotations

import numpy as np

from ..spec import Spec
from .assemble import assemble, checked_preprocess
from .timm import _is_identity, _norm, _refuse, _remainder, check_patch_embed, pretrained_cfg_preprocess

# Classes whose stem the spec cannot express, with the feature that is missing.
UNSUPPORTED = {
    "NaFlexVit": "NaFlex embeds variable-length, variable-aspect patch sequences with per-patch coordinates; "
                 "the spec has one fixed patch grid per image",
}


def _table_rows(model, pos, rows: int) -> None:
    if pos is not None and pos.shape[1] != rows:
        _refuse(model, f"pos_embed has {pos.shape[1]} rows; {rows} expected")


def _no_training_drop(model, drop) -> None:
    if model.training and drop is not None and not _is_identity(drop):
        _refuse(model, "patch_drop drops tokens in training mode; call model.eval() first")


def _norm_pre(model):
    norm = getattr(model, "norm_pre", None)
    return None if norm is None else _norm(model, norm, "norm_pre")


def _eva(model) -> dict:
    pe = model.patch_embed
    _no_training_drop(model, model.patch_drop)
    covered = 0 if model.no_embed_class else model.num_prefix_tokens
    _table_rows(model, model.pos_embed, covered + pe.num_patches)
    return dict(cls=model.cls_token, reg=model.reg_token, pos=model.pos_embed, covers_prefix=not model.no_embed_class,
                pre_norm=_norm_pre(model), dynamic_image_size=bool(model.dynamic_img_size))


def _beit(model) -> dict:
    _table_rows(model, model.pos_embed, 1 + model.patch_embed.num_patches)
    return dict(cls=model.cls_token, pos=model.pos_embed)


def _cait(model) -> dict:
    _table_rows(model, model.pos_embed, model.patch_embed.num_patches)
    return dict(pos=model.pos_embed)  # cls_token joins only in blocks_token_only, after every block


def _convit(model) -> dict:
    pos = model.pos_embed if model.use_pos_embed else None
    _table_rows(model, pos, model.patch_embed.num_patches)
    cls_first = model.local_up_to_layer == 0 and model.cls_token is not None
    return dict(cls=model.cls_token if cls_first else None, pos=pos, covers_prefix=False)


def _relpos(model) -> dict:
    return dict(cls=model.cls_token)


def _sam(model) -> dict:
    pe = model.patch_embed
    _no_training_drop(model, model.patch_drop)
    pos = model.pos_embed
    if pos is not None:
        if tuple(pos.shape[1:3]) != tuple(pe.grid_size):
            _refuse(model, f"pos_embed is a {tuple(pos.shape[1:3])} grid; patch_embed's grid is {tuple(pe.grid_size)}")
        pos = pos.reshape(1, -1, pos.shape[-1])  # NHWC grid -> rows in the patches' row-major order
    return dict(pos=pos, pre_norm=_norm_pre(model), dynamic_image_size=not pe.strict_img_size)


def _qwen3(model) -> dict:
    side = model.pos_embed_grid_size
    _table_rows(model, model.pos_embed, side * side)
    # resample_pos_embed_grid: F.interpolate(bilinear, align_corners=True) from the square table to every
    # other grid, the identity at its own: the big_vision policy's matrices (linear, corner-aligned).
    return dict(pos=model.pos_embed, pos_grid=(side, side), resample="big_vision",
                dynamic_image_size=not model.patch_embed.strict_img_size)


def _deepseek(model) -> dict:
    return dict(dynamic_image_size=not model.patch_embed.strict_img_size)  # RoPE only: no table in z0


# (module, class, the methods whose code was read, reader)
FAMILIES = (
    ("timm.models.eva", "Eva", ("forward_features", "_pos_embed"), _eva),
    ("timm.models.beit", "Beit", ("forward_features",), _beit),
    ("timm.models.cait", "Cait", ("forward_features",), _cait),
    ("timm.models.convit", "ConVit", ("forward_features",), _convit),
    ("timm.models.vision_transformer_relpos", "VisionTransformerRelPos", ("forward_features",), _relpos),
    ("timm.models.vision_transformer_sam", "VisionTransformerSAM", ("forward_features",), _sam),
    ("timm.models.qwen3_vit", "Qwen3VitEncoder", ("forward_features", "_pos_embed"), _qwen3),
    ("timm.models.deepseek_vit", "DeepseekVitEncoder", ("forward_features", "_pos_embed"), _deepseek),
)
# Wrappers whose forward_features is their encoder's: the stem is the encoder's.
WRAPPERS = {"Qwen3VitClassifier": "timm.models.qwen3_vit", "DeepseekVitClassifier": "timm.models.deepseek_vit",
            "Gemma4VitClassifier": "timm.models.gemma4_vit"}


def family_of(model):
    """(class name, reader) of the timm family `model` belongs to, or a SpecError naming what is missing."""
    import importlib

    for module, class_name, methods, reader in FAMILIES:
        cls = getattr(importlib.import_module(module), class_name)
        if isinstance(model, cls):
            for method in methods:
                if getattr(type(model), method) is not getattr(cls, method):
                    _refuse(model, f"its {method} is overridden by {type(model).__name__}")
            return class_name, reader
    reason = UNSUPPORTED.get(type(model).__name__)
    if reason is None:
        known = ", ".join(["VisionTransformer", *(f[1] for f in FAMILIES)])
        reason = f"not one of the timm classes whose stem vitstem reads ({known})"
    _refuse(model, reason)


def from_timm_family(model, *, preprocess="auto", name: str | None = None) -> tuple[Spec, dict[str, np.ndarray]]:
    """(spec, canonical weights) reproducing the z0 a timm Eva/Beit/Cait/ConVit/RelPos/SAM feeds its first block."""
    wrapper = model
    stem_model = stem_module(model)
    cfg = getattr(wrapper, "pretrained_cfg", None) or {}
    from timm.models.gemma4_vit import Gemma4PatchEmbed, Gemma4VitEncoder

    if isinstance(stem_model, Gemma4VitEncoder):  # its own patch embedding: see timm_gemma4.py
        for owner, method in ((Gemma4VitEncoder, "forward_features"), (Gemma4VitEncoder, "_encode"),
                              (Gemma4PatchEmbed, "forward")):
            if getattr(type(stem_model if owner is Gemma4VitEncoder else stem_model.patch_embed), method) \
                    is not getattr(owner, method):
                _refuse(stem_model, f"its {method} is overridden")
        from .timm_gemma4 import from_gemma4

        return from_gemma4(stem_model, cfg, preprocess=preprocess, name=name)
    _, reader = family_of(stem_model)
    pe = stem_model.patch_embed
    check_patch_embed(stem_model, pe)
    facts = dict(cls=None, reg=None, pos=None, covers_prefix=True, pre_norm=None, dynamic_image_size=False,
                 resample="timm", patch_norm=_norm(stem_model, pe.norm, "patch_embed.norm"),
                 remainder=_remainder(pe))
    facts.update(reader(stem_model))
    return assemble(name=name or cfg.get("architecture") or f"timm_{type(wrapper).__name__.lower()}",
                    kernel=pe.proj.weight, bias=pe.proj.bias, image_size=tuple(pe.img_size),
                    preprocess=pretrained_cfg_preprocess(cfg) if preprocess == "auto"
                    else checked_preprocess(preprocess, pe.proj.in_channels), **facts)


def stem_module(model):
    """The module that owns the stem: `model`, or a VLM classifier's `encoder`."""
    import importlib

    module = WRAPPERS.get(type(model).__name__)
    if module is None:
        return model
    wrapper_class = getattr(importlib.import_module(module), type(model).__name__)
    if type(model).forward_features is not wrapper_class.forward_features:
        _refuse(model, f"its forward_features is overridden by {type(model).__name__}")
    return model.encoder
