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
from .options import check_sizes_agree

ORT_IDENTIFIER = b"ORTM"  # the FlatBuffer file identifier, bytes 4..8


def is_ort_file(data: bytes) -> bool:
    return data[4:8] == ORT_IDENTIFIER


def check_ort(path: str | os.PathLike, *, weights: str | os.PathLike | None = None,
              required: tuple[str, ...] = (), calibration=None) -> dict:
    """The `check_onnx` report for an .ort file; ExportError naming the first failure."""
    from ..runtime import load

    path = Path(path)
    stem = load(path)  # verifies vitstem.digest, loads in onnxruntime, checks the spec digest and the graph's I/O
    missing = [k for k in required if k not in stem.metadata]
    if missing:
        raise ExportError(f"{path}: metadata lacks {', '.join('vitstem.' + k for k in missing)} (not a vitstem export?)")
    check_sizes_agree(stem.spec, stem.options, path)
    report = {"path": str(path), "format": "ort", "spec": stem.spec.name, "spec_digest": stem.spec.digest(),
              "graph_digest": None, "weights_digest": stem.metadata["weights_digest"],
              "vitstem_version": stem.metadata["version"], "opset": stem.options.get("opset"), "ir_version": None,
              "options": stem.options,
              "checker": "onnxruntime loads it (ORT format: no onnx checker or graph digest; check the .onnx for those)"}
    if weights is not None:  # provenance: export again and compare with the digest of the .onnx it came from
        from .provenance import check_ort_provenance, check_provenance

        data = path.read_bytes()
        if is_ort_file(data):
            check_ort_provenance(path, stem.metadata, stem.spec, stem.options, weights, calibration)
        else:
            check_provenance(path, data, stem.metadata, stem.spec, stem.options, weights, calibration)
        report["weights"] = "match"
    return report
