"""The safetensors weight store: canonical weights plus the spec digest in the header metadata.

safetensors is a header of JSON plus raw little-endian bytes, so loading never executes anything
from the file (no pickle anywhere in vitstem).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import WeightsError
from ..files import atomic_write_bytes
from .model import Spec
from .weights import check_weights

META_SPEC_DIGEST = "vitstem.spec_digest"
META_SPEC = "vitstem.spec"
# The safetensors dtypes that safetensors.numpy can load (no BF16 or F8 in NumPy).
NUMPY_DTYPES = ("F64", "F32", "F16", "I64", "U64", "I32", "U32", "I16", "U16", "I8", "U8", "BOOL", "C64")


def save_weights(weights: Mapping[str, np.ndarray], path: str | os.PathLike, spec: Spec) -> Path:
    """Check `weights` against `spec` and write them atomically as safetensors."""
    from safetensors.numpy import save

    weights = check_weights(weights, spec)
    metadata = {META_SPEC_DIGEST: spec.digest(), META_SPEC: spec.to_json()}
    data = save({k: np.ascontiguousarray(v) for k, v in weights.items()}, metadata=metadata)
    return atomic_write_bytes(path, data)


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """All tensors and the header metadata of a safetensors file; WeightsError if it is not one."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    from .file_kinds import pickle_hint

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc.strerror or exc}") from None
    try:
        header_len = int.from_bytes(data[:8], "little")
        if len(data) < 8 or header_len > len(data) - 8:
            raise ValueError("truncated or not a safetensors file")
        header = json.loads(data[8 : 8 + header_len])
        metadata = header.get("__metadata__") or {}
        for name, info in header.items():  # safetensors.numpy.load raises a bare KeyError on these
            if name != "__metadata__" and isinstance(info, dict) and info.get("dtype") not in NUMPY_DTYPES:
                raise ValueError(f"tensor {name!r} has dtype {info.get('dtype')}, which NumPy cannot hold "
                                 "(vitstem weights are F32)")
        tensors = load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError, AttributeError, RecursionError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file: {pickle_hint(path) or exc}") from None
    return tensors, dict(metadata)


def _saved_for(metadata: dict) -> str:
    """'NAME ' of the spec stored in a weights file's metadata, when it reads."""
    try:
        return repr(json.loads(metadata[META_SPEC])["name"]) + " "
    except (KeyError, ValueError, TypeError):
        return ""


def load_weights(path: str | os.PathLike, spec: "Spec | str | os.PathLike", *,
                 other_spec: bool = False) -> dict[str, np.ndarray]:
    """Canonical weights from a safetensors file, checked against `spec` (a Spec, preset name or spec
    file; every problem at once). A whole timm/transformers checkpoint gets one line naming the
    `vitstem import` command that converts it.

    A file saved by vitstem records the spec it was saved for (vitstem.spec_digest); loading it for
    another spec is refused unless `other_spec` (e.g. a layout twin: same weights, other input layout)."""
    from .file_kinds import peer_checkpoint_message
    from .loading import load_spec

    spec = load_spec(spec)
    tensors, metadata = read_safetensors(path)
    stored = metadata.get(META_SPEC_DIGEST)
    if stored is not None and not other_spec and stored != spec.digest():
        saved_for = _saved_for(metadata)
        raise WeightsError(f"{path}: saved for spec {saved_for}{stored}, not for this spec {spec.name!r} "
                           f"({spec.digest()}); a weights file belongs to the spec saved beside it")
    try:
        return check_weights(tensors, spec)
    except WeightsError as exc:
        message = peer_checkpoint_message(path, tensors)
        raise WeightsError(message or f"{path}: {exc}") from None
