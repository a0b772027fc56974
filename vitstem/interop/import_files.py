"""The files of `vitstem import`: the checkpoint a path names (a file or a model directory), read with
bounded memory, and the DIR/spec.yaml + DIR/weights.safetensors it writes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import SpecError
from ..spec import Spec, read_safetensors, save_weights
from ..spec.safetensors_file import SafetensorsTensors


def model_file(directory: Path) -> Path:
    """DIR/model.safetensors of a model directory (as save_pretrained / the Hub lay it out)."""
    if (directory / "model.safetensors").is_file():
        return directory / "model.safetensors"
    if (directory / "model.safetensors.index.json").is_file():
        raise SpecError(f"{directory} holds a sharded checkpoint (model.safetensors.index.json): pass the shard "
                        "that holds the embeddings")
    raise SpecError(f"{directory} has no model.safetensors")


def checkpoint_tensors(path: Path) -> SafetensorsTensors:
    """The tensors of a safetensors checkpoint, each read when the import first looks it up (read-only;
    BF16 widened to float32, exactly); close it when done."""
    tensors, _ = read_safetensors(path, widen_bf16=True)
    return tensors


def write_import(spec: Spec, weights: Mapping[str, np.ndarray], out_dir: str | os.PathLike,
                 spec_format: str = "yaml") -> tuple[Path, Path]:
    """Write DIR/spec.yaml (or .json) and DIR/weights.safetensors atomically; returns both paths."""
    from ..files import atomic_write_bytes
    from ..outputs import output_directory

    out = output_directory(out_dir)
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
