"""The safetensors weight store: canonical weights plus the spec digest in the header metadata.

safetensors is a header of JSON plus raw little-endian bytes, so loading never executes anything
from the file (no pickle anywhere in vitstem). Loading reads the header, checks it, and then reads
only the tensors whose shapes are the spec's: memory is bounded by the spec, not by the file.
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
from .safetensors_file import NUMPY_DTYPES, SafetensorsFile, SafetensorsTensors
from .weights import check_weights, weight_shapes

META_SPEC_DIGEST = "vitstem.spec_digest"
META_SPEC = "vitstem.spec"


def save_weights(weights: Mapping[str, np.ndarray], path: str | os.PathLike, spec: Spec) -> Path:
    """Check `weights` against `spec` and write them atomically as safetensors."""
    from safetensors.numpy import save

    weights = check_weights(weights, spec)
    metadata = {META_SPEC_DIGEST: spec.digest(), META_SPEC: spec.to_json()}
    data = save({k: np.ascontiguousarray(v) for k, v in weights.items()}, metadata=metadata)
    return atomic_write_bytes(path, data)


def read_safetensors(path: str | os.PathLike, *,
                     widen_bf16: bool = False) -> tuple[SafetensorsTensors, dict[str, str]]:
    """The tensors (a mapping reading each one when first looked up, read-only: copy what you change) and
    the header metadata of a safetensors file, its header checked first (see safetensors_file);
    WeightsError if it is not one. widen_bf16: BF16 tensors come as float32 (exact)."""
    file = SafetensorsFile(path, widen_bf16=widen_bf16)
    return file.tensors(), file.metadata


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
    from .loading import load_spec

    spec = load_spec(spec)
    with SafetensorsFile(path) as file:
        return _checked(file, spec, path, other_spec)


def _checked(file: SafetensorsFile, spec: Spec, path, other_spec: bool) -> dict[str, np.ndarray]:
    from .file_kinds import peer_checkpoint_message

    metadata = file.metadata
    stored = metadata.get(META_SPEC_DIGEST)
    if stored is not None and not other_spec and stored != spec.digest():
        saved_for = _saved_for(metadata)
        raise WeightsError(f"{path}: saved for spec {saved_for}{stored}, not for this spec {spec.name!r} "
                           f"({spec.digest()}); a weights file belongs to the spec saved beside it")
    try:
        sized = _spec_sized(file, spec)
    except WeightsError as exc:  # a dtype NumPy cannot hold, or a file truncated since: named with the file
        raise WeightsError(peer_checkpoint_message(path, file.declared) or str(exc)) from None
    try:
        return check_weights(sized, spec)
    except WeightsError as exc:
        raise WeightsError(peer_checkpoint_message(path, file.declared) or f"{path}: {exc}") from None


def _spec_sized(file: SafetensorsFile, spec: Spec) -> dict[str, np.ndarray]:
    """The file's tensors for check_weights, reading only those whose declared shape is the spec's
    (owned, writable arrays: memory bounded by the spec); zero-byte stand-ins of the declared dtype
    and shape for the others, whose problems check_weights names from the shape alone."""
    expected = weight_shapes(spec)
    out, unexpected = {}, np.zeros(0, np.float32)  # an unexpected weight is named, its value never looked at
    for name, (dtype, shape) in file.declared.items():
        if dtype not in NUMPY_DTYPES or expected.get(name) == shape:  # unreadable dtypes are named by array()
            out[name] = file.array(name)
        elif name not in expected:
            out[name] = unexpected
        else:
            out[name] = np.broadcast_to(np.zeros((), NUMPY_DTYPES[dtype]), shape)
    return out
