"""`vitstem check`: is this file a sound vitstem export? Checker, digests, spec round trip, mobile verdict.

The graph holds folded constants (kernel scaled by the preprocessing, bias inside the table), so
the canonical weights cannot be read back from it. Integrity is checked with vitstem.digest (the
whole file: metadata and graph) and vitstem.graph_digest; provenance, with --weights, by exporting
again from those weights with the stored spec and options (export is deterministic) and comparing
the bytes: a copied vitstem.weights_digest string proves nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ExportError, SpecError
from ..spec import load_spec
from ..spec.exported import check_io, check_whole_io, expected_io, parse_encoder, parse_options, read_metadata
from . import metadata
from .check_ort import check_ort, is_ort_file
from .options import check_sizes_agree

REQUIRED = ("spec", "spec_digest", "weights_digest", "graph_digest", "export_options", "version", "digest")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_ort_beside(path: Path, digest: str) -> None:
    """ExportError unless the .ort beside `path` (written with it: export_options.ort_format) is its pair."""
    from ..runtime.integrity import read_bounded

    ort_path = path.with_suffix(".ort")
    if not ort_path.is_file():
        return
    if digest.encode() not in read_bounded(ort_path):
        raise ExportError(f"{path}: {ort_path.name} beside it was not converted from it (a mismatched .onnx/.ort "
                          "pair, e.g. an export interrupted between the two files): export again")


def _value_info(value) -> tuple:
    """(name, dtype name, dims) of a graph input or output; a symbolic dim is its name."""
    import onnx

    t = value.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else None
    return value.name, dtype, [d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim]


def check_onnx(path: str | os.PathLike, *, weights: str | os.PathLike | None = None, mobile: bool = True,
               calibration=None) -> dict:
    """A report dict of every check; ExportError with one line naming the first failure.
    `weights` proves provenance by re-export; an int8 model calibrated on user images also needs
    those images (`calibration`, an array or a .npy path)."""
    from ..runtime import integrity

    path = Path(path)
    data = integrity.read_bounded(path)
    if is_ort_file(data):
        return check_ort(path, weights=weights, required=REQUIRED, calibration=calibration)
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ImportError:  # an edge install (numpy + onnxruntime): check what the runtime relies on
        report = check_ort(path, weights=weights, required=REQUIRED, calibration=calibration)
        report["format"] = "onnx"
        report["checker"] = ("onnxruntime loads it and its vitstem.digest matches (onnx is not installed, so no "
                             "onnx checker or graph digest: pip install onnx for those)")
        return report
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ExportError(f"{path}: not a readable ONNX file (truncated or corrupt: {_first_line(exc)})") from None
    if not model.graph.node:
        raise ExportError(f"{path}: not a readable ONNX file (no graph: truncated or not ONNX)")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in onnx.external_data_helper._get_all_tensors(model)):
        raise ExportError(f"{path}: refers to external data files; vitstem never writes those (not a vitstem export)")
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"{path}: onnx checker: {_first_line(exc)}") from None
    except UnicodeDecodeError:  # a name or string in the graph is not valid UTF-8
        raise ExportError(f"{path}: onnx checker: a name or string in the model is not valid UTF-8 "
                          "(corrupt file?)") from None
    meta = read_metadata(model.metadata_props, path)
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ExportError(f"{path}: metadata lacks {', '.join('vitstem.' + k for k in missing)} (not a vitstem export?)")
    graph = metadata.graph_digest(model.graph)
    if graph != meta["graph_digest"]:
        raise ExportError(f"{path}: vitstem.graph_digest mismatch: stored {meta['graph_digest']}, graph has {graph} "
                          "(the graph was changed after export)")
    try:
        spec = load_spec(json.loads(meta["spec"]))
    except (ValueError, SpecError) as exc:
        raise ExportError(f"{path}: vitstem.spec does not load: {_first_line(exc)}") from None
    if spec.digest() != meta["spec_digest"] or spec.to_json() != meta["spec"]:
        raise ExportError(f"{path}: vitstem.spec_digest mismatch: stored {meta['spec_digest']}, "
                          f"the stored spec round-trips to {spec.digest()}")
    options = parse_options(meta["export_options"], path)
    check_sizes_agree(spec, options, path)
    io = [_value_info(v) for v in model.graph.input], [_value_info(v) for v in model.graph.output]
    encoder = None
    if "encoder" in meta:  # a whole model (vitstem.deploy): the stem's input, the encoder's outputs
        encoder = parse_encoder(meta["encoder"], path)
        check_whole_io(path, expected_io(spec, options)[0], encoder, *io)
    else:
        check_io(path, expected_io(spec, options), *io)
    digest = integrity.verify(data, meta.get("digest"), path)
    if options["ort_format"]:
        _check_ort_beside(path, digest)
    report = {"path": str(path), "spec": spec.name, "spec_digest": spec.digest(), "graph_digest": graph, "digest": digest,
              "weights_digest": meta["weights_digest"], "vitstem_version": meta["version"],
              "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
              "ir_version": model.ir_version, "options": options, "checker": "ok", "format": "onnx"}
    if encoder is not None:
        report["encoder"] = encoder
    if weights is not None:
        from .provenance import check_provenance

        check_provenance(path, data, meta, spec, options, weights, calibration)
        report["weights"] = "match"
    if mobile:
        from .edge import mobile_usability

        try:
            try_eps, log = mobile_usability(path)
        except Exception as exc:  # onnxruntime's tools raise their own types for graphs they cannot analyse
            raise ExportError(f"{path}: onnxruntime's mobile usability analysis failed ({_first_line(exc)}); "
                              "--no-mobile skips it") from None
        report["mobile"] = {"nnapi_or_coreml_worth_trying": try_eps, "analysis": log.strip().splitlines()}
    return report
