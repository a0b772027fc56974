"""The stem in PyTorch, stage for stage as the NumPy reference (same names, signatures and order; tensors).

Profile "fast" computes in float32 (or the weights' float16/bfloat16), the patch projection as one
matrix product of the copied patch rows (timm's conv with kernel = stride = P computes the same sums).
Profile "exact" computes in float64 with every sum in the reference's fixed order
(`vitstem.spec.exact.sum_in_order`: the patch projection over k = 0..K-1, the norms' means over
d = 0..D-1), out of elementwise ops only, and rounds once to float32 at the end: the reference's bits.
`weights` maps canonical names to tensors (`VitStem` passes its parameters).
"""

from __future__ import annotations

import functools
from typing import Mapping

import torch
import torch.nn.functional as F

from ...spec import Spec
from ...spec.exact import sum_in_order
from ...spec.position import position_table
from ...spec.remainder import cropped_size
from ...spec.vocabulary import Layout, Profile
from .inputs import check_image_tensor, check_output_finite, tracing
from .norms import normalize
from .position import fixed_table, resample_rows

__all__ = ["add_position", "compute_dtype", "crop", "embed_patches", "forward", "normalize", "patchify",
           "prefix_tokens", "preprocess", "stages", "to_nchw"]


def compute_dtype(profile, weights: Mapping[str, torch.Tensor]) -> torch.dtype:
    """float64 for the exact profile; else the weights' dtype, as timm's modules: float32, or
    float16/bfloat16 after `.half()`, `.to(torch.bfloat16)` or a parent model's cast."""
    if Profile.parse(profile, "profile") is Profile.EXACT:
        return torch.float64
    return weights["patch_embed.weight"].dtype


def to_nchw(spec: Spec, images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) view of a batch in the spec's layout."""
    layout = Layout(spec.input.layout)
    return images if layout is Layout.NCHW else images.permute(layout.to_nchw)


def crop(spec: Spec, x: torch.Tensor, layout: Layout = Layout.NCHW) -> torch.Tensor:
    """The batch cut to the whole patches (input.remainder: drop), as the reference: a view (the fast
    conv would skip those pixels anyway). Under refuse the input checks let only multiples of the
    patch through, and no slice is traced (no shape guard for torch.export's dynamic sizes)."""
    layout = Layout(layout)
    if spec.input.remainder != "drop":
        return x
    index = [slice(None)] * 4
    for axis, size in zip(layout.spatial_axes, cropped_size(*layout.image_hw(x.shape), spec.patch_size)):
        index[axis] = slice(size)
    return x[tuple(index)]


def preprocess(spec: Spec, x: torch.Tensor, dtype: torch.dtype, layout: Layout = Layout.NCHW) -> torch.Tensor:
    """x = (pixels * scale - mean) / std per channel, or x unchanged without preprocessing.

    The reference's three roundings, on one fresh buffer (the caller's batch is never written).
    """
    x = x.to(dtype)
    pre = spec.input.preprocess
    if pre is None:
        return x
    if tracing():  # a mutation makes functionalization replay every later view (an exact export took 10x longer)
        scale, mean, std = _preprocess_constants.__wrapped__(pre, dtype, x.device, Layout(layout))
        return (x * scale - mean) / std
    scale, mean, std = _preprocess_constants(pre, dtype, x.device, Layout(layout))
    return (x * scale).sub_(mean).div_(std)


@functools.lru_cache(maxsize=64)
def _preprocess_constants(pre, dtype: torch.dtype, device: torch.device, layout: Layout):
    """(scale, mean, std) tensors broadcasting over a batch in `layout`: built once per preprocess and
    dtype (building them took ~35 us, 2 % of a batch-1 ViT-B/16 forward); never written. Traces build
    their own (a cached tensor made while tracing would be a fake one). Made outside inference mode: an
    inference tensor could not be saved for a later backward pass."""
    with torch.inference_mode(False):
        scale, mean, std = torch.tensor([pre.scale, *pre.mean, *pre.std], dtype=dtype, device=device).split(
            [1, len(pre.mean), len(pre.std)])
    return scale, mean.reshape(layout.shape(1, -1, 1, 1)), std.reshape(layout.shape(1, -1, 1, 1))


