"""`export_onnx`: spec + weights -> a checked, self-describing ONNX file, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import ExportError
from ..files import atomic_write_bytes
from ..spec import Spec, load_spec, load_weights
from ..spec.digest import weights_digest
from ..spec.exported import read_metadata
from ..spec.vocabulary import Precision, graph_input
from ..spec.weights import check_weights
from . import metadata
from .build import build_model
from .options import resolve_options
from ..runtime.integrity import PLACEHOLDER, seal, sealed_digest

PROTOBUF_LIMIT = 2**31 - 1


def build_onnx(spec, weights, *, opset=None, precision="fp32", profile="fast", batch="dynamic", image_size="fixed",
               preprocess_in_graph=False, io_dtype=None, calibration=None, ort_format=False):
    """The ModelProto `export_onnx` writes (same arguments, no path), checked with full_check; its
    vitstem.digest is the placeholder until `model_bytes` seals it."""
    import onnx

    from .. import __version__

    spec = load_spec(spec)
    if isinstance(weights, (str, os.PathLike)):
        weights = load_weights(weights, spec)
    weights = check_weights(weights, spec)
    opts = resolve_options(spec, opset=opset, precision=precision, profile=profile, batch=batch,
                           image_size=image_size, preprocess_in_graph=preprocess_in_graph, io_dtype=io_dtype,
                           ort_format=ort_format)
    if calibration is not None and opts.precision != Precision.INT8:
        raise ExportError("calibration images are only used with precision 'int8'")
    model = build_model(spec, weights, opts, __version__)
    check_constants_finite(model, opts.precision)
    extra = {}
    if opts.precision == Precision.INT8:
        from .int8_bound import check_int8
        from .quantize import calibration_digest, check_calibration, quantize_int8, synthetic_images

        layout, dtype = graph_input(spec, opts.preprocess_in_graph, opts.io_dtype)
        synthetic = synthetic_images(spec, opts, layout, dtype)
        images = synthetic if calibration is None else check_calibration(calibration, dtype, layout, spec, opts.sizes)
        model = quantize_int8(model, images, batch=opts.batch, float_matmul_output=True)
        model.ir_version = onnx.helper.find_min_ir_version_for(list(model.opset_import))
        model.producer_name, model.producer_version = "vitstem", __version__
        batches = [("synthetic", synthetic)] + ([] if calibration is None else [("calibration", images)])
        check_int8(model, spec, weights, batches, layout, opts.batch)
        extra["calibration"] = "synthetic" if calibration is None else calibration_digest(images)
    if model.ByteSize() > PROTOBUF_LIMIT:
        raise ExportError(f"the model would be {model.ByteSize()} bytes, over protobuf's 2 GiB limit; "
                          "export fewer image sizes or a smaller spec")
    metadata.attach(model, {
        "spec": spec.to_json(), "spec_digest": spec.digest(), "weights_digest": weights_digest(weights),
        "graph_digest": metadata.graph_digest(model.graph), "export_options": opts.to_json(),
        "version": __version__, **extra, "digest": PLACEHOLDER,
    })
    model.doc_string = (f"vitstem stem of {spec.name}: z0 = pre_norm([prefix tokens; patches E] + E_pos), "
                        f"shape (batch, tokens, {spec.embed_dim})")
    onnx.checker.check_model(model, full_check=True)
    return model


def check_constants_finite(model, precision) -> None:
    """ExportError naming the first graph constant that overflowed when folded or rounded to the compute
    dtype (weights or preprocessing too large for it): such a graph would give inf/NaN for every image."""
    from onnx import numpy_helper

    for tensor in model.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            raise ExportError(f"{precision}: the graph constant {tensor.name} {tuple(array.shape)} has {bad} non-finite "
                              f"values in {array.dtype} (the weights, folded with the preprocessing, overflow it); "
                              f"check the weights' magnitude{', or export fp32' if precision == Precision.FP16 else ''}")


def export_onnx(spec: "Spec | Mapping | str", weights, path: str | os.PathLike, *, opset: int | None = None,
                precision: str = "fp32", profile: str = "fast", batch: "str | int" = "dynamic",
                image_size="fixed", preprocess_in_graph: bool = False, ort_format: bool = False,
                io_dtype: str | None = None, calibration: np.ndarray | None = None) -> Path:
    """Write the stem of `spec` with `weights` (mapping or safetensors path) as an ONNX file.

    Never imports torch or TensorFlow. See the README for the options; every invalid combination
    raises ExportError naming what would work. With ort_format, also writes `path` with suffix .ort
    and its reduced-build operator config (suffix .required_operators_and_types.config).
    Returns the path written.
    """
    from ..outputs import check_distinct, target

    path = Path(path)
    ort_path = path.with_suffix(".ort") if ort_format else None
    check_distinct([path, ort_path], [weights] if isinstance(weights, (str, os.PathLike)) else [])
    target(path)
    if ort_path is not None:
        target(ort_path)
    model = build_onnx(spec, weights, opset=opset, precision=precision, profile=profile, batch=batch,
                       image_size=image_size, preprocess_in_graph=preprocess_in_graph, io_dtype=io_dtype,
                       calibration=calibration, ort_format=ort_format)
    data = model_bytes(model)
    atomic_write_bytes(path, data)
    if ort_format:
        from .edge import write_operator_config, write_ort_format

        write_operator_config(write_ort_format(model, sealed_digest(data), path.with_suffix(".ort")))
    return path


def model_bytes(model) -> bytes:
    """The file `export_onnx` writes for `model`: deterministic serialisation, vitstem.digest filled in."""
    return seal(model.SerializeToString(deterministic=True))


def resealed_bytes(model) -> bytes:
    """`model_bytes` of a model whose vitstem metadata was built from another file's (e.g. a stem joined
    to an encoder): its graph digest and vitstem.digest are computed again, for these bytes."""
    values = read_metadata(model.metadata_props)
    values["graph_digest"], values["digest"] = metadata.PENDING_GRAPH_DIGEST, PLACEHOLDER
    metadata.attach(model, values)
    return seal(metadata.fill_graph_digest(model.SerializeToString(deterministic=True)))
