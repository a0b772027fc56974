"""timm's Gemma 4 vision tower (Gemma4VitEncoder) -> (spec, weights) at one image size.

Read from timm 1.0.31's Gemma4PatchEmbed, for a raw (B, C, H, W) image: patches flattened (C, Ph, Pw)
(`batch_patchify(channels_last=False)`), pixels rescaled in the model as 2 * (x - 0.5), projected by a
Linear without bias, plus T[0][x] + T[1][y] from the factorised table `position_embedding_table`
(2, P, D) looked up at each patch's column x and row y. RoPE acts inside attention; nothing else
happens before blocks[0]. So at one image size the stem is: the Linear as an OIHW kernel, a learned
table T[0][j] + T[1][i] at the grid, and the rescale folded into the preprocessing. Other sizes look
up other rows rather than resampling, which the spec cannot say: the spec is fixed-size. The image
size is the model's `pretrained_cfg["input_size"]` (Gemma 4 itself takes any size).
"""

from __future__ import annotations

import numpy as np

from ..spec import Spec
from .assemble import as_float32, assemble, checked_preprocess, preprocess_doc
from .timm import _refuse


def from_gemma4(model, cfg: dict, *, preprocess="auto", name: str | None = None) -> tuple[Spec, dict[str, np.ndarray]]:
    """`model` is a Gemma4VitEncoder; `cfg` the pretrained_cfg of the model the user passed."""
    from timm.models.gemma4_vit import Gemma4PatchEmbed

    pe = model.patch_embed
    if type(pe) is not Gemma4PatchEmbed:
        _refuse(model, f"patch_embed is a {type(pe).__name__}, not the Gemma4PatchEmbed vitstem read")
    if pe.input_proj.bias is not None:
        _refuse(model, "Gemma4PatchEmbed.input_proj has a bias, which timm 1.0.31 does not build")
    input_size = cfg.get("input_size")
    if not input_size:
        _refuse(model, "Gemma 4 takes any image size and pretrained_cfg has no input_size to fix one")
    ph, pw = pe.patch_size
    size = (int(input_size[1]), int(input_size[2]))
    channels = int(input_size[0])
    gh, gw = size[0] // ph, size[1] // pw
    if max(gh, gw) > pe.position_embedding_size:
        _refuse(model, f"the {gh}x{gw} grid is larger than the position table ({pe.position_embedding_size})")
    table = as_float32(pe.position_embedding_table, "position_embedding_table").astype(np.float64)
    rows = table[0][None, :gw, :] + table[1][:gh, None, :]  # [y, x] -> T[0][x] + T[1][y]
    kernel = as_float32(pe.input_proj.weight, "input_proj.weight").reshape(-1, channels, ph, pw)
    if preprocess == "auto":
        mean, std, scale = cfg.get("mean", (0.0,) * channels), cfg.get("std", (1.0,) * channels), 1 / 255
    elif preprocess is None:  # the model's own input: [0, 1] floats
        mean, std, scale = (0.0,) * channels, (1.0,) * channels, 1.0
    else:
        given = checked_preprocess(preprocess, channels)
        mean, std, scale = given["mean"], given["std"], given["scale"]
    # 2 * ((p * scale - m) / s - 0.5) = (p * 2 scale - (2 m + s)) / s
    doc = preprocess_doc(2 * scale, [2 * m + s for m, s in zip(mean, std)], std)
    return assemble(name=name or cfg.get("architecture") or "timm_gemma4", kernel=kernel, image_size=size,
                    pos=rows.reshape(1, gh * gw, -1).astype(np.float32), preprocess=doc, resample="timm")