def patchify(x: torch.Tensor, patch_size: tuple[int, int], layout: Layout = Layout.NCHW) -> torch.Tensor:
    """The reference's patches, (B, N, C*Ph*Pw) in row-major grid order, each flattened (C, Ph, Pw), held
    unflattened as (B, gh, gw, C, Ph, Pw): a view of the batch; flattening it copies it, once."""
    layout = Layout(layout)
    x = x if layout is Layout.NCHW else x.permute(layout.to_nchw)
    b, c, h, w = x.shape
    ph, pw = patch_size
    return x.reshape(b, c, h // ph, ph, w // pw, pw).permute(0, 2, 4, 1, 3, 5)


def embed_patches(spec: Spec, weights: Mapping[str, torch.Tensor], patches: torch.Tensor,
                  dtype: torch.dtype) -> torch.Tensor:
    """(B, N, D) = x^i E (+ b): the patch rows copied out of the batch's view once, then one matrix
    product with the conv weight read as E (D, K); in float64 the sum over k of x_k * E[k] in order
    k = 0..K-1 (as the reference; ONNX Runtime also has no float64 Conv)."""
    weight = weights["patch_embed.weight"].to(dtype)
    bias = weights["patch_embed.bias"].to(dtype) if spec.patch_bias else None
    b, gh, gw, c, ph, pw = patches.shape
    if dtype != torch.float64:  # float32, or the module's float16/bfloat16
        # Not timm's conv with kernel = stride = P: on CPU timm's stem, with oneDNN's strided conv, took
        # 1.08-1.24x this one (ViT-B/16, batch 1 and 8, 1 and 2 threads, AMD EPYC; docs/benchmarks.md).
        rows = patches.reshape(b, gh * gw, c * ph * pw)
        return F.linear(rows, weight.reshape(spec.embed_dim, spec.patch_dim), bias)
    columns = patches.reshape(b, gh * gw, c * ph * pw).movedim(-1, 0).unsqueeze(-1)  # (K, B, N, 1): x_k
    E = weight.reshape(spec.embed_dim, spec.patch_dim).T[:, None, None, :]  # (K, 1, 1, D)
    out = sum_in_order(ordered_products(columns, E))[0]
    return out if bias is None else out + bias


def ordered_products(a: torch.Tensor, b: torch.Tensor, chunk: int = 16):
    """a[k] * b[k] for k = 0, 1, ... as (1, ...) slices. One Mul and one Split per `chunk` values of k
    instead of a Gather and a Mul per k: the same bits in far fewer nodes of an exported graph."""
    for start in range(0, a.shape[0], chunk):
        yield from torch.split(a[start:start + chunk] * b[start:start + chunk], 1)


def prefix_tokens(spec: Spec, weights: Mapping[str, torch.Tensor], batch, dtype: torch.dtype) -> torch.Tensor:
    """(B, P, D): [cls, dist, registers...] in that order, the same for every image."""
    parts = [weights[n] for n in ("cls_token", "dist_token", "reg_tokens") if n in weights]
    if not parts:
        device = weights["patch_embed.weight"].device
        return torch.zeros(batch, 0, spec.embed_dim, dtype=dtype, device=device)
    tokens = parts[0].to(dtype) if len(parts) == 1 else torch.cat([t.to(dtype) for t in parts], dim=1)
    return tokens.expand(batch, -1, -1)


def add_position(spec: Spec, prefix: torch.Tensor, patches: torch.Tensor, table, dtype: torch.dtype) -> torch.Tensor:
    """[prefix; patches] + E_pos, `table` the pair (prefix rows, patch rows) of `position_table`;
    without covers_prefix the prefix tokens get no position."""
    prefix_rows, patch_rows = (t.to(device=patches.device, dtype=dtype) for t in table)
    if spec.pos_prefix_rows:  # 0 or the number of prefix tokens
        prefix = prefix + prefix_rows
    if tracing():
        return torch.cat([prefix, patches + patch_rows], dim=1)
    if torch.is_grad_enabled() and (patches.requires_grad or patch_rows.requires_grad):
        # In place on the fresh concat (autograd keeps nothing of it): one (B, T, D) buffer fewer.
        z = torch.cat([prefix, patches], dim=1)
        z[:, prefix.shape[1]:].add_(patch_rows)
        return z
    # Without autograd (which refuses out=), z is written in one pass: the patch rows' sum straight
    # into its slice of the output. A concat then an add read and wrote z twice: ~10 % slower at
    # batch 1, ~25 % at batch 8 (measured, AMD EPYC, when the rows came from a conv).
    p = prefix.shape[1]
    # The dtype the concat would promote to: under autocast the product's patches are bfloat16/float16
    # while the prefix and the table stay float32, and z0 comes out float32 as timm's does.
    dtype = torch.promote_types(torch.promote_types(prefix.dtype, patches.dtype), patch_rows.dtype)
    z = patches.new_empty((patches.shape[0], p + patches.shape[1], patches.shape[2]), dtype=dtype)
    z[:, :p] = prefix
    torch.add(patches, patch_rows, out=z[:, p:])
    return z


def stages(spec: Spec, weights: Mapping[str, torch.Tensor], images: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """z0 in `dtype` before any final rounding: the stages in the reference's order, on a checked batch."""
    x = preprocess(spec, crop(spec, to_nchw(spec, images)), dtype)
    patches = embed_patches(spec, weights, patchify(x, spec.patch_size), dtype)
    patches = normalize(spec.patch_norm, weights, "patch_embed.norm", patches)
    prefix = prefix_tokens(spec, weights, x.shape[0], dtype)
    grid = spec.patch_grid(Layout.NCHW.image_hw(x.shape))  # ints: the table is a constant per grid
    table = position_table(spec, weights, grid, fixed=fixed_table, resample=resample_rows)
    z = add_position(spec, prefix, patches, table, dtype)
    return normalize(spec.pre_norm, weights, "norm_pre", z)


def forward(spec: Spec, weights: Mapping[str, torch.Tensor], images: torch.Tensor, profile: str = "fast") -> torch.Tensor:
    """z0 (B, prefix + N, D) for a batch tensor in the spec's layout (uint8 pixels or floats of any dtype).

    fast: in the weights' dtype (float32 unless cast); under torch.autocast the patch product runs in the
    autocast dtype and z0 comes out float32, exactly as timm's stem. exact: float64, rounded once to
    float32. `weights` are checked by the caller (VitStem checks them when it loads them); the batch is
    checked here, its finiteness on z0. InputError for a bad batch.
    """
    dtype = compute_dtype(profile, weights)
    check_image_tensor(spec, images, finite=False)  # finiteness: on z0, below
    z = stages(spec, weights, images, dtype)
    if dtype == torch.float64:
        z = z.to(torch.float32)
    check_output_finite(spec, images, z)
    return z
