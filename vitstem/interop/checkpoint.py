"""Checkpoint files -> (spec, weights) without the peer library: timm / transformers safetensors, big_vision npz.

A state dict holds tensors, not the architecture, so the facts are read off the shapes
(checkpoint_shapes.py: kernel, prefix tokens, the table's grid, norms), the rest from the configs
beside the checkpoint, each field read typed (config_fields.py):
- image size: `image_size`, else the config's (HF config.json `image_size`, timm hub config.json
  `pretrained_cfg.input_size`), else grid x patch. A different image size than the table's grid
  makes the spec resample the table with the peer's policy.
- preprocessing: `preprocess` if given; else HF preprocessor_config.json or timm config.json
  mean/std beside the checkpoint; else none (the spec takes normalised floats).
- norm eps: `pre_norm_eps` (default 1e-5, as timm's CLIP models) and `patch_norm_eps` (default
  1e-6, timm's LayerNorm and RmsNorm default).
- timm's other families (Cait, ConVit, SAM, Qwen3-VL towers) are recognised by their other keys and
  config.json's architecture: see timm_family_state.py.
Only the header and the stem's tensors of a checkpoint are read (bounded memory: see
vitstem.spec.safetensors_file and vitstem.spec.npy_file).
"""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path

import numpy as np

from ..errors import SpecError, WeightsError
from ..spec import Spec
from .assemble import assemble, checked_preprocess
from .big_vision import from_big_vision
from .checkpoint_shapes import norm_facts, pair, table_grid
from .config_fields import ConfigFields
from .hf_checkpoint import hf_checkpoint_facts, hf_dynamic
from .import_files import checkpoint_tensors, model_file, write_import
from .timm_checkpoint import timm_checkpoint_facts

__all__ = ["FORMATS", "import_checkpoint", "table_grid", "write_import"]

FORMATS = ("timm", "hf", "big_vision")
AUTO = "auto"


def _hf_explained(facts: dict, processor: ConfigFields | None) -> dict:
    """facts plus where the preprocessing came from and the `vitstem run` flags of the processor's resize."""
    flags = None
    if processor and processor.boolean("do_resize", True):
        # PIL's codes, as transformers stores them; `vitstem run` resizes bilinear (2, ViT's default) or bicubic (3).
        interpolation = {2: "bilinear", 3: "bicubic"}.get(processor.integer("resample", 2, minimum=0, maximum=5))
        flags = f"--resize exact --interpolation {interpolation}" if interpolation else None
    source = ("preprocessor_config.json beside the checkpoint" if facts.get("preprocess") is not None else
              "none: no preprocessor_config.json with mean/std beside the checkpoint, so the spec takes normalised "
              "floats; pass --mean/--std to take pixels")
    return {**facts, "run_flags": flags, "preprocess_source": source}


