"""timm VisionTransformer (and DeiT distilled) -> (spec, weights), and canonical weights -> timm names.

Every fact comes from the model object: sizes from `patch_embed`, prefix tokens from the
parameters that exist, `no_embed_class`, `dynamic_img_size`, `norm_pre` and `patch_embed.norm`
(LayerNorm or RmsNorm, with their eps), and the preprocessing
from `pretrained_cfg` (mean/std over pixels / 255). The z0 reproduced is the eval-mode one
(timm's `_pos_embed` + `patch_drop` + `norm_pre`); dropouts are the identity there.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..backends.torch.names import TIMM_NAMES, to_timm_names  # the shared name table (no torch import)
from ..errors import SpecError
from ..spec import Spec, check_weights, load_spec
from ..spec.vocabulary import Layout
from .assemble import assemble, checked_preprocess, preprocess_doc
from .table import stored_table

_AUTO = "auto"


def _refuse(model, reason: str):
    raise SpecError(f"{type(model).__name__} cannot be expressed as a vitstem spec: {reason}")


def _is_identity(module) -> bool:
    return type(module).__name__ == "Identity"


def _norm(model, module, where: str) -> tuple | None:
    """(kind, weight, bias or None, eps) of a LayerNorm or RmsNorm over the embedding; None for Identity.

    A norm without learned affine weights gets ones (and zeros): x * 1 + 0 is x in every engine."""
    import torch
    from timm.layers import LayerNorm, LayerNormFp32, RmsNorm, RmsNormFp32

    if _is_identity(module):
        return None
    # Exact types: subclasses such as LayerNorm2d permute their input first. The Fp32 variants compute
    # in float32, which is what they do on a float32 model anyway.
    if type(module) in (torch.nn.LayerNorm, LayerNorm, LayerNormFp32):
        kind = "layer_norm"
    elif type(module) in (RmsNorm, RmsNormFp32, torch.nn.RMSNorm) and module.eps is not None:
        kind = "rms_norm"
    else:
        _refuse(model, f"{where} is a {type(module).__name__}; the spec has LayerNorm and RmsNorm (timm's, with an eps)")
    d = model.embed_dim
    if tuple(module.normalized_shape) != (d,):
        _refuse(model, f"{where} normalises over {tuple(module.normalized_shape)}, not the embedding ({d},)")
    if getattr(module, "_fast_norm", False):
        _refuse(model, f"{where} uses timm's fast_norm kernels (set_fast_norm(False) first)")
    weight = module.weight if module.weight is not None else torch.ones(d)
    bias = None
    if kind == "layer_norm":
        bias = module.bias if module.bias is not None else torch.zeros(d)
    return kind, weight, bias, float(module.eps)


def _check_stem_structure(model) -> None:
    """Refuse the VisionTransformer variants whose stem is not the one the spec describes."""
    from timm.models.deit import VisionTransformerDistilled
    from timm.models.vision_transformer import VisionTransformer

    known = (VisionTransformer._pos_embed, VisionTransformerDistilled._pos_embed)
    if type(model)._pos_embed not in known:
        _refuse(model, f"its _pos_embed is overridden by {type(model).__name__}")
    check_patch_embed(model, model.patch_embed)
    if model.training and not _is_identity(model.patch_drop):
        _refuse(model, "patch_drop drops tokens in training mode; call model.eval() first")
    if isinstance(model, VisionTransformerDistilled) and model.reg_token is not None:
        _refuse(model, "VisionTransformerDistilled ignores its register tokens in _pos_embed")


def check_patch_embed(model, pe) -> None:
    """Refuse a patch embedding that is not a conv with kernel = stride = patch (and nothing after it)."""
    from timm.layers import HybridEmbed, PatchEmbed

    if isinstance(pe, HybridEmbed):
        _refuse(model, "patch_embed is a HybridEmbed: a CNN backbone computes the patch features "
                       "(the spec's stem is one linear patch projection)")
    if type(pe) is not PatchEmbed:
        _refuse(model, f"patch_embed is a {type(pe).__name__}, not a plain PatchEmbed (conv patchify)")
    if pe.img_size is None:
        _refuse(model, "patch_embed has no img_size, so the table has no native grid")
    if pe.dynamic_img_pad and (_has_remainder(pe) or not pe.strict_img_size):
        _refuse(model, "patch_embed.dynamic_img_pad zero-pads images that are not a multiple of the patch size "
                "(the grid rounds up); the spec's input.remainder can refuse or drop those pixels, not pad them")
    conv = pe.proj
    if (tuple(conv.kernel_size) != tuple(pe.patch_size) or tuple(conv.stride) != tuple(pe.patch_size)
            or any(conv.padding) or tuple(conv.dilation) != (1, 1) or conv.groups != 1):
        _refuse(model, "patch_embed.proj is not a conv with kernel = stride = patch size")


def _has_remainder(pe) -> bool:
    return any(int(s) % int(p) for s, p in zip(pe.img_size, pe.patch_size))


def _remainder(pe) -> str:
    """input.remainder from the PatchEmbed. At its img_size (strict_img_size) the strided conv drops
    what no whole patch covers: "drop" when img_size leaves pixels over. Otherwise "refuse", as timm's
    own non-strict check (H and W divisible by the patch) does; with dynamic_img_pad (refused above
    unless strict at a multiple of the patch) nothing is ever padded. A non-strict model whose
    img_size is not a multiple also gets "drop": timm's check then refuses even its own img_size."""
    return "drop" if _has_remainder(pe) else "refuse"


