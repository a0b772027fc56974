"""transformers state dicts <-> canonical weights, for the families in hf_families.

Import: config.json's `model_type` names the family (a composite model's vision facts come from
its `vision_config`); without a config, the ViT/DeiT layout is assumed. The embeddings' key
prefix is found from the patch kernel's name, the pre-norm beside them
(`<prefix>pre_layrnorm.*`) is read with the config's `layer_norm_eps`.

Export (`to_hf_state_dict`): the embeddings' tensors (and the pre-norm) a family's model loads
with `load_state_dict(..., strict=False)` to compute the spec's z0 at the spec's image size.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import SpecError
from ..spec import Spec, check_weights
from ..spec.vocabulary import Layout
from .config_fields import ConfigFields
from .hf_families import BY_MODEL_TYPE, FAMILIES, REFUSED, REFUSED_MODEL_TYPES, HfFamily
from .hf_stem import check_divisible, check_native_table, resample_facts
from .table import stored_table

_NO_STEM_TENSORS = ("mask_token",)  # embeddings tensors z0 never uses


def _family(config: ConfigFields) -> HfFamily:
    model_type = config.text("model_type")
    if model_type in REFUSED_MODEL_TYPES:
        family, peer, reason = REFUSED[REFUSED_MODEL_TYPES[model_type]]
        raise SpecError(f"{family} ({peer}) cannot be converted: {reason}")
    if model_type is None:
        return BY_MODEL_TYPE["vit"]
    if model_type not in BY_MODEL_TYPE:
        raise SpecError(f"config.json says model_type {model_type!r}; the hf import knows "
                        f"{', '.join(sorted(BY_MODEL_TYPE))}")
    return BY_MODEL_TYPE[model_type]


def _names(fam: HfFamily) -> dict[str, str]:
    """canonical name -> the family's name relative to the embeddings."""
    names = {"patch_embed.weight": f"{fam.kernel}.weight", "patch_embed.bias": f"{fam.kernel}.bias",
             "cls_token": fam.cls, "dist_token": fam.dist, "reg_tokens": fam.registers, "pos_embed": fam.table,
             "patch_embed.norm.weight": fam.patch_norm and f"{fam.patch_norm}.weight"}
    return {k: v for k, v in names.items() if v is not None}


def hf_checkpoint_facts(tensors: Mapping[str, np.ndarray], config: ConfigFields,
                        processor: ConfigFields | None) -> dict:
    """The facts import_checkpoint needs from a transformers safetensors state dict; the config's fields
    are read typed, and those the tensors also say (hidden_size, num_channels, patch_size) must agree."""
    from .checkpoint_shapes import find_prefix
    from .hf import processor_preprocess

    fam = _family(config)
    vision = config.section("vision_config") or config
    mask_ratio = vision.number("mask_ratio", 0.0, low=0.0, high=1.0)
    if fam.family == "ViTMAE" and mask_ratio != 0.0:
        raise SpecError(f"{vision.source}: ViTMAE with mask_ratio {mask_ratio}: random masking drops patch "
                        "tokens, so z0 is not a function of the image; set mask_ratio to 0")
    check_native_table(fam, {"is_native": vision.boolean("is_native", False)}, vision.source)
    layer_norm_eps = vision.number("layer_norm_eps", 1e-5, positive=True)
    prefix = find_prefix(tensors, f"{fam.kernel}.weight", "transformers")
    names = _names(fam)
    unknown = sorted(k for k in tensors if k.startswith(prefix) and k[len(prefix):] not in
                     (*names.values(), *_NO_STEM_TENSORS))
    if unknown:
        raise SpecError(f"the embeddings hold tensors a {fam.family} stem does not have: {', '.join(unknown)}")
    canonical = {new: np.asarray(tensors[prefix + old]) for new, old in names.items() if prefix + old in tensors}
    if "pos_embed" in canonical:
        table = canonical["pos_embed"].reshape(1, -1, canonical["pos_embed"].shape[-1])
        if fam.table_skips_registers and "reg_tokens" in canonical:
            reg = canonical["reg_tokens"]
            table = np.concatenate([table[:, :1], np.zeros_like(reg, dtype=table.dtype), table[:, 1:]], axis=1)
        canonical["pos_embed"] = table
    for key in ("cls_token", "dist_token"):
        if key in canonical:
            canonical[key] = canonical[key].reshape(1, 1, -1)
    parent = prefix[: -len("embeddings.")] if prefix.endswith("embeddings.") else None
    pre_norm = None
    if fam.pre_norm and parent is not None and f"{parent}{fam.pre_norm}.weight" in tensors:
        d = canonical["patch_embed.weight"].shape[0]
        bias = tensors.get(f"{parent}{fam.pre_norm}.bias", np.zeros(d, np.float32))
        pre_norm = (tensors[f"{parent}{fam.pre_norm}.weight"], bias, layer_norm_eps)
    kernel = canonical["patch_embed.weight"]
    channels = int(kernel.shape[1])
    if kernel.ndim == 4:
        vision.agrees("hidden_size", int(kernel.shape[0]), "the patch kernel's D")
        vision.agrees("num_channels", channels, "the patch kernel's channel count")
        vision.agrees("patch_size", tuple(int(p) for p in kernel.shape[2:]), "the patch kernel's size", vision.size)
    return {"weights": canonical, "image_size": vision.size("image_size"), "resample": fam.resample,
            "no_embed_class": False, "family": fam, "pre_norm": pre_norm,
            "patch_norm_eps": vision.number("rms_norm_eps", 1e-5, positive=True),
            "name": config.text("_name_or_path") or config.text("model_type") or "hf_vit",
            "preprocess": processor_preprocess(processor or None, channels)}