def import_checkpoint(path: str | os.PathLike, fmt: str, *, image_size=None, grid=None,
                      no_embed_class: bool | None = None, config: str | os.PathLike | None = None,
                      preprocess=AUTO, pre_norm_eps: float = 1e-5, dynamic_image_size: bool = False,
                      name: str | None = None, patch_norm_eps: float = 1e-6, arch: str | None = None,
                      explain: dict | None = None) -> tuple[Spec, dict[str, np.ndarray]]:
    """(spec, canonical weights) from a timm/transformers .safetensors state dict or a big_vision .npz.

    path: the .safetensors / .npz file, or a model directory holding model.safetensors.
    config: a config.json (default: the one beside the checkpoint, if any); preprocess: "auto"
    (from the configs beside the checkpoint, else timm's default config for `arch`), None, or
    {scale, mean, std}. arch: timm's model name, for a bare timm state dict without config.json.
    `explain`, if given, receives "preprocess_source" (where the preprocessing came from) and
    "run_flags" (the `vitstem run` flags reproducing the peer's eval resize/crop, when known).
    """
    if fmt not in FORMATS:
        raise SpecError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    explain = {} if explain is None else explain
    if path.is_dir() and fmt != "big_vision":
        path = model_file(path)
    image_size = pair(image_size)
    grid = pair(grid)
    if fmt == "big_vision":
        given = None if preprocess == AUTO else preprocess
        if grid is not None and image_size is None:
            raise SpecError("big_vision import: give --image-size (the grid alone does not say the patch)")
        explain["preprocess_source"] = "--mean/--std/--scale" if given is not None else \
            "none: big_vision checkpoints carry no preprocessing; pass --mean/--std/--scale to take pixels"
        if path.suffix == ".npz":
            return from_big_vision(path, image_size=image_size, preprocess=given, name=name or path.stem)
        with closing(checkpoint_tensors(path)) as tensors:
            return from_big_vision(tensors, image_size=image_size, preprocess=given, name=name or path.stem)
    with closing(checkpoint_tensors(path)) as tensors:  # closed once the facts hold every tensor the import reads
        config_path = Path(config) if config is not None else path.with_name("config.json")
        cfg = ConfigFields.read(config_path, required=config is not None)
        if fmt == "timm":
            facts = timm_checkpoint_facts(tensors, cfg, arch)
        else:
            processor = ConfigFields.read(path.with_name("preprocessor_config.json")) if preprocess == AUTO else None
            facts = _hf_explained(hf_checkpoint_facts(tensors, cfg, processor), processor)
            patch_norm_eps = facts["patch_norm_eps"]
    w = facts["weights"]
    kernel = w["patch_embed.weight"]
    if kernel.ndim != 4:
        raise WeightsError(f"the patch kernel has shape {kernel.shape}; expected OIHW (D, C, Ph, Pw)")
    patch = tuple(int(s) for s in kernel.shape[2:])
    prefix = sum(int(w[k].shape[1]) for k in ("cls_token", "dist_token", "reg_tokens") if k in w)
    if "family" in facts:
        dynamic_image_size = hf_dynamic(facts, dynamic_image_size, image_size, patch, "pos_embed" in w)
    image_size = image_size or facts["image_size"]
    grid = grid or facts.get("grid")
    dynamic_image_size = dynamic_image_size or facts.get("dynamic_image_size", False)
    pos = w.get("pos_embed")
    covers = True
    if pos is not None:
        if pos.ndim != 3:
            raise WeightsError(f"the position table has shape {pos.shape}; expected (1, rows, D)")
        nec = facts.get("no_embed_class", no_embed_class)
        table, covers = table_grid(int(pos.shape[1]), prefix, patch, grid=grid, image_size=image_size,
                                   no_embed_class=nec)
    else:
        table = grid
        if image_size is None and grid is None:
            raise SpecError("the checkpoint has no position table: give --image-size")
    image_size = image_size or (table[0] * patch[0], table[1] * patch[1])
    explain["run_flags"] = facts.get("run_flags")
    if preprocess == AUTO:
        preprocess = facts.get("preprocess")
        explain["preprocess_source"] = facts["preprocess_source"]
    else:
        explain["preprocess_source"] = "--mean/--std/--scale" if preprocess is not None else \
            "none (--no-preprocess): the spec takes normalised floats"
    norm, patch_norm = (norm_facts(w, prefix, eps) for prefix, eps in (("norm_pre", pre_norm_eps),
                                                                       ("patch_embed.norm", patch_norm_eps)))
    norm = norm or facts.get("pre_norm")
    return assemble(
        name=name or facts["name"], kernel=kernel, bias=w.get("patch_embed.bias"), image_size=image_size,
        cls=w.get("cls_token"), dist=w.get("dist_token"), reg=w.get("reg_tokens"), pos=pos,
        covers_prefix=covers, pos_grid=table if pos is not None else None, pre_norm=norm, patch_norm=patch_norm,
        preprocess=checked_preprocess(preprocess, int(kernel.shape[1])), resample=facts["resample"],
        dynamic_image_size=dynamic_image_size)


