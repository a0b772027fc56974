"""`vitstem check` on an ORT-format file (`.ort`, from `vitstem export --ort`), or without onnx installed.

An .ort file is a FlatBuffer for ONNX Runtime Mobile, not an ONNX protobuf: the onnx checker and
the graph digest cannot read it. What can be checked is what the edge runtime relies on: that
onnxruntime loads it, that its vitstem metadata is complete, that the stored spec matches its
digest and the graph's inputs and outputs, and (with --weights) the weights digest.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ExportError
from ..spec import load_weights
from ..spec.digest import weights_digest
from .options import check_sizes_agree

ORT_IDENTIFIER = b"ORTM"  # the FlatBuffer file identifier, bytes 4..8


def is_ort_file(data: bytes) -> bool:
    return data[4:8] == ORT_IDENTIFIER


def check_ort(path: str | os.PathLike, *, weights: str | os.PathLike | None = None,
              required: tuple[str, ...] = ()) -> dict:
    """The `check_onnx` report for an .ort file; ExportError naming the first failure."""
    from ..runtime import load

    path = Path(path)
    stem = load(path)  # loads in onnxruntime, checks the spec digest and the graph's inputs and outputs
    missing = [k for k in required if k not in stem.metadata]
    if missing:
        raise ExportError(f"{path}: metadata lacks {', '.join('vitstem.' + k for k in missing)} (not a vitstem export?)")
    check_sizes_agree(stem.spec, stem.options, path)
    report = {"path": str(path), "format": "ort", "spec": stem.spec.name, "spec_digest": stem.spec.digest(),
              "graph_digest": None, "weights_digest": stem.metadata["weights_digest"],
              "vitstem_version": stem.metadata["version"], "opset": stem.options.get("opset"), "ir_version": None,
              "options": stem.options,
              "checker": "onnxruntime loads it (ORT format: no onnx checker or graph digest; check the .onnx for those)"}
    if weights is not None:
        actual = weights_digest(load_weights(weights, stem.spec))
        if actual != report["weights_digest"]:
            raise ExportError(f"{path}: vitstem.weights_digest mismatch: stored {report['weights_digest']}, "
                              f"{weights} has {actual}")
        report["weights"] = "match"
    return report
