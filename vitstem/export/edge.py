"""Edge deployment helpers from onnxruntime's tools: the .ort file and the mobile usability verdict."""

from __future__ import annotations

import io
import logging
import tempfile
from pathlib import Path

from ..files import atomic_write_bytes


def write_ort_format(model, onnx_digest: str, ort_path: Path) -> Path:
    """Convert to ORT format as `onnxruntime.tools.convert_onnx_models_to_ort` does by default
    (all optimizations except the x86-only NCHWc layout), then write it atomically. The .ort carries
    vitstem.onnx_digest (the vitstem.digest of the .onnx written for `model`) and its own vitstem.digest."""
    import onnxruntime as ort

    from ..runtime.integrity import PLACEHOLDER, seal
    from ..spec.exported import read_metadata
    from . import metadata

    values = read_metadata(model.metadata_props)
    values["onnx_digest"] = onnx_digest
    values["digest"] = PLACEHOLDER
    model = type(model).FromString(model.SerializeToString())
    metadata.attach(model, values)
    onnx_bytes = model.SerializeToString(deterministic=True)

    with tempfile.TemporaryDirectory(prefix="vitstem-ort-") as tmp:
        target = Path(tmp, "model.ort")
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(target)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.save_model_format", "ORT")
        ort.InferenceSession(onnx_bytes, sess_options=so, providers=["CPUExecutionProvider"],
                             disabled_optimizers=["NchwcTransformer"])
        return atomic_write_bytes(ort_path, seal(target.read_bytes()))


def write_ort_of(onnx_bytes: bytes, ort_path: Path) -> Path:
    """`write_ort_format` for the bytes of an exported (sealed) .onnx file."""
    import onnx

    from ..runtime.integrity import sealed_digest

    return write_ort_format(onnx.load_model_from_string(onnx_bytes), sealed_digest(onnx_bytes), ort_path)


def operator_config_path(ort_path: Path) -> Path:
    return Path(ort_path).with_suffix(".required_operators_and_types.config")


def write_operator_config(ort_path: Path) -> Path:
    """The reduced-build configuration of an .ort file (operators and the types they use), as
    `convert_onnx_models_to_ort --enable_type_reduction` writes it: give it to ONNX Runtime's
    build.sh --include_ops_by_config to build an ORT Mobile runtime with only those kernels."""
    from onnxruntime.tools.ort_format_model import create_config_from_models

    quiet = logging.getLogger("ort_format_model.utils")
    level, quiet.level = quiet.level, logging.WARNING  # it logs "Created config in <temp path>"
    with tempfile.TemporaryDirectory(prefix="vitstem-ops-") as tmp:
        target = Path(tmp, "ops.config")
        try:
            create_config_from_models([Path(ort_path)], target, enable_type_reduction=True)
        finally:
            quiet.setLevel(level)
        return atomic_write_bytes(operator_config_path(ort_path), target.read_bytes())


def mobile_usability(model_path: Path) -> tuple[bool, str]:
    """(NNAPI/CoreML worth trying, onnxruntime's log of the analysis), from its usability checker."""
    from onnxruntime.tools.mobile_helpers import usability_checker

    stream = io.StringIO()
    logger = logging.getLogger("vitstem.check.mobile")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    try_eps = usability_checker.analyze_model(Path(model_path), skip_optimize=False, logger=logger)
    return bool(try_eps), stream.getvalue()
