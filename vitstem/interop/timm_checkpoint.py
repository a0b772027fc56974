"""timm state dicts (safetensors) -> the facts import_checkpoint needs, with config.json's
pretrained_cfg (or timm's default one for `--arch`) for the image size, preprocessing and eval transform."""

from __future__ import annotations

from typing import Mapping

from ..backends.torch.names import from_timm_names  # the shared name table (no torch import)
from ..errors import SpecError
from .checkpoint_shapes import find_prefix, pair, stripped
from .config_fields import ConfigFields
from .timm import pretrained_cfg_preprocess
from .timm_family_state import family_checkpoint_facts
from .timm_names import eval_transform_flags, timm_default_cfg


def timm_checkpoint_facts(tensors: Mapping, config: ConfigFields, arch: str | None = None) -> dict:
    if any(k.endswith("patch_embed.input_proj.weight") for k in tensors):
        raise SpecError("a Gemma 4 checkpoint (patch_embed.input_proj): file import does not read it yet; build the "
                        "timm model and use from_timm, which reads its factorised position table at one size")
    prefix = find_prefix(tensors, "patch_embed.proj.weight", "timm")
    if any(k.startswith(f"{prefix}patch_embed.backbone.") for k in tensors):
        raise SpecError("this timm model's patch_embed has a CNN backbone, which the spec cannot express")
    architecture = config.text("architecture")
    state, family = family_checkpoint_facts(stripped(tensors, prefix), architecture or "")
    cfg = config.section("pretrained_cfg") or ConfigFields({}, config.source, "pretrained_cfg.")
    source = "config.json beside the checkpoint (pretrained_cfg)"
    if not cfg and arch is not None:
        cfg = ConfigFields(timm_default_cfg(arch), f"timm's default pretrained_cfg for {arch}")
        source = f"timm's default pretrained_cfg for {arch}"
    kernel = state["patch_embed.proj.weight"]
    channels = int(kernel.shape[1]) if kernel.ndim == 4 else None
    input_size = cfg.integers("input_size", 3)
    if input_size and channels is not None and input_size[0] != channels:
        raise cfg.error("input_size", f"{input_size[0]} channels, but the patch kernel takes {channels}: is this "
                                      "config from another model? (fix or remove the field)")
    preprocess = pretrained_cfg_preprocess(cfg, channels)
    return {"weights": from_timm_names(state), "image_size": pair(input_size[1:]) if input_size else None,
            "resample": "timm", "name": architecture or arch or "timm_vit", "preprocess": preprocess,
            "preprocess_source": source if preprocess is not None else
            "none: no config.json with pretrained_cfg beside the checkpoint and no --arch, so the spec takes "
            "normalised floats; pass --arch NAME (the timm model name) or --mean/--std to take pixels",
            "run_flags": eval_transform_flags(cfg), **family}
