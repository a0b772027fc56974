"""`VitStem`: the stem's `forward` as a torch.nn.Module holding the weights as timm names them.

Parameters are float32 and named as in timm's VisionTransformer (see names.py), so a timm ViT's state
dict loads into it with strict=False; the computation is `stem.forward` on those parameters.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import nn

from ...spec import Spec, check_weights, init_weights, load_spec, weight_shapes
from ...spec.vocabulary import Profile
from . import stem
from .names import TIMM_NAMES


def make_norm(norm, dim: int) -> nn.Module | None:
    """The module of a spec Norm (timm's parameter names: weight [, bias]), or None without one."""
    if norm is None:
        return None
    return nn.RMSNorm(dim, eps=norm.eps) if norm.kind == "rms_norm" else nn.LayerNorm(dim, eps=norm.eps)


# Canonical name -> (submodule path, parameter attribute) of its timm key, e.g. ("patch_embed", "proj"), "weight".
_TIMM_PATHS = {name: (tuple(key.split(".")[:-1]), key.split(".")[-1]) for name, key in TIMM_NAMES.items()}


class PatchEmbed(nn.Module):
    """Holds the patch projection and its optional norm as timm names them (`patch_embed.proj`,
    `patch_embed.norm`); `stem.embed_patches` and `stem.normalize` apply them."""

    def __init__(self, spec: Spec):
        super().__init__()
        self.proj = nn.Conv2d(spec.in_channels, spec.embed_dim, kernel_size=spec.patch_size,
                              stride=spec.patch_size, bias=spec.patch_bias)
        self.norm = make_norm(spec.patch_norm, spec.embed_dim)


class VitStem(nn.Module):
    """images (the spec's layout, uint8 or float) -> z0 (B, prefix + N, D) float32.

    Holds `weights` (canonical names) or else `init_weights(spec)`; load others with `load_canonical`
    or, from a timm ViT, `load_state_dict(timm_model.state_dict(), strict=False)`.
    """

    def __init__(self, spec, profile: str = "fast", weights: Mapping[str, np.ndarray] | None = None):
        super().__init__()
        self.profile = Profile.parse(profile, "profile").value
        self.spec = spec = load_spec(spec)
        self.patch_embed = PatchEmbed(spec)
        shapes = weight_shapes(spec)
        for name in ("cls_token", "dist_token", "reg_tokens", "pos_embed"):
            value = nn.Parameter(torch.zeros(shapes[name])) if name in shapes else None
            setattr(self, TIMM_NAMES[name], value)
        self.norm_pre = make_norm(spec.pre_norm, spec.embed_dim)
        self.load_canonical(init_weights(spec) if weights is None else weights)

    @classmethod
    def from_weights(cls, spec, weights: Mapping[str, np.ndarray], profile: str = "fast") -> "VitStem":
        """A module holding `weights` (canonical names, float32 NumPy arrays)."""
        return cls(spec, profile, weights)

    def load_canonical(self, weights: Mapping[str, np.ndarray]) -> None:
        """Copy canonical weights in, after `check_weights` (WeightsError naming each bad name and shape)."""
        weights = check_weights(weights, self.spec)
        params = dict(self.named_parameters())
        with torch.no_grad():
            for name, value in weights.items():
                params[TIMM_NAMES[name]].copy_(torch.tensor(value))  # a copy: read-only arrays are fine

    def canonical_weights(self) -> dict[str, np.ndarray]:
        """The parameters under canonical names, as float32 NumPy arrays (copies), in canonical order."""
        params = self.canonical_parameters()
        return {name: params[name].detach().cpu().numpy().copy() for name in weight_shapes(self.spec)}

    def canonical_parameters(self) -> dict[str, torch.Tensor]:
        """The parameters themselves under canonical names (what the stage functions take as `weights`).

        Read straight from each submodule's parameter dict along the timm key (`TIMM_NAMES`), on every
        call, so a replaced module or parameter is seen: a dozen nn.Module attribute reads per forward
        took ~25 us, 1-2 % of a batch-1 ViT-B/16 stem."""
        found = {}
        for name, (path, attr) in _TIMM_PATHS.items():
            module = self
            for step in path:
                module = module._modules.get(step)
                if module is None:
                    break
            value = None if module is None else module._parameters.get(attr)
            if value is not None:
                found[name] = value
        return found

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """z0 (B, prefix + N, D) for `images` in the spec's layout: `stem.forward` on the parameters."""
        return stem.forward(self.spec, self.canonical_parameters(), images, self.profile)

    def extra_repr(self) -> str:
        return f"spec={self.spec.name!r}, profile={self.profile!r}"
