"""keras-hub ViT <-> (spec, weights).

keras-hub's stem is `ViTPatchingAndEmbedding` (keras_hub/src/models/vit/vit_layers.py): a
Conv2D (kernel HWIO), then [cls] prepended and a position table of N (+1) rows added, with no
batch dimension and no norm before the encoder. Its data_format is the spec's layout.
The backbone takes normalised floats (preprocessing is a separate ViTImageConverter).
The other keras-hub families (DeiT, CLIP, MetaCLIP 2, SigLIP, DINOv2/v3, Gemma 3 vision, ViTDet) are
read by keras_hub_families.py; `from_keras_hub` dispatches to it.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import SpecError
from ..spec import Spec, check_weights, load_spec
from ..spec.vocabulary import Layout
from .assemble import as_float32, assemble, checked_preprocess
from .keras_hub_families import FAMILIES, family_channels, find_family_layer, from_family
from .table import stored_table

LAYER_CLASS = "ViTPatchingAndEmbedding"
LAYER_NAME = "vit_patching_and_embedding"


def _vit_layer(obj):
    if type(obj).__name__ == LAYER_CLASS:
        return obj
    return next((layer for layer in getattr(obj, "layers", ()) if type(layer).__name__ == LAYER_CLASS), None)


def _embedding_layer(obj):
    layer = _vit_layer(obj)
    if layer is None:
        raise SpecError(f"{type(obj).__name__} is neither a keras-hub ViTBackbone nor its {LAYER_CLASS} layer, nor "
                        f"one of {', '.join(sorted(set(FAMILIES.values())))}")
    return layer


def converter_preprocess(converter, channels: int) -> dict | None:
    """{scale, mean, std} doing what a keras-hub ImageConverter's `x * scale + offset` does.

    A scalar scale maps exactly: (p * scale - (-offset)) / 1. Per-channel scales s_c become
    scale 1, std 1/s_c, mean -offset_c/s_c. The converter's resizing is outside the stem.
    """
    if converter is None:
        return None

    def per_channel(value, default):
        value = default if value is None else value
        return [float(value)] * channels if np.isscalar(value) else [float(v) for v in value]

    scale, offset = converter.scale, per_channel(converter.offset, 0.0)
    if scale is None or np.isscalar(scale):
        doc = {"scale": 1.0 if scale is None else float(scale), "mean": [-o for o in offset], "std": [1.0] * channels}
    else:
        scales = per_channel(scale, 1.0)
        doc = {"scale": 1.0, "mean": [-o / s for o, s in zip(offset, scales)], "std": [1.0 / s for s in scales]}
    return checked_preprocess(doc, channels)


def from_keras_hub(backbone_or_layer, *, image_converter=None, preprocess=None,
                   name: str | None = None) -> tuple[Spec, dict[str, np.ndarray]]:
    """(spec, canonical weights) reproducing the output of a keras-hub ViT's patching-and-embedding layer,
    or of the embedding layer (+ pre-norm) of the families in keras_hub_families.FAMILIES.

    image_converter: a keras-hub (ViT)ImageConverter whose scale/offset become the spec's
    preprocessing; or preprocess: {scale, mean, std}; with neither the spec takes the normalised
    floats the backbone takes.
    """
    family = find_family_layer(backbone_or_layer) if _vit_layer(backbone_or_layer) is None else None
    if family is not None:
        pre = converter_preprocess(image_converter, family_channels(family)) if image_converter is not None \
            else checked_preprocess(preprocess, family_channels(family))
        return from_family(backbone_or_layer, family, preprocess=pre, name=name)
    layer = _embedding_layer(backbone_or_layer)
    if not layer.built:
        raise SpecError(f"the {LAYER_CLASS} layer is not built yet (call the backbone once or build it)")
    conv = layer.patch_embedding
    if tuple(conv.strides) != tuple(conv.kernel_size) or conv.padding != "valid" or conv.activation.__name__ != "linear":
        raise SpecError(f"{LAYER_CLASS}: the patch conv is not a linear conv with kernel = stride, padding valid")
    kernel = as_float32(conv.kernel, "patch_embedding/kernel").transpose(3, 2, 0, 1)  # HWIO -> OIHW
    table = as_float32(layer.position_embedding.embeddings, "position_embedding/embeddings")
    spec, weights = assemble(
        name=name or getattr(backbone_or_layer, "name", None) or "keras_hub_vit",
        kernel=kernel, bias=conv.bias if conv.use_bias else None,
        image_size=tuple(int(s) for s in layer.image_size),
        cls=layer.class_token if layer.use_class_token else None,
        pos=table[None], covers_prefix=True,
        layout=Layout.NHWC if layer.data_format == "channels_last" else Layout.NCHW,
        preprocess=converter_preprocess(image_converter, kernel.shape[1]) if image_converter is not None
        else checked_preprocess(preprocess, kernel.shape[1]))
    _check_bias_add_bug(spec)  # the layer would not compute what its weights say
    return spec, weights


def keras_hub_expressible(spec: Spec) -> None:
    """SpecError unless a keras-hub ViTPatchingAndEmbedding can compute this stem's z0."""
    problems = []
    if spec.prefix.dist_token or spec.prefix.register_tokens:
        problems.append(("prefix", "keras-hub ViT has a class token only (no distillation or register tokens)"))
    if spec.pre_norm is not None:
        problems.append(("pre_norm", "keras-hub ViT has no norm before the encoder"))
    if spec.patch_norm is not None:
        problems.append(("patch_norm", "keras-hub ViT has no norm after the patch projection"))
    if spec.dynamic_image_size:
        problems.append(("dynamic_image_size", "keras-hub ViT runs at its image_shape only"))
    if problems:
        raise SpecError(problems)
    _check_bias_add_bug(spec)


