"""(spec, weights) -> into a built keras-hub backbone: the way back of `from_keras_hub` for every family it reads
(ViT, DeiT, CLIP, MetaCLIP 2, SigLIP, DINOv2, DINOv3, Gemma 3 vision, ViTDet; keras-hub 0.32).

The backbone fixes the stem's shape (size, patch, D, tokens, pre-norm, layout); the spec must have the same
(the backbone's own from_keras_hub spec is the reference). Values go where from_keras_hub reads them, so
reading the backbone back gives the same z0. The table is written as the z0 the spec computes at its native
size (a sin-cos or resampled table is materialised); a value the backbone has no slot for (a table row of a
token it adds no position to, a patch bias a bias-free conv) must be zero, else the stem is refused.
"""

from __future__ import annotations

import numpy as np

from ..errors import SpecError
from ..spec import Spec, check_weights
from .keras_hub_families import FAMILIES, VITDET_MEAN, VITDET_STD, _patch_conv, _sublayers
from .table import stored_table

# The spec fields a keras-hub backbone fixes by its architecture and build size. Not the layout (the
# kernel is the same; the backbone takes its own data_format) nor preprocessing (backbones take
# normalised floats; ViTDet's own normalisation is checked apart).
FIXED_FIELDS = ("image_size", "in_channels", "patch_size", "embed_dim", "prefix", "pre_norm", "patch_norm",
                "input.remainder")


def _field(doc: dict, path: str):
    for key in path.split("."):
        doc = doc[key]
    return doc


def _check_structure(family: str, own: Spec, spec: Spec) -> None:
    mine, theirs = own.to_dict(), spec.to_dict()
    problems = [(path, f"{family} has {_field(mine, path)!r}, the spec {_field(theirs, path)!r}")
                for path in FIXED_FIELDS if _field(mine, path) != _field(theirs, path)]
    if family == "ViTDetBackbone":  # it normalises with ImageNet's mean/std inside the model
        pre = spec.input.preprocess
        if pre is None or not (np.allclose(pre.mean, VITDET_MEAN) and np.allclose(pre.std, VITDET_STD)):
            problems.append(("input.preprocess", f"ViTDetBackbone normalises with mean {VITDET_MEAN} and std "
                                                 f"{VITDET_STD} inside the model; the spec must do the same"))
    if problems:
        raise SpecError(problems)


def _assign(variable, value) -> None:
    variable.assign(np.asarray(value, np.float32).reshape(tuple(variable.shape)))


def _assign_at_ids(family: str, embedding, ids, rows: np.ndarray) -> None:
    """An Embedding looked up at position_ids: row ids[i] of its table becomes rows[i]."""
    ids = np.asarray(ids).reshape(-1).astype(np.int64)
    if len(set(ids.tolist())) != len(ids):
        raise SpecError(f"{family}: its position_ids repeat rows ({ids.tolist()}), so a table with distinct rows "
                        "cannot be written into it")
    table = np.array(embedding.embeddings.numpy(), np.float32)
    table[ids] = rows
    _assign(embedding.embeddings, table)


def _slots(kind: str, obj, layer, prefix: int, registers: int):
    """(token variables {canonical name: variable}, the table rows the backbone holds (None: all), their writer)."""
    if kind == "ViTPatchingAndEmbedding":
        tokens = {"cls_token": layer.class_token} if layer.use_class_token else {}
        return tokens, None, lambda t: _assign(layer.position_embedding.embeddings, t)
    if kind == "DeiTEmbeddings":
        tokens = {"cls_token": layer.class_token, "dist_token": layer.distillation_token}
        return tokens, None, lambda t: _assign(layer.position_embedding, t)
    if kind in ("CLIPVisionEmbedding", "MetaCLIP2VisionEmbedding", "SigLIPVisionEmbedding", "Gemma3VisionEmbedding"):
        tokens = {"cls_token": layer.class_embedding} if prefix else {}
        write = lambda t: _assign_at_ids(FAMILIES[kind], layer.position_embedding, layer.position_ids, t)  # noqa: E731
        return tokens, None, write
    tokens = {"cls_token": layer.cls_token} if kind != "ViTDetPatchingAndEmbedding" else {}
    if registers:
        tokens["reg_tokens"] = layer.register_tokens
    if kind == "DINOV2Embedding":  # the table covers cls (row 0) and the patches, not the registers
        rows = np.r_[0, np.arange(1 + registers, prefix + layer.interpolated_num_patches)]

        def write(t):
            _assign(layer.interpolated_position_embeddings, t)
            if tuple(layer.position_embeddings.shape) == tuple(layer.interpolated_position_embeddings.shape):
                _assign(layer.position_embeddings, t)  # the source copy, when it is not resampled
        return tokens, rows, write
    if kind == "ViTDetPatchingAndEmbedding":
        added = [lay for lay in _sublayers(obj) if type(lay).__name__ == "AddPositionalEmbedding"]
        if added:
            return tokens, None, lambda t: _assign(added[0].pos_embed, t)
    return tokens, np.zeros(0, np.int64), None  # DINOv3: rope in attention, no table


def write_stem(obj, layer, own: Spec, spec: Spec, weights) -> None:
    """Write (spec, weights) into the backbone `obj` whose stem layer is `layer` (own: its current spec)."""
    kind = type(layer).__name__
    family = FAMILIES.get(kind, "ViTBackbone")
    _check_structure(family, own, spec)
    weights = check_weights(weights, spec)
    if not layer.built:
        raise SpecError(f"{family}: the {kind} layer is not built yet (call the backbone once or build it)")
    tokens, rows, write_table = _slots(kind, obj, layer, spec.num_prefix_tokens, spec.prefix.register_tokens)
    table = stored_table(spec, weights, every_prefix_row=True)[0]
    held = np.zeros(len(table), bool)
    held[np.arange(len(table)) if rows is None else rows] = True
    if np.any(table[~held]):
        raise SpecError([("pos_embed", f"{family} adds no position to table rows "
                                       f"{np.flatnonzero(~held).tolist()} (of {len(table)}), but the spec's are not zero")])
    conv = _patch_conv(layer)
    bias = weights.get("patch_embed.bias", np.zeros(spec.embed_dim, np.float32))
    if not conv.use_bias and np.any(bias):
        raise SpecError([("patch_bias", f"{family}'s patch conv has no bias; the spec's is not zero")])
    _assign(conv.kernel, weights["patch_embed.weight"].transpose(2, 3, 1, 0))  # OIHW -> HWIO
    if conv.use_bias:
        _assign(conv.bias, bias)
    for name, variable in tokens.items():
        _assign(variable, weights[name])
    if write_table is not None:
        write_table(table[held])
    if spec.pre_norm is not None:
        _assign(obj.pre_layer_norm.gamma, weights["norm_pre.weight"])
        _assign(obj.pre_layer_norm.beta, weights["norm_pre.bias"])
