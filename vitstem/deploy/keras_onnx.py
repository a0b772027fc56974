"""keras's ONNX exporter on a keras encoder (z0 -> outputs): export it, repair what tf2onnx 1.17 leaves, and
check the result in ONNX Runtime against the keras call. Imports TensorFlow, tf2onnx and onnx when used."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..errors import ExportError
from .encoder import ENCODER_INPUT


@contextlib.contextmanager
def _quiet():
    """tf2onnx's logging (it reports ops it leaves unconverted, checked after) and numpy warnings silenced."""
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def exported(encoder, tokens: int, d: int, opset: int) -> bytes:
    """The encoder as keras's exporter writes it: input z0 (batch, tokens, D), tf2onnx at `opset` or its newest."""
    import tensorflow as tf
    from tf2onnx.constants import OPSET_TO_IR_VERSION

    signature = [tf.TensorSpec((None, tokens, d), tf.float32, name=ENCODER_INPUT)]
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        path = Path(tmp) / "encoder.onnx"
        try:
            encoder.export(str(path), format="onnx", input_signature=signature, verbose=False,
                           opset_version=min(opset, max(OPSET_TO_IR_VERSION)))
        except Exception as exc:  # tf2onnx and TensorFlow raise many types: name the first line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"keras's ONNX exporter could not export the encoder: {first}") from None
        return path.read_bytes()


def _erfc_as_erf(graph) -> None:
    """Erfc(x) as 1 - Erf(x): TensorFlow's exact GELU uses Erfc, which tf2onnx 1.17 passes through unconverted."""
    from onnx import helper, numpy_helper

    nodes = []
    for node in graph.node:
        if node.op_type != "Erfc" or node.domain:
            nodes.append(node)
            continue
        one, erf = node.output[0] + "/one", node.output[0] + "/erf"
        graph.initializer.append(numpy_helper.from_array(np.array(1, np.float32), one))
        nodes += [helper.make_node("Erf", [node.input[0]], [erf], name=node.name + "/Erf"),
                  helper.make_node("Sub", [one, erf], [node.output[0]], name=node.name)]
    del graph.node[:]
    graph.node.extend(nodes)


def repaired(proto, names):
    """The exported encoder with Erfc rewritten and its outputs renamed to `names`; ExportError when an op is
    left that ONNX does not define (a TensorFlow op tf2onnx cannot convert)."""
    import onnx

    graph = proto.graph
    _erfc_as_erf(graph)
    unknown = sorted({n.op_type for n in graph.node if n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type)})
    if unknown:
        raise ExportError(f"keras's ONNX exporter (tf2onnx) left TensorFlow op(s) {', '.join(unknown)} unconverted "
                          "in the encoder; ONNX Runtime cannot run them")
    renamed = {o.name: name for o, name in zip(graph.output, names)}
    for node in graph.node:
        node.input[:] = [renamed.get(n, n) for n in node.input]
        node.output[:] = [renamed.get(n, n) for n in node.output]
    for value in graph.output:
        value.name = renamed[value.name]
    return proto


def mismatch(data: bytes, encoder, tokens: int, d: int, tolerance: float) -> str | None:
    """None when the exported encoder, in ONNX Runtime on seeded N(0, 1) z0 (batch 2), matches the keras
    encoder's own call within tolerance * max(1, max|ref|); else what differs."""
    import keras
    import onnxruntime as ort

    quiet = ort.SessionOptions()
    quiet.log_severity_level = 4
    quiet.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    z0 = np.random.default_rng(0).standard_normal((2, tokens, d)).astype(np.float32)
    try:
        got = ort.InferenceSession(data, quiet, providers=["CPUExecutionProvider"]).run(None, {ENCODER_INPUT: z0})
    except Exception as exc:  # onnxruntime's errors carry no common type
        return f"ONNX Runtime cannot run it ({str(exc).strip().splitlines()[0][:200]})"
    want = [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(encoder(z0, training=False))]
    for g, w in zip(got, want):
        if g.shape != w.shape or not np.abs(g - w).max() <= tolerance * max(1.0, float(np.abs(w).max())):
            return f"at {tokens} tokens it differs from the keras model's call (shape {g.shape} vs {w.shape})"
    return None
