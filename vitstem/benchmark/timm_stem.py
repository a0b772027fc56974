"""timm's ViT stem as the peer: `patch_embed` -> `_pos_embed` -> `norm_pre` of a timm
VisionTransformer (depth 0, random init, never downloaded) carrying the spec's weights.

The wrapper also applies the spec's input layout and preprocessing in torch ops, so every
candidate of the benchmark maps the same pixels to the same z0 (imports torch and timm).
"""

from __future__ import annotations

from functools import partial
from typing import Mapping

import numpy as np
import timm
import torch
from torch import nn

from ..spec import Spec
from ..spec.position import position_table


def timm_unsupported(spec: Spec) -> str | None:
    """Why timm's VisionTransformer cannot express `spec`, or None when it can."""
    if spec.prefix.dist_token:
        return "timm's VisionTransformer has no distillation token (that is VisionTransformerDistilled)"
    if spec.pre_norm is not None and spec.patch_bias:
        return "timm drops the patch bias whenever pre_norm is on"
    return None


class TimmStem(nn.Module):
    """pixels in the spec's layout -> z0, through timm's own stem code."""

    def __init__(self, spec: Spec, weights: Mapping[str, np.ndarray]):
        super().__init__()
        reason = timm_unsupported(spec)
        if reason:
            raise ValueError(reason)
        pe = spec.position_embedding
        kinds = {"layer_norm": nn.LayerNorm, "rms_norm": timm.layers.RmsNorm}
        pre, patch = spec.pre_norm, spec.patch_norm
        norm_layer = partial(kinds[pre.kind], eps=pre.eps) if pre is not None else partial(nn.LayerNorm, eps=1e-6)
        embed_norm = {} if patch is None else {"embed_norm_layer": partial(kinds[patch.kind], eps=patch.eps)}
        self.vit = timm.models.vision_transformer.VisionTransformer(
            img_size=spec.image_size, patch_size=spec.patch_size, in_chans=spec.in_channels,
            embed_dim=spec.embed_dim, depth=0, num_heads=1, num_classes=0, global_pool="",
            class_token=spec.prefix.class_token, reg_tokens=spec.prefix.register_tokens,
            no_embed_class=not pe.covers_prefix, pre_norm=spec.pre_norm is not None,
            pos_embed="none" if pe.kind == "none" else "learn", norm_layer=norm_layer, **embed_norm)
        self.nhwc = spec.input.layout == "NHWC"
        pre = spec.input.preprocess
        self.preprocess = pre is not None
        if pre is not None:
            self.scale = float(pre.scale)
            self.register_buffer("mean", torch.tensor(pre.mean, dtype=torch.float32).reshape(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(pre.std, dtype=torch.float32).reshape(1, -1, 1, 1))
        self._load(spec, weights)
        self.eval()

    @torch.no_grad()
    def _load(self, spec: Spec, weights: Mapping[str, np.ndarray]) -> None:
        vit = self.vit
        vit.patch_embed.proj.weight.copy_(torch.from_numpy(weights["patch_embed.weight"]))
        if vit.patch_embed.proj.bias is not None:  # timm has a bias where the spec may not: keep it zero
            bias = weights.get("patch_embed.bias", np.zeros(spec.embed_dim, np.float32))
            vit.patch_embed.proj.bias.copy_(torch.from_numpy(bias))
        if vit.cls_token is not None:
            vit.cls_token.copy_(torch.from_numpy(weights["cls_token"]))
        if vit.reg_token is not None:
            vit.reg_token.copy_(torch.from_numpy(weights["reg_tokens"]))
        if vit.pos_embed is not None:  # a sin-cos table is a fixed learned table of the same shape
            prefix, patches = position_table(spec, weights, spec.patch_grid())
            table = np.concatenate([prefix, patches]).astype(np.float32)[None]
            vit.pos_embed.copy_(torch.from_numpy(table))
        for prefix, module in (("norm_pre", vit.norm_pre), ("patch_embed.norm", vit.patch_embed.norm)):
            for name in ("weight", "bias"):
                if f"{prefix}.{name}" in weights:
                    getattr(module, name).copy_(torch.from_numpy(weights[f"{prefix}.{name}"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        if self.preprocess:
            x = (x * self.scale - self.mean) / self.std
        x = self.vit.patch_embed(x)
        x = self.vit._pos_embed(x)
        x = self.vit.patch_drop(x)
        return self.vit.norm_pre(x)