def _check_bias_add_bug(spec: Spec) -> None:
    """Keras 3 on TensorFlow: `keras.ops.add(x, bias.reshape(1, D, 1, 1))` becomes `tf.nn.bias_add`
    in NHWC whenever x's last axis also has length D, so a channels_first Conv2D adds its bias
    along the width when the patch grid is D wide (seen with keras 3.15, TF 2.21)."""
    if spec.input.layout != Layout.NCHW or not spec.patch_bias or spec.patch_grid()[1] != spec.embed_dim:
        return
    import keras

    if keras.backend.backend() == "tensorflow":
        raise SpecError([("input.layout", f"keras (TensorFlow backend) adds a channels_first conv bias along the "
                          f"width when the grid width equals embed_dim ({spec.embed_dim}); use NHWC")])


def to_keras_hub(spec, weights: Mapping[str, np.ndarray], backbone=None):
    """A built keras-hub ViTPatchingAndEmbedding holding these weights (same z0 on normalised input);
    or, given a built `backbone` of any family from_keras_hub reads, that backbone with the stem's weights
    written into it (keras_hub_write.py; its stem's shape must be the spec's) and returned.

    The layer does not preprocess: feed it the spec's preprocessed images (keras-hub's
    ViTImageConverter(scale=s/std, offset=-mean/std) does the same normalisation).
    """
    spec = load_spec(spec)
    weights = check_weights(weights, spec)
    if backbone is not None:
        from .keras_hub_write import write_stem

        own, _ = from_keras_hub(backbone)
        layer = _vit_layer(backbone)
        layer = find_family_layer(backbone) if layer is None else layer
        write_stem(backbone, layer, own, spec, weights)
        return backbone
    keras_hub_expressible(spec)
    from keras_hub.src.models.vit.vit_layers import ViTPatchingAndEmbedding

    layout = spec.input.layout
    layer = ViTPatchingAndEmbedding(
        image_size=spec.image_size, patch_size=spec.patch_size, hidden_dim=spec.embed_dim,
        num_channels=spec.in_channels, use_class_token=spec.prefix.class_token, use_patch_bias=spec.patch_bias,
        data_format="channels_last" if layout == Layout.NHWC else "channels_first", name=LAYER_NAME, dtype="float32")
    layer.build(spec.input_shape(None))
    if spec.prefix.class_token:
        layer.class_token.assign(weights["cls_token"])
    layer.patch_embedding.kernel.assign(weights["patch_embed.weight"].transpose(2, 3, 1, 0))  # OIHW -> HWIO
    if spec.patch_bias:
        layer.patch_embedding.bias.assign(weights["patch_embed.bias"])
    layer.position_embedding.embeddings.assign(stored_table(spec, weights, every_prefix_row=True)[0])
    return layer