def pretrained_cfg_preprocess(cfg, channels: int | None = None) -> dict | None:
    """timm's eval transform normalises pixels / 255 with the pretrained_cfg's (a dict or ConfigFields)
    mean and std; SpecError naming a badly typed field."""
    from .config_fields import ConfigFields

    cfg = cfg if isinstance(cfg, ConfigFields) else ConfigFields(cfg or {}, "pretrained_cfg")
    mean, std = cfg.numbers("mean", None, channels), cfg.numbers("std", None, channels, positive=True)
    return preprocess_doc(1 / 255, mean, std) if mean is not None and std is not None else None


def _preprocess(model, preprocess):
    if preprocess != _AUTO:
        return checked_preprocess(preprocess, model.patch_embed.proj.in_channels)
    return pretrained_cfg_preprocess(getattr(model, "pretrained_cfg", None))


def from_timm(model, *, preprocess=_AUTO, name: str | None = None) -> tuple[Spec, dict[str, np.ndarray]]:
    """(spec, canonical weights) reproducing a timm VisionTransformer's (eval-mode) z0.

    preprocess: "auto" takes mean/std from `model.pretrained_cfg` (pixels / 255), None means the
    spec takes normalised floats, or a mapping {scale, mean, std}.
    """
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(model, VisionTransformer):  # Eva, Beit, Cait, ... (or a specific refusal)
        from .timm_families import from_timm_family

        return from_timm_family(model, preprocess=preprocess, name=name)
    _check_stem_structure(model)
    pe = model.patch_embed
    prefix_count = 0 if model.no_embed_class else model.num_prefix_tokens
    if model.pos_embed is not None:
        expected = prefix_count + pe.num_patches
        if model.pos_embed.shape[1] != expected:
            _refuse(model, f"pos_embed has {model.pos_embed.shape[1]} rows; {expected} expected")
    return assemble(
        name=name or (getattr(model, "pretrained_cfg", None) or {}).get("architecture") or "timm_vit",
        kernel=pe.proj.weight, bias=pe.proj.bias, image_size=tuple(pe.img_size),
        cls=model.cls_token, dist=getattr(model, "dist_token", None), reg=model.reg_token,
        pos=model.pos_embed, covers_prefix=not model.no_embed_class,
        pre_norm=_norm(model, model.norm_pre, "norm_pre"), patch_norm=_norm(model, pe.norm, "patch_embed.norm"),
        preprocess=_preprocess(model, preprocess), resample="timm",
        dynamic_image_size=bool(model.dynamic_img_size), remainder=_remainder(pe))


