"""Checkpoint files -> (spec, weights) without the peer library: timm / transformers safetensors, big_vision npz.

A state dict holds tensors, not the architecture, so the facts are read off the shapes:
- D, C, Ph, Pw from the patch kernel (OIHW; HWIO for big_vision); the bias if it is there.
- prefix tokens from the tensors present: cls, dist (DeiT), registers (their count from reg_token).
- the table grid: `grid` if given; else the image grid (from `image_size` or the config) when the
  table's row count fits it; else square: rows - prefix a perfect square (table covers the prefix,
  timm's default), else rows a perfect square (timm no_embed_class / big_vision). When both are
  squares (only with 3+ prefix tokens and tiny grids) the covering reading wins; pass
  `no_embed_class=True` or `grid` to say otherwise.
- image size: `image_size`, else the config's (HF config.json `image_size`, timm hub config.json
  `pretrained_cfg.input_size`), else grid x patch. A different image size than the table's grid
  makes the spec resample the table with the peer's policy.
- preprocessing: `preprocess` if given; else HF preprocessor_config.json or timm config.json
  mean/std beside the checkpoint; else none (the spec takes normalised floats).
- pre-norm (timm `norm_pre.*`) and patch norm (timm `patch_embed.norm.*`): a LayerNorm when the
  checkpoint has its bias, else an RmsNorm (weight only); eps `pre_norm_eps` (default 1e-5, as timm's
  CLIP models) and `patch_norm_eps` (default 1e-6, timm's LayerNorm and RmsNorm default).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ..backends.torch.names import from_timm_names  # the shared name table (no torch import)
from ..errors import SpecError, WeightsError
from ..spec import Spec, read_safetensors, save_weights
from .assemble import assemble, checked_preprocess, square_side
from .big_vision import from_big_vision, read_npz
from .hf_checkpoint import hf_checkpoint_facts, hf_dynamic
from .timm import pretrained_cfg_preprocess

FORMATS = ("timm", "hf", "big_vision")
AUTO = "auto"


def pair(value) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    values = [int(v) for v in value]
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def table_grid(rows: int, prefix: int, patch: tuple[int, int], *, grid=None, image_size=None,
               no_embed_class: bool | None = None) -> tuple[tuple[int, int], bool]:
    """(table grid, covers_prefix) for a table of `rows` rows, by the rules in the module docstring."""
    nec = None if prefix == 0 else no_embed_class

    def readings(n: int) -> list[bool]:
        """The covers_prefix values under which the table holds n patch rows, preferred first."""
        options = [prefix > 0] if rows == prefix + n and nec is not True else []
        return options + ([False] if prefix and rows == n and nec is not False else [])

    if grid is not None:
        options = readings(grid[0] * grid[1])
        if not options:
            raise WeightsError(f"the position table has {rows} rows; a {grid[0]}x{grid[1]} grid with "
                               f"{prefix} prefix tokens needs {prefix + grid[0] * grid[1]}"
                               + (f" or {grid[0] * grid[1]}" if prefix else ""))
        return tuple(grid), options[0]
    if image_size is not None:
        image_grid = (image_size[0] // patch[0], image_size[1] // patch[1])
        options = readings(image_grid[0] * image_grid[1])
        if options:
            return image_grid, options[0]
    for n in (rows - prefix, rows):
        side = square_side(n)
        if side is not None and readings(n):
            return (side, side), readings(n)[0]
    raise WeightsError(f"the position table has {rows} rows with {prefix} prefix tokens and no square grid "
                       "fits; give the grid (--grid GH GW) or the image size")


def find_prefix(tensors: Mapping, suffix: str, fmt: str) -> str:
    hits = [k[: -len(suffix)] for k in tensors if k.endswith(suffix)]
    if len(hits) != 1:
        found = "none" if not hits else ", ".join(h + suffix for h in hits)
        raise WeightsError(f"a {fmt} state dict needs exactly one '*{suffix}' tensor; found {found}")
    return hits[0]


def _read_json(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError(f"cannot read {path}: {exc}") from None


def _timm_facts(tensors: Mapping, config: dict) -> dict:
    prefix = find_prefix(tensors, "patch_embed.proj.weight", "timm")
    if any(k.startswith(f"{prefix}patch_embed.backbone.") for k in tensors):
        raise SpecError("this timm model's patch_embed has a CNN backbone, which the spec cannot express")
    canonical = from_timm_names({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    cfg = config.get("pretrained_cfg") or {}
    input_size = cfg.get("input_size")
    return {"weights": canonical, "image_size": pair(input_size[1:]) if input_size else None, "resample": "timm",
            "name": config.get("architecture") or "timm_vit", "preprocess": pretrained_cfg_preprocess(cfg)}


def import_checkpoint(path: str | os.PathLike, fmt: str, *, image_size=None, grid=None,
                      no_embed_class: bool | None = None, config: str | os.PathLike | None = None,
                      preprocess=AUTO, pre_norm_eps: float = 1e-5, dynamic_image_size: bool = False,
                      name: str | None = None, patch_norm_eps: float = 1e-6) -> tuple[Spec, dict[str, np.ndarray]]:
    """(spec, canonical weights) from a timm/transformers .safetensors state dict or a big_vision .npz.

    path: the .safetensors / .npz file, or a model directory holding model.safetensors.
    config: a config.json (default: the one beside the checkpoint, if any); preprocess: "auto"
    (from the configs beside the checkpoint), None, or {scale, mean, std}.
    """
    if fmt not in FORMATS:
        raise SpecError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    if path.is_dir() and fmt != "big_vision":
        path = _model_file(path)
    image_size = pair(image_size)
    grid = pair(grid)
    if fmt == "big_vision":
        given = None if preprocess == AUTO else preprocess
        if grid is not None and image_size is None:
            raise SpecError("big_vision import: give --image-size (the grid alone does not say the patch)")
        return from_big_vision(read_npz(path) if path.suffix == ".npz" else _safetensors(path),
                               image_size=image_size, preprocess=given, name=name or path.stem)
    tensors = _safetensors(path)
    config_path = Path(config) if config is not None else path.with_name("config.json")
    cfg = _read_json(config_path)
    if fmt == "timm":
        facts = _timm_facts(tensors, cfg)
    else:
        processor = _read_json(path.with_name("preprocessor_config.json")) if preprocess == AUTO else None
        facts = hf_checkpoint_facts(tensors, cfg, processor)
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
    if preprocess == AUTO:
        preprocess = facts.get("preprocess")
    norm, patch_norm = (_norm_facts(w, prefix, eps) for prefix, eps in (("norm_pre", pre_norm_eps),
                                                                       ("patch_embed.norm", patch_norm_eps)))
    norm = norm or facts.get("pre_norm")
    return assemble(
        name=name or facts["name"], kernel=kernel, bias=w.get("patch_embed.bias"), image_size=image_size,
        cls=w.get("cls_token"), dist=w.get("dist_token"), reg=w.get("reg_tokens"), pos=pos,
        covers_prefix=covers, pos_grid=table if pos is not None else None, pre_norm=norm, patch_norm=patch_norm,
        preprocess=checked_preprocess(preprocess, int(kernel.shape[1])), resample=facts["resample"],
        dynamic_image_size=dynamic_image_size)


def _model_file(directory: Path) -> Path:
    """DIR/model.safetensors of a model directory (as save_pretrained / the Hub lay it out)."""
    if (directory / "model.safetensors").is_file():
        return directory / "model.safetensors"
    if (directory / "model.safetensors.index.json").is_file():
        raise SpecError(f"{directory} holds a sharded checkpoint (model.safetensors.index.json): pass the shard "
                        "that holds the embeddings")
    raise SpecError(f"{directory} has no model.safetensors")


def _norm_facts(w: Mapping[str, np.ndarray], prefix: str, eps: float) -> tuple | None:
    """(kind, weight, bias, eps) of the norm PREFIX.*: LayerNorm with a bias, RmsNorm without; None if absent."""
    if f"{prefix}.weight" not in w:
        return None
    bias = w.get(f"{prefix}.bias")
    return ("layer_norm" if bias is not None else "rms_norm"), w[f"{prefix}.weight"], bias, eps


def _safetensors(path: Path) -> dict[str, np.ndarray]:
    tensors, _ = read_safetensors(path)
    return tensors


def write_import(spec: Spec, weights: Mapping[str, np.ndarray], out_dir: str | os.PathLike,
                 spec_format: str = "yaml") -> tuple[Path, Path]:
    """Write DIR/spec.yaml (or .json) and DIR/weights.safetensors atomically; returns both paths."""
    from ..files import atomic_write_bytes

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if spec_format == "json":
        spec_path, text = out / "spec.json", json.dumps(spec.to_dict(), indent=2) + "\n"
    elif spec_format == "yaml":
        import yaml

        spec_path, text = out / "spec.yaml", yaml.safe_dump(spec.to_dict(), sort_keys=False)
    else:
        raise SpecError(f"spec format must be yaml or json, got {spec_format!r}")
    weights_path = save_weights(weights, out / "weights.safetensors", spec)
    atomic_write_bytes(spec_path, text.encode("utf-8"))
    return spec_path, weights_path
