"""keras-hub backbones other than ViT -> (spec, weights): DeiT, CLIP, MetaCLIP 2, SigLIP, DINOv2,
DINOv3, Gemma 3 vision and ViTDet (keras-hub 0.32; each layer's `call` read in its source).

Every fact is read from the built layers: the Conv2D (kernel, bias, strides, data_format), the
tokens that exist, the table the layer adds (an `Embedding` looked up at its `position_ids`, which
CLIP keeps as a weight), the pre-norm. keras-hub backbones run at the one size they were built for
(the `Input` fixes it), so the spec is fixed-size: DINOv2's table is the `interpolated_position_embeddings`
variable the layer adds, not a resampling of `position_embeddings` (the trainable copy is what runs).
"""

from __future__ import annotations

import numpy as np

from ..errors import SpecError
from ..spec.vocabulary import Layout
from .assemble import as_float32, assemble
from .hf import conv_remainder

# embedding layer class -> family label (the backbone class in messages)
FAMILIES = {
    "DeiTEmbeddings": "DeiTBackbone",
    "CLIPVisionEmbedding": "CLIPVisionEncoder",
    "MetaCLIP2VisionEmbedding": "MetaCLIP2VisionEncoder",
    "SigLIPVisionEmbedding": "SigLIPVisionEncoder",
    "DINOV2Embedding": "DINOV2Backbone",
    "DINOV3Embedding": "DINOV3Backbone",
    "Gemma3VisionEmbedding": "Gemma3VisionEncoder",
    "ViTDetPatchingAndEmbedding": "ViTDetBackbone",
}
# ViTDetBackbone.__init__ normalises (x - mean) / std inside the model (keras-hub 0.32, hard-coded there).
VITDET_MEAN, VITDET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _sublayers(obj) -> list:
    flatten = getattr(obj, "_flatten_layers", None)
    return list(flatten(include_self=True, recursive=True)) if flatten else [obj]


def find_family_layer(obj):
    """The family embedding layer inside `obj` (a backbone or the layer itself), or None."""
    return next((layer for layer in _sublayers(obj) if type(layer).__name__ in FAMILIES), None)


def _patch_conv(layer):
    for attr in ("patch_embedding", "patch_embeddings", "projection"):
        conv = getattr(layer, attr, None)
        if conv is not None:
            return getattr(conv, "projection", conv)  # DINOv2/v3 wrap theirs in a PatchEmbedding layer
    raise SpecError(f"{type(layer).__name__}: no patch conv found")


def family_channels(layer) -> int:
    """Input channels of the family layer's patch conv (for the preprocessing arguments)."""
    return int(_patch_conv(layer).kernel.shape[2])


def _conv(family: str, conv):
    if tuple(conv.strides) != tuple(conv.kernel_size) or conv.padding != "valid" or \
            getattr(conv.activation, "__name__", "linear") != "linear" or tuple(conv.dilation_rate) != (1, 1):
        raise SpecError(f"{family}: the patch conv is not a linear conv with kernel = stride, padding valid")
    kernel = as_float32(conv.kernel, f"{conv.name}/kernel").transpose(3, 2, 0, 1)  # HWIO -> OIHW
    return kernel, (conv.bias if conv.use_bias else None), Layout.NCHW if conv.data_format == "channels_first" else Layout.NHWC


def _looked_up(embedding, ids) -> np.ndarray:
    """The rows an `Embedding` adds: its table gathered at the layer's position_ids."""
    table = as_float32(embedding.embeddings, f"{embedding.name}/embeddings")
    return table[np.asarray(ids).reshape(-1).astype(np.int64)][None]


def _layer_norm(family: str, norm):
    axis = norm.axis if isinstance(norm.axis, int) else tuple(norm.axis)
    if axis not in (-1, (-1,), 2, (2,)) or not (norm.center and norm.scale) or getattr(norm, "rms_scaling", False):
        raise SpecError(f"{family}: {norm.name} is not an affine LayerNorm over the embedding")
    return norm.gamma, norm.beta, float(norm.epsilon)