def timm_expressible(spec: Spec) -> None:
    """SpecError unless a timm VisionTransformer can hold this stem with the same z0."""
    problems = []
    pe = spec.position_embedding
    if pe.kind == "sincos2d" and spec.dynamic_image_size:
        problems.append(("position_embedding.kind", "timm would resample a stored sin-cos table, not recompute it"))
    if spec.prefix.dist_token and spec.prefix.register_tokens:
        problems.append(("prefix", "timm's distilled ViT has no register tokens"))
    if spec.prefix.dist_token and not spec.prefix.class_token:
        problems.append(("prefix.class_token", "timm's distilled ViT always has a class token"))
    if spec.prefix.dist_token and not pe.covers_prefix and pe.kind != "none":
        problems.append(("position_embedding.covers_prefix", "timm's distilled ViT table always covers cls and dist"))
    if pe.kind == "learned" and spec.pos_grid != spec.patch_grid():
        problems.append(("position_embedding.grid", "timm keeps the table at the grid of img_size"))
    if spec.pre_norm is not None and spec.patch_bias:
        problems.append(("patch_bias", "timm's pre_norm=True builds the patch conv without a bias"))
    if spec.resample.policy != "timm" and spec.dynamic_image_size:
        problems.append(("resample.policy", f"timm resamples with its own policy, not {spec.resample.policy!r}"))
    if spec.input.layout != Layout.NCHW:
        problems.append(("input.layout", "timm takes NCHW images"))
    if spec.input.remainder == "drop" and spec.dynamic_image_size:
        problems.append(("input.remainder", "timm's dynamic_img_size refuses sizes that are not a multiple of the "
                         "patch; it drops the leftover pixels only at its own img_size"))
    if problems:
        raise SpecError(problems)


def to_timm_state_dict(spec, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The stem part of a timm VisionTransformer state dict (numpy float32) holding these weights.

    Load it with `model.load_state_dict(..., strict=False)` after wrapping the arrays with
    torch.from_numpy. SpecError when timm cannot express the spec (see `timm_expressible`).
    """
    spec = load_spec(spec)
    weights = check_weights(weights, spec)
    timm_expressible(spec)
    state = {k: np.ascontiguousarray(v) for k, v in to_timm_names(weights).items()}
    if spec.position_embedding.kind == "sincos2d":  # stored as a fixed table
        state[TIMM_NAMES["pos_embed"]] = stored_table(spec, weights, every_prefix_row=False)
    if not spec.patch_bias and spec.pre_norm is None:  # timm's conv then has a bias: zero adds nothing
        state[TIMM_NAMES["patch_embed.bias"]] = np.zeros(spec.embed_dim, np.float32)
    return state


def timm_model_args(spec) -> dict:
    """Keyword arguments for timm's VisionTransformer (or VisionTransformerDistilled with a dist token)
    that build this stem; `norm_layer` (all of the model's norms) carries the pre-norm's kind and eps,
    `embed_norm_layer` the patch norm's."""
    spec = load_spec(spec)
    timm_expressible(spec)
    return dict(img_size=spec.image_size, patch_size=spec.patch_size, in_chans=spec.in_channels,
                embed_dim=spec.embed_dim, class_token=spec.prefix.class_token,
                reg_tokens=spec.prefix.register_tokens,
                no_embed_class=not spec.position_embedding.covers_prefix and spec.num_prefix_tokens > 0,
                pos_embed="none" if spec.position_embedding.kind == "none" else "learn",
                pre_norm=spec.pre_norm is not None, dynamic_img_size=spec.dynamic_image_size,
                global_pool="token" if spec.prefix.class_token else "avg", **_norm_layer(spec))


def _norm_layer(spec: Spec) -> dict:
    """timm's norm_layer (the pre-norm's kind and eps) and embed_norm_layer (the patch norm's)."""
    from functools import partial

    from timm.layers import LayerNorm, RmsNorm

    kinds = {"layer_norm": LayerNorm, "rms_norm": RmsNorm}
    args = {}
    if spec.pre_norm is not None:
        args["norm_layer"] = partial(kinds[spec.pre_norm.kind], eps=spec.pre_norm.eps)
    if spec.patch_norm is not None:
        args["embed_norm_layer"] = partial(kinds[spec.patch_norm.kind], eps=spec.patch_norm.eps)
    return args
