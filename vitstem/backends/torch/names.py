"""Canonical weight names <-> timm VisionTransformer state_dict keys (no torch import, so anyone can use it)."""

from __future__ import annotations

from typing import Mapping

# Canonical name -> timm key; every other canonical name is the same in timm. The VitStem module's
# state_dict uses the timm keys, so a timm ViT's state dict loads into it with strict=False.
TIMM_NAMES: dict[str, str] = {
    "patch_embed.weight": "patch_embed.proj.weight",
    "patch_embed.bias": "patch_embed.proj.bias",
    "patch_embed.norm.weight": "patch_embed.norm.weight",
    "patch_embed.norm.bias": "patch_embed.norm.bias",
    "cls_token": "cls_token",
    "dist_token": "dist_token",
    "reg_tokens": "reg_token",
    "pos_embed": "pos_embed",
    "norm_pre.weight": "norm_pre.weight",
    "norm_pre.bias": "norm_pre.bias",
}
CANONICAL_NAMES: dict[str, str] = {timm: canonical for canonical, timm in TIMM_NAMES.items()}


def to_timm_names(weights: Mapping[str, object]) -> dict[str, object]:
    """Canonical weights renamed to timm keys (values untouched; the shapes are the same in both)."""
    return {TIMM_NAMES[name]: value for name, value in weights.items()}


def from_timm_names(state: Mapping[str, object]) -> dict[str, object]:
    """The stem entries of a timm state dict under canonical names; encoder and head keys are dropped."""
    return {CANONICAL_NAMES[key]: value for key, value in state.items() if key in CANONICAL_NAMES}
