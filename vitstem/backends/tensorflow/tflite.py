"""The stem as a LiteRT (TensorFlow Lite) flatbuffer: the Keras layer's graph converted by tf.lite, the spec
and provenance stored in the file's metadata (the same `vitstem.*` entries an exported ONNX file has).

    precision "fp32": float32 throughout; "fp16": float16 weights (dequantized on CPU, computed in
    float32); "int8": full integer (int8 weights, every op on integers, float32 in and out at the
    edges), calibrated on a representative dataset, with int16 activations by default (LiteRT's
    16x8 mode): with int8 activations one scale covers every token of z0, so prefix tokens whose norm
    is far below the patch tokens' (measured: 0.05 vs 3 with seeded weights) keep 1-2 levels and
    point elsewhere (token cosine 0.89); `activations="int8"` gives that all-int8 model anyway.
    Profile "exact" is refused: it runs eagerly (a tf.py_function), which no converter can turn
    into builtin ops, and LiteRT has no float64 arithmetic.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from typing import Mapping

import numpy as np
import tensorflow as tf

from ...errors import ExportError
from ...spec import Spec, check_weights, load_spec
from ...spec.digest import weights_digest
from ...spec.vocabulary import INPUT_NAME, OUTPUT_NAME, Layout, Precision, Profile
from . import stem

PREFIX = "vitstem."
ACTIVATION_OPSETS = {"int16": tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                     "int8": tf.lite.OpsSet.TFLITE_BUILTINS_INT8}


@contextlib.contextmanager
def _quiet_absl():
    """tf.lite logs (absl, WARNING) that from_concrete_functions without trackable_obj is deprecated: advice for
    its own API, not for vitstem's user, whose output should be vitstem's alone."""
    log = logging.getLogger("absl")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)

def convert(spec, weights: Mapping[str, np.ndarray], *, precision: str = "fp32", profile: str = "fast",
            batch: int = 1, image_size=None, representative: np.ndarray | None = None, activations: str = "int16") -> bytes:
    """The .tflite bytes of `spec`'s stem for `batch` images of `image_size` (default the spec's),
    with vitstem metadata. int8 calibrates on `representative` (a batch in the spec's layout).

    The batch is fixed: LiteRT 2.3 crashes (segfault) running some of these graphs converted with a
    dynamic batch after resize_tensor_input (e.g. tiny_no_cls_sincos at batch 3)."""
    spec = load_spec(spec)
    weights = check_weights(weights, spec)
    if precision not in Precision.choices():
        raise ExportError(f"precision {precision!r}: LiteRT export takes one of {', '.join(Precision.choices())}")
    if profile != Profile.FAST:
        raise ExportError(f"profile {profile!r}: the exact profile runs eagerly (tf.py_function) and LiteRT has "
                          "no float64 arithmetic, so only profile 'fast' converts to LiteRT")
    if activations not in ACTIVATION_OPSETS:
        raise ExportError(f"activations {activations!r}: int8 LiteRT models take 'int16' or 'int8' activations")
    if not isinstance(batch, int) or batch < 1:
        raise ExportError(f"batch {batch!r}: a LiteRT model takes a fixed batch size >= 1")
    if precision == "int8" and representative is None:
        raise ExportError("precision 'int8' needs a representative batch of images to calibrate on")
    size = tuple(spec.image_size if image_size is None else image_size)
    # What VitStemLayer.call traces in a graph, with the weights as constants: the converter would
    # keep Keras variables as resource variables (READ_VARIABLE ops the interpreter never fills).
    constants = {name: tf.constant(value) for name, value in weights.items()}
    dtype = tf.uint8 if spec.input.preprocess is not None else tf.float32

    layout = Layout(spec.input.layout)
    z0_of = _split_pre_norm(spec, constants, batch, size, dtype) if precision == "int8" else (
        lambda images: stem.forward(spec, constants, images, profile))

    @tf.function(input_signature=[tf.TensorSpec(layout.shape(batch, spec.in_channels, *size), dtype, name=INPUT_NAME)])
    def z0(images):
        return {OUTPUT_NAME: z0_of(images)}

    with _quiet_absl():
        converter = tf.lite.TFLiteConverter.from_concrete_functions([z0.get_concrete_function()])
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        images = np.asarray(representative)
        if layout.image_hw(images.shape) != size:
            raise ExportError(f"representative images have shape {images.shape}; the model takes {size[0]}x{size[1]}")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [ACTIVATION_OPSETS[activations]]
        if activations == "int16" and dtype == tf.uint8:  # 16x8 has no CAST: uint8 -> float stays float
            converter.target_spec.supported_ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
        converter.representative_dataset = lambda: ([np.repeat(images[i:i + 1], batch, 0).astype(dtype.as_numpy_dtype)]
                                                    for i in range(images.shape[0]))
    try:
        with _quiet_absl():
            flat = converter.convert()
    except Exception as exc:  # tf.lite raises ConverterError and others: the first line says which op
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"tf.lite cannot convert {spec.name} ({precision}): {first}") from None
    options = {"precision": precision, "profile": profile, "image_size": list(size), "batch": batch,
               **({"activations": activations} if precision == "int8" else {})}
    return with_metadata(flat, {"spec": spec.to_json(), "spec_digest": spec.digest(),
                                "weights_digest": weights_digest(weights), "export_options": json.dumps(options),
                                "flatbuffer_digest": "sha256:" + hashlib.sha256(flat).hexdigest()})


def _split_pre_norm(spec: Spec, constants, batch: int, size, dtype):
    """z0 (fast profile) with the pre-norm's prefix rows as a float32 constant: those rows do not depend
    on the image (tokens plus their table rows), and normalising them in the integer graph went wrong.
    Their norm is ~50x below the patch rows' (0.05 vs 3 with seeded weights), so the one int16 scale of
    the pre-norm's input and statistics left them a few levels: rows 0.29-0.39 off (int8 bound 0.1 of
    max|z0| = 0.24). The patch rows are normalised in the graph on their own, the prefix joins after."""
    n = spec.num_prefix_tokens
    if spec.pre_norm is None or n == 0:
        return lambda images: stem.forward(spec, constants, images, "fast")
    bare = spec.replace(pre_norm=None)
    blank = tf.zeros(Layout(spec.input.layout).shape(1, spec.in_channels, *size), dtype)
    prefix = stem.normalize(spec.pre_norm, constants, "norm_pre", stem.forward(bare, constants, blank, "fast")[:, :n])
    prefix = tf.constant(np.repeat(prefix.numpy(), batch, axis=0))

    def z0(images):
        patches = stem.forward(bare, constants, images, "fast")[:, n:]
        return tf.concat([prefix, stem.normalize(spec.pre_norm, constants, "norm_pre", patches)], axis=1)

    return z0


def with_metadata(flat: bytes, values: dict[str, str]) -> bytes:
    """The flatbuffer with `vitstem.<key>` metadata entries (each a buffer of UTF-8 text) set to `values`."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flat))
    model.metadata = [m for m in (model.metadata or []) if not m.name.decode().startswith(PREFIX)]
    for key, value in values.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(value.encode(), np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = (PREFIX + key).encode(), len(model.buffers) - 1
        model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(flat: bytes) -> dict[str, str]:
    """{key: value} of the `vitstem.*` metadata of a .tflite flatbuffer."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(flat, 0)
    out = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        name = entry.Name().decode()
        if name.startswith(PREFIX):
            out[name[len(PREFIX):]] = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode()
    return out

