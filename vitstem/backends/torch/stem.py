"""`VitStem`: the spec's z0 as a torch.nn.Module, mirroring the NumPy reference function for function.

Profile "fast" computes in float32 (the patch projection as a conv with kernel = stride = P).
Profile "exact" computes in float64 with every sum in the reference's fixed order
(`vitstem.spec.exact.sum_in_order`: the patch projection over k = 0..K-1, LayerNorm's means over
d = 0..D-1), out of elementwise ops only, and rounds once to float32 at the end: the reference's
bits. Parameters are float32 and named as in timm's VisionTransformer (see names.py).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...spec import Spec, check_weights, init_weights, load_spec, weight_shapes
from ...spec.exact import sum_in_order
from ...spec.inputs import check_images
from ...spec.remainder import cropped_size
from .inputs import check_image_tensor, check_output_finite, tracing
from .names import TIMM_NAMES
from .position import grid_constants, position_table

PROFILES = {"fast": torch.float32, "exact": torch.float64}


def to_nchw(spec: Spec, images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) view of a batch in the spec's layout."""
    return images if spec.input.layout == "NCHW" else images.permute(0, 3, 1, 2)


def crop(spec: Spec, x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) cut to the whole patches (input.remainder: drop), as the reference: a view (the
    fast conv would skip those pixels anyway). Under refuse the input checks let only multiples of
    the patch through, and no slice is traced (no shape guard for torch.export's dynamic sizes)."""
    if spec.input.remainder != "drop":
        return x
    h, w = cropped_size(x.shape[2], x.shape[3], spec.patch_size)
    return x[:, :, :h, :w]


def preprocess(spec: Spec, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """x = (pixels * scale - mean) / std per channel, or x unchanged without preprocessing.

    The reference's three roundings, on one fresh buffer (the caller's batch is never written).
    """
    x = x.to(dtype)
    pre = spec.input.preprocess
    if pre is None:
        return x
    # One small tensor for the three constants: each torch.tensor() call is a few dispatched ops.
    scale, mean, std = torch.tensor([pre.scale, *pre.mean, *pre.std], dtype=dtype, device=x.device).split(
        [1, len(pre.mean), len(pre.std)])
    mean, std = mean.reshape(1, -1, 1, 1), std.reshape(1, -1, 1, 1)
    if tracing():  # a mutation makes functionalization replay every later view (an exact export took 10x longer)
        return (x * scale - mean) / std
    return (x * scale).sub_(mean).div_(std)


def patchify(x: torch.Tensor, patch_size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, C*Ph*Pw): patches in row-major grid order, each flattened (C, Ph, Pw)."""
    b, c, h, w = x.shape
    ph, pw = patch_size
    x = x.reshape(b, c, h // ph, ph, w // pw, pw)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // ph) * (w // pw), c * ph * pw)


def embed_patches(spec: Spec, proj: nn.Conv2d, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, N, D) = x^i E (+ b): a conv with kernel = stride = P in float32; in float64 the sum over
    k of x_k * E[k] in order k = 0..K-1 (as the reference; ONNX Runtime also has no float64 Conv)."""
    bias = None if proj.bias is None else proj.bias.to(dtype)
    if dtype != torch.float64:  # float32, or the module's float16/bfloat16
        return F.conv2d(x, proj.weight.to(dtype), bias, stride=spec.patch_size).flatten(2).transpose(1, 2)
    columns = patchify(x, spec.patch_size).movedim(-1, 0).unsqueeze(-1)  # (K, B, N, 1): x_k
    E = proj.weight.to(dtype).reshape(spec.embed_dim, spec.patch_dim).T[:, None, None, :]  # (K, 1, 1, D)
    out = sum_in_order(ordered_products(columns, E))[0]
    return out if bias is None else out + bias


def ordered_products(a: torch.Tensor, b: torch.Tensor, chunk: int = 16):
    """a[k] * b[k] for k = 0, 1, ... as (1, ...) slices. One Mul and one Split per `chunk` values of k
    instead of a Gather and a Mul per k: the same bits in far fewer nodes of an exported graph."""
    for start in range(0, a.shape[0], chunk):
        yield from torch.split(a[start:start + chunk] * b[start:start + chunk], 1)


def prefix_tokens(spec: Spec, tokens: list[torch.Tensor], batch: int, dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor:
    """(B, P, D): [cls, dist, registers...] in that order, the same for every image."""
    if not tokens:
        return torch.zeros(batch, 0, spec.embed_dim, dtype=dtype, device=device)
    tokens = tokens[0].to(dtype) if len(tokens) == 1 else torch.cat([t.to(dtype) for t in tokens], dim=1)
    return tokens.expand(batch, -1, -1)


def add_position(prefix: torch.Tensor, patches: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """[prefix; patches] + E_pos; without covers_prefix the prefix tokens get no position.

    `table` has a row per prefix token or none (spec.pos_prefix_rows). As timm does, the one
    big copy is the concat out of the conv's (B, D, N) layout, and the table is added to the
    contiguous result: adding to the transposed view first took twice as long (measured).
    """
    if table.shape[0] > patches.shape[1]:
        z = torch.cat([prefix, patches], dim=1)
        if tracing():
            return z + table
        # In place on the fresh concat (autograd keeps nothing of it): one (B, T, D) buffer fewer to
        # allocate and fault in, which measured ~15 % of this tail at batch 8.
        return z.add_(table)
    return torch.cat([prefix, patches + table], dim=1)


def _row_mean(v: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis (kept), summed in order d = 0..D-1 (float64, the exact profile):
    one Split node, then D ordered adds of (1, B, T) slices."""
    return (sum_in_order(torch.split(v.movedim(-1, 0), 1)) / v.shape[-1]).movedim(0, -1)


def layer_norm(z: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """LayerNorm over the last axis with the biased variance: F.layer_norm in float32; in float64 the
    reference's formula with both means summed in order d = 0..D-1."""
    weight, bias = norm.weight.to(z.dtype), norm.bias.to(z.dtype)
    if z.dtype != torch.float64:  # float32, or the module's float16/bfloat16 (accumulated in float32 by torch)
        return F.layer_norm(z, norm.normalized_shape, weight, bias, norm.eps)
    centred = z - _row_mean(z)
    var = _row_mean(centred * centred)
    eps = torch.tensor(norm.eps, dtype=z.dtype, device=z.device)  # a Python float would reach ONNX as float32
    return centred / torch.sqrt(var + eps) * weight + bias


def rms_norm(z: torch.Tensor, norm: nn.RMSNorm) -> torch.Tensor:
    """RmsNorm over the last axis, z / sqrt(mean(z^2) + eps) * weight: F.rms_norm in float32; in float64
    the reference's formula with the mean summed in order d = 0..D-1."""
    weight = norm.weight.to(z.dtype)
    if z.dtype != torch.float64:  # float32, or the module's float16/bfloat16
        return F.rms_norm(z, norm.normalized_shape, weight, norm.eps)
    eps = torch.tensor(norm.eps, dtype=z.dtype, device=z.device)
    return z / torch.sqrt(_row_mean(z * z) + eps) * weight


def make_norm(norm, dim: int) -> nn.Module | None:
    """The module of a spec Norm (timm's parameter names: weight [, bias]), or None without one."""
    if norm is None:
        return None
    return nn.RMSNorm(dim, eps=norm.eps) if norm.kind == "rms_norm" else nn.LayerNorm(dim, eps=norm.eps)


def normalize(z: torch.Tensor, norm: nn.Module | None) -> torch.Tensor:
    """z through `norm` (from make_norm); z unchanged without one."""
    if norm is None:
        return z
    return rms_norm(z, norm) if isinstance(norm, nn.RMSNorm) else layer_norm(z, norm)


class PatchEmbed(nn.Module):
    """Holds the patch projection and its optional norm as timm names them (`patch_embed.proj`,
    `patch_embed.norm`); `embed_patches` and `normalize` apply them."""

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
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
        self.spec = spec = load_spec(spec)
        self.profile = profile
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
        params = dict(self.named_parameters())
        return {name: params[TIMM_NAMES[name]].detach().cpu().numpy().copy() for name in weight_shapes(self.spec)}

    def compute_dtype(self) -> torch.dtype:
        """float64 for the exact profile; else the parameters' dtype, as timm's modules: float32, or
        float16/bfloat16 after `.half()`, `.to(torch.bfloat16)` or a parent model's cast."""
        if self.profile == "exact":
            return torch.float64
        return self.patch_embed.proj.weight.dtype

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """z0 (B, prefix + N, D) for `images` in the spec's layout (uint8 pixels or floats of any dtype).

        The fast profile computes in the module's dtype and returns it (float32 unless the module was
        cast); under torch.autocast the patch conv runs in the autocast dtype and z0 comes out float32,
        exactly as timm's stem (the float32 prefix tokens promote the concat). The exact profile
        computes in float64 and returns float32. InputError for a bad batch.
        """
        spec, dtype = self.spec, self.compute_dtype()
        h, w = check_image_tensor(spec, images, finite=False)  # finiteness: on z0, below
        grid = (int(h) // spec.patch_size[0], int(w) // spec.patch_size[1])  # the table is a constant per grid
        x = preprocess(spec, crop(spec, to_nchw(spec, images)), dtype)
        patches = normalize(embed_patches(spec, self.patch_embed.proj, x, dtype), self.patch_embed.norm)
        tokens = [t for t in (self.cls_token, self.dist_token, self.reg_token) if t is not None]
        prefix = prefix_tokens(spec, tokens, x.shape[0], dtype, x.device)
        table = position_table(spec, self.pos_embed, grid, grid_constants(spec, grid), dtype, x.device)
        z = add_position(prefix, patches, table)
        z = normalize(z, self.norm_pre)
        if self.profile == "exact":
            z = z.to(torch.float32)
        check_output_finite(spec, images, z)
        return z

    def extra_repr(self) -> str:
        return f"spec={self.spec.name!r}, profile={self.profile!r}"


def forward(spec, weights: Mapping[str, np.ndarray], images, profile: str = "fast") -> np.ndarray:
    """z0 as a NumPy float32 array (B, prefix + N, D), as `vitstem.forward(..., backend="torch")`."""
    spec = load_spec(spec)
    module = VitStem.from_weights(spec, weights, profile)
    images, _ = check_images(spec, images)
    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(images))).numpy()
