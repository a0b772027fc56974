"""timm's ViT stem as the peer: `patch_embed` -> `_pos_embed` -> `norm_pre` of a timm VisionTransformer
(depth 0, never downloaded) built and loaded by vitstem.interop (`timm_model_args`, `to_timm_state_dict`),
so the benchmark and the converter share one rule for what timm can express.

The wrapper applies the spec's input layout and preprocessing in torch ops, so every candidate maps
the same pixels to the same z0 (imports torch and timm).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import nn

from vitstem.interop import timm_model_args, to_timm_state_dict
from vitstem.spec import Spec
from vitstem.spec.vocabulary import Layout


class TimmStem(nn.Module):
    """pixels in the spec's layout -> z0, through timm's own stem code (SpecError if timm cannot express it)."""

    def __init__(self, spec: Spec, weights: Mapping[str, np.ndarray]):
        super().__init__()
        from timm.models.deit import VisionTransformerDistilled
        from timm.models.vision_transformer import VisionTransformer

        self.layout = Layout(spec.input.layout)
        nchw = spec.replace(input={**spec.to_dict()["input"], "layout": Layout.NCHW})  # timm takes NCHW
        state = to_timm_state_dict(nchw, weights)
        cls = VisionTransformerDistilled if spec.prefix.dist_token else VisionTransformer
        self.vit = cls(**{**timm_model_args(nchw), "global_pool": ""}, depth=0, num_heads=1, num_classes=0)
        self.vit.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
        pre = spec.input.preprocess
        self.preprocess = pre is not None
        if pre is not None:
            self.scale = float(pre.scale)
            self.register_buffer("mean", torch.tensor(pre.mean, dtype=torch.float32).reshape(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(pre.std, dtype=torch.float32).reshape(1, -1, 1, 1))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.layout != Layout.NCHW:
            x = x.permute(*self.layout.to_nchw)
        if self.preprocess:
            x = (x * self.scale - self.mean) / self.std
        x = self.vit.patch_embed(x)
        x = self.vit._pos_embed(x)
        x = self.vit.patch_drop(x)
        return self.vit.norm_pre(x)
