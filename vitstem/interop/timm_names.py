"""A timm architecture name -> the default pretrained config timm ships for it (no download).

`vitstem import --format timm --arch NAME` reads mean/std, the input size and the eval transform
(crop_pct, interpolation) from here, so a bare state dict gets the preprocessing `from_timm(model)`
takes from `model.pretrained_cfg` for a model built with `timm.create_model(NAME)`.
"""

from __future__ import annotations

from ..errors import SpecError


def timm_default_cfg(arch: str) -> dict:
    """timm's default pretrained_cfg for `arch` as a dict; SpecError if timm is missing or does not know it."""
    try:
        import timm.models
    except ImportError:
        raise SpecError(f"--arch {arch} reads timm's default config for that model, which needs timm installed "
                        "(pip install timm); without it give --mean/--std (and --image-size)") from None
    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is None:
        raise SpecError(f"--arch {arch!r} is not a model name timm knows (see timm.list_models('vit_*'))")
    return cfg.to_dict()


def eval_transform_flags(cfg) -> str | None:
    """The `vitstem run` flags that reproduce timm's eval transform for this pretrained_cfg (a dict or
    ConfigFields); None when `vitstem run` has no such transform."""
    from .config_fields import ConfigFields

    cfg = cfg if isinstance(cfg, ConfigFields) else ConfigFields(cfg or {}, "pretrained_cfg")
    crop_pct = cfg.number("crop_pct", None, positive=True)
    interpolation = cfg.text("interpolation", "bicubic")
    if not crop_pct or cfg.text("crop_mode", "center") != "center" or interpolation not in ("bicubic", "bilinear"):
        return None
    return f"--resize shortest-edge --crop-pct {crop_pct} --crop center --interpolation {interpolation}"
