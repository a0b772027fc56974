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


def eval_transform_flags(cfg: dict) -> str | None:
    """The `vitstem run` flags that reproduce timm's eval transform for this pretrained_cfg."""
    if not cfg.get("crop_pct"):
        return None
    mode = cfg.get("crop_mode", "center")
    if mode != "center":
        return None
    return (f"--resize shortest-edge --crop-pct {cfg['crop_pct']} --crop center "
            f"--interpolation {cfg.get('interpolation', 'bicubic')}")
