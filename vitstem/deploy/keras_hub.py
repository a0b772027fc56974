"""Whole keras-hub models: the stem from `from_keras_hub`, the encoder exported by keras's own ONNX exporter.

A keras-hub backbone is a functional keras Model, so its encoder is the sub-graph from z0 (the embedding's
output; CLIP / MetaCLIP 2: the pre-norm's; ViTDet: the grid after its position table) to the backbone's
outputs, cut out with `keras.Model(z0, outputs)` and exported by `Model.export(format="onnx")` (TensorFlow
backend: tf2onnx). keras-hub backbones run only at the size they are built for, so the file is fixed-size.
Refused, naming why: DINOv3 (rope from the image) and Gemma 3 (no z0 tensor), fp16 (keras exports float32
only), another keras backend, tf2onnx missing, a TensorFlow op tf2onnx leaves unconverted (keras_onnx.py).
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import ExportError

PEER = "keras_hub"
KERAS_ROOTS = ("keras_hub", "keras")
# family -> why its encoder is not the functional graph from z0 on
NOT_SPLIT = {
    "DINOV3Backbone": "its attention takes the rotary embedding (rope) that DINOV3RopePositionEmbedding computes from "
                      "the image input, so its encoder is not a function of z0 alone",
    "Gemma3VisionEncoder": "it calls its embedding inside Gemma3VisionEncoderBlock, so its functional graph has no z0 "
                           "tensor to cut at",
}
CLIP_LIKE = ("CLIPVisionEncoder", "MetaCLIP2VisionEncoder")  # z0 is the output of pre_layer_norm


def is_keras(model) -> bool:
    """Whether `model` is a keras (keras-hub) model, without importing keras."""
    return type(model).__module__.split(".")[0] in KERAS_ROOTS


def _family(model) -> tuple[str, object]:
    """(family label, embedding layer) of a keras-hub backbone from_keras_hub reads."""
    from ..interop.keras_hub import LAYER_CLASS
    from ..interop.keras_hub_families import FAMILIES, find_family_layer

    vit = next((layer for layer in getattr(model, "layers", ()) if type(layer).__name__ == LAYER_CLASS), None)
    layer = vit if vit is not None else find_family_layer(model)
    if layer is None:
        raise ExportError(f"{type(model).__name__}: no keras-hub ViT embedding layer in it ({LAYER_CLASS} or one of "
                          f"{', '.join(sorted(FAMILIES))}); export its encoder yourself and use vitstem compose")
    return ("ViTBackbone" if vit is not None else FAMILIES[type(layer).__name__]), layer


def check_exportable(model, precision: str) -> None:
    """ExportError unless keras's ONNX exporter can export this model's encoder here."""
    import importlib.util

    import keras

    family, _ = _family(model)
    if family in NOT_SPLIT:
        raise ExportError(f"{type(model).__name__}: export_model cannot take the stem out of a keras-hub {family}: "
                          f"{NOT_SPLIT[family]}; export the encoder yourself and use vitstem compose")
    if keras.backend.backend() != "tensorflow":
        raise ExportError(f"keras-hub models are exported with keras's ONNX exporter on the TensorFlow backend "
                          f"(tf2onnx); this process runs keras on {keras.backend.backend()} (set KERAS_BACKEND=tensorflow)")
    if precision == "fp16":
        raise ExportError("precision fp16: keras's ONNX exporter exports float32 models only; use fp32 or int8")
    policy = getattr(model.dtype_policy, "name", str(model.dtype_policy))
    if policy != "float32":
        raise ExportError(f"{type(model).__name__} has dtype policy {policy}; keras's ONNX exporter needs float32 "
                          "(build the backbone with dtype='float32')")
    if importlib.util.find_spec("tf2onnx") is None:
        raise ExportError("keras's ONNX exporter needs tf2onnx, which is not installed (pip install 'vitstem[interop]')")


def convert(model, preprocess="auto"):
    """(spec, weights) of the backbone's stem, by vitstem.interop.from_keras_hub. preprocess: "auto" or None
    (the backbone's own input: normalised floats; ViTDet: pixels, normalised inside), {scale, mean, std}, or a
    keras-hub ImageConverter (its scale and offset)."""
    from ..interop import from_keras_hub

    if isinstance(preprocess, str) and preprocess == "auto" or preprocess is None:
        return from_keras_hub(model)
    if isinstance(preprocess, dict):
        return from_keras_hub(model, preprocess=preprocess)
    return from_keras_hub(model, image_converter=preprocess)


def _named_outputs(model) -> list[tuple[str, object]]:
    """The backbone's outputs as (name, tensor) in the order its call returns them: one tensor `output`, a
    dict's keys, or `output_<i>` for a list."""
    out = model.output
    if isinstance(out, dict):
        return list(out.items())
    if isinstance(out, (list, tuple)):
        return [(f"output_{i}", o) for i, o in enumerate(out)] if len(out) > 1 else [("output", out[0])]
    return [("output", out)]


def encoder_model(model):
    """(keras Model: z0 (batch, tokens, D) -> the backbone's outputs as a list, output names)."""
    import keras

    family, layer = _family(model)
    try:
        if family in CLIP_LIKE:
            z0 = model.pre_layer_norm.output
        elif family == "ViTDetBackbone":
            added = [lay for lay in model.layers if type(lay).__name__ == "AddPositionalEmbedding"]
            z0 = (added[0] if added else layer).output
        else:
            z0 = layer.output
        named = _named_outputs(model)
        encoder = keras.Model(inputs=z0, outputs=[t for _, t in named])
        if len(z0.shape) == 3:  # the same layers called anew on (batch, any tokens, D): keras-hub's
            # SigLIPVisionEmbedding declares one token more than it returns (a class token it does not have)
            encoder = keras.models.clone_model(encoder, input_tensors=keras.Input((None, z0.shape[2])),
                                               clone_function=lambda layer: layer)
    except (AttributeError, ValueError) as exc:  # never called, called twice, or outputs not reached from z0
        raise ExportError(f"{type(model).__name__}: its encoder cannot be cut out of its functional graph at z0 "
                          f"({str(exc).strip().splitlines()[0]}); export it yourself and use vitstem compose") from None
    if len(z0.shape) == 4:  # ViTDet's encoder takes the (B, H/P, W/P, D) grid; the stem gives it flattened
        _, gh, gw, d = z0.shape
        tokens = keras.Input((gh * gw, d))
        encoder = keras.Model(tokens, encoder(keras.layers.Reshape((gh, gw, d))(tokens)))
    return encoder, [name for name, _ in named]


def export_encoder(model, spec, opset: int) -> tuple:
    """(ModelProto, info for vitstem.encoder) of the backbone's encoder: input z0 (batch, tokens, D) float32 at
    the native token count, outputs named as `_named_outputs`, checked in ONNX Runtime vs keras."""
    import keras_hub
    import onnx

    from .keras_onnx import exported, mismatch, repaired
    from .verification import TOLERANCE

    encoder, names = encoder_model(model)
    tokens, d = spec.num_tokens(spec.image_size), spec.embed_dim
    proto = repaired(onnx.load_model_from_string(exported(encoder, tokens, d, opset)), names)
    data = proto.SerializeToString()
    problem = mismatch(data, encoder, tokens, d, TOLERANCE["fp32"])
    if problem is not None:
        raise ExportError(f"the encoder exported by keras's ONNX exporter does not match the keras model: {problem}")
    return proto, {"peer": PEER, "class": type(model).__name__, "version": keras_hub.__version__,
                   "digest": "sha256:" + hashlib.sha256(data).hexdigest()}


def reference(model, spec):
    """(pixels, normalised), NCHW numpy -> {output name: numpy}: the backbone's own call on the images it takes
    (the spec's layout; ViTDet normalises inside the model, so it gets the scaled pixels)."""
    import keras

    family, _ = _family(model)
    names = [name for name, _ in _named_outputs(model)]
    pre = spec.input.preprocess

    def forward(pixels, normalised):
        x = pixels.astype(np.float32) * np.float32(pre.scale) if family == "ViTDetBackbone" else normalised
        x = np.ascontiguousarray(x.transpose(spec.input.layout.from_nchw), np.float32)
        if isinstance(model.input, dict):  # keras-hub names its image input ("images", "pixel_values")
            x = {next(iter(model.input)): x}
        return dict(zip(names, (keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(model(x, training=False)))))

    return forward