def _image_hw(obj, layer, layout: str) -> tuple[int, int]:
    """The size the layer is built for: its image_size / image_shape, else the backbone's image_shape."""
    size = getattr(layer, "image_size", None) or getattr(layer, "image_shape", None)
    if size is None:
        shape = tuple(getattr(obj, "image_shape", None) or ())
        if len(shape) != 3 or any(s is None for s in shape):
            raise SpecError(f"{type(obj).__name__}: no fixed image_shape to build the spec for (got {shape!r})")
        return (int(shape[1]), int(shape[2])) if layout == Layout.NCHW else (int(shape[0]), int(shape[1]))
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def family_facts(obj, layer) -> dict:
    """assemble() keyword arguments for the family of `layer`, found inside `obj`."""
    kind, family = type(layer).__name__, FAMILIES[type(layer).__name__]
    if not layer.built:
        raise SpecError(f"{family}: the {kind} layer is not built yet (call the backbone once or build it)")
    facts: dict = {}
    if kind == "DeiTEmbeddings":
        conv = layer.patch_embedding
        facts.update(cls=layer.class_token, dist=layer.distillation_token, pos=layer.position_embedding,
                     covers_prefix=True)
    elif kind in ("CLIPVisionEmbedding", "MetaCLIP2VisionEmbedding"):
        conv = layer.patch_embedding
        norm = getattr(obj, "pre_layer_norm", None)
        if norm is None:
            raise SpecError(f"{family}: pass the encoder, not its {kind}: its pre_layer_norm is part of the stem")
        facts.update(cls=as_float32(layer.class_embedding, "class_embedding").reshape(1, 1, -1),
                     pos=_looked_up(layer.position_embedding, layer.position_ids), covers_prefix=True,
                     pre_norm=_layer_norm(family, norm))
    elif kind in ("SigLIPVisionEmbedding", "Gemma3VisionEmbedding"):
        conv = layer.patch_embedding
        facts.update(pos=_looked_up(layer.position_embedding, layer.position_ids), covers_prefix=False)
    elif kind == "DINOV2Embedding":
        conv = layer.patch_embeddings.projection
        table = as_float32(layer.interpolated_position_embeddings, "interpolated_position_embeddings")
        registers = layer.num_register_tokens
        # Order [cls, registers..., patches]; the table covers cls (row 0) and the patches, not the
        # registers (concatenated after the add): zero rows for them add nothing, exactly.
        pos = np.concatenate([table[:, :1], np.zeros((1, registers, table.shape[2]), np.float32), table[:, 1:]], 1)
        facts.update(cls=layer.cls_token, reg=layer.register_tokens if registers else None, pos=pos,
                     covers_prefix=True)
    elif kind == "DINOV3Embedding":  # rope acts inside attention; z0 has no table
        conv = layer.patch_embeddings.projection
        facts.update(cls=layer.cls_token, reg=layer.register_tokens if layer.num_register_tokens else None)
    else:  # ViTDetPatchingAndEmbedding: its (B, H/P, W/P, D) grid, flattened row-major, is z0
        conv = layer.projection
        added = [lay for lay in _sublayers(obj) if type(lay).__name__ == "AddPositionalEmbedding"]
        if added:
            facts.update(pos=added[0].pos_embed, covers_prefix=False)
        facts["preprocess"] = {"scale": 1.0, "mean": VITDET_MEAN, "std": VITDET_STD}
    kernel, bias, layout = _conv(family, conv)
    image = _image_hw(obj, layer, layout)
    facts.update(kernel=kernel, bias=bias, layout=layout, image_size=image,
                 remainder=conv_remainder(image, kernel.shape[2:], False))
    return facts


def from_family(obj, layer, *, preprocess=None, name=None):
    """(spec, weights) of a keras-hub family backbone; `preprocess` as from_keras_hub's."""
    facts = family_facts(obj, layer)
    if facts.get("preprocess") is not None and preprocess is not None:  # ViTDet: scale pixels first, then its own
        if any(m != 0 for m in preprocess["mean"]) or any(s != 1 for s in preprocess["std"]):
            raise SpecError("ViTDetBackbone normalises inside the model; give only a scale (mean 0, std 1)")
        facts["preprocess"] = {**facts["preprocess"], "scale": preprocess["scale"]}  # (p * s - mean) / std
    elif preprocess is not None:
        facts["preprocess"] = preprocess
    return assemble(name=name or getattr(obj, "name", None) or "keras_hub_vit", resample="timm", **facts)