def hf_dynamic(facts: dict, requested: bool, image_size, patch, has_table: bool) -> bool:
    """dynamic_image_size of an imported checkpoint: asked for, the family's default, or needed by image_size."""
    wanted = requested or image_size not in (None, facts["image_size"])
    if image_size is not None:
        check_divisible(image_size, patch, "the requested image size")
    native = facts["image_size"] or image_size
    if native is None:
        return wanted
    return resample_facts(facts["family"], has_table, True if wanted else None, native, patch, "the checkpoint")


def to_hf_state_dict(spec: Spec, weights: Mapping[str, np.ndarray], family: str,
                     prefix: str = "embeddings.") -> dict[str, np.ndarray]:
    """The state dict (float32 numpy) of `family`'s embeddings (+ pre-norm) computing the spec's z0.

    family: a README family name (e.g. "Dinov2", "CLIPVision") or a config model_type. prefix:
    the embeddings' key prefix in the target model ("embeddings." for the bare vision models,
    "vision_model.embeddings." inside CLIPModel); the pre-norm goes beside it. The peer's table
    is the spec's at its native grid; at other sizes the peer resamples with its own rule.
    SpecError names what the family cannot express.
    """
    fams = [f for f in FAMILIES if family in (f.family, *f.model_types)]
    if not fams:
        raise SpecError(f"unknown transformers family {family!r}; known: {', '.join(f.family for f in FAMILIES)}")
    fam = fams[0]
    weights = check_weights(weights, spec)
    d, pe = spec.embed_dim, spec.position_embedding
    problems = []
    if spec.prefix.class_token != (fam.cls is not None):
        problems.append("a class token" if fam.cls else "no class token")
    if spec.prefix.dist_token != (fam.dist is not None):
        problems.append("a distillation token" if fam.dist else "no distillation token")
    if spec.prefix.register_tokens and fam.registers is None:
        problems.append("no register tokens")
    if spec.patch_bias and not fam.patch_bias:
        problems.append("no patch bias")
    if (spec.pre_norm is not None) != (fam.pre_norm is not None):
        problems.append(f"a LayerNorm pre-norm ({fam.pre_norm})" if fam.pre_norm else "no pre-norm")
    if (spec.patch_norm is not None) != (fam.patch_norm is not None) or (
            spec.patch_norm is not None and spec.patch_norm.kind != "rms_norm"):
        problems.append("an RMSNorm patch norm" if fam.patch_norm else "no patch norm")
    if fam.table is None and pe.kind != "none":
        problems.append("no position table")
    if spec.input.layout != Layout.NCHW:
        problems.append("NCHW input")
    table = None
    if fam.table is not None:
        table = stored_table(spec, weights, every_prefix_row=True)
        if fam.table_skips_registers:
            regs = table[:, 1:1 + spec.prefix.register_tokens]
            if np.any(regs != 0):
                problems.append("no position for the register tokens")
            table = np.concatenate([table[:, :1], table[:, 1 + spec.prefix.register_tokens:]], axis=1)
    if problems:
        raise SpecError(f"{fam.family} ({fam.peer}) cannot express this spec: it has {', '.join(problems)}")
    names, out = _names(fam), {}
    values = {"patch_embed.weight": weights["patch_embed.weight"],
              "patch_embed.bias": weights.get("patch_embed.bias", np.zeros(d, np.float32)) if fam.patch_bias else None,
              "cls_token": weights.get("cls_token"), "dist_token": weights.get("dist_token"),
              "reg_tokens": weights.get("reg_tokens", np.zeros((1, 0, d), np.float32)) if fam.registers else None,
              "pos_embed": table, "patch_embed.norm.weight": weights.get("patch_embed.norm.weight")}
    for key, value in values.items():
        if value is None:
            continue
        if key == "cls_token" and fam.flat_cls:
            value = value.reshape(d)
        if key == "pos_embed" and fam.table.endswith(".weight"):
            value = value.reshape(-1, d)
        out[prefix + names[key]] = np.array(value, dtype=np.float32)
    if fam.pre_norm is not None:
        parent = prefix[: -len("embeddings.")] if prefix.endswith("embeddings.") else ""
        out[f"{parent}{fam.pre_norm}.weight"] = np.array(weights["norm_pre.weight"], np.float32)
        out[f"{parent}{fam.pre_norm}.bias"] = np.array(weights["norm_pre.bias"], np.float32)
    return out
