"""Tiny keras-hub backbones with random O(1) stem weights and their own z0 (nothing is downloaded):
`vit_backbone` (a ViTBackbone), `CASES` (family -> (class, config)) built by `build`, and `peer_z0`, the
embedding output a backbone's encoder receives."""

import numpy as np


def vit_backbone(seed=0, **kwargs):
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    args = dict(image_shape=(32, 32, 3), patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32)
    args.update(kwargs)
    backbone = keras_hub.models.ViTBackbone(**args)
    layer = backbone.get_layer("vit_patching_and_embedding")
    rng = np.random.default_rng(seed)
    for variable in layer.weights:  # O(1) values everywhere (the class token starts near zero)
        variable.assign(rng.standard_normal(variable.shape).astype(np.float32) * 0.5)
    return backbone


TINY = dict(num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32)


def build(cls, seed=0, **kwargs):
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = getattr(keras_hub.models, cls)(**kwargs)
    rng = np.random.default_rng(seed)
    for variable in backbone.weights:  # O(1) values in the stem (tokens and tables start at zero or ~0.02)
        leaf = variable.path.split("/")[-1]
        if leaf == "position_ids":  # CLIP's are a weight, zeros until a checkpoint loads arange
            variable.assign(np.arange(variable.shape[-1]).reshape(variable.shape))
        elif "int" not in str(variable.dtype) and leaf != "position_embeddings":  # DINOv2's source table
            variable.assign(rng.standard_normal(variable.shape).astype(np.float32) * 0.5)
    return backbone


def _sub(backbone, cls):
    return next(layer for layer in backbone._flatten_layers(include_self=False, recursive=True)
                if type(layer).__name__ == cls)


def peer_z0(family, backbone, x):
    """The backbone's own embedding output, as its encoder receives it."""
    from keras import ops

    if family in ("CLIPVisionEncoder", "MetaCLIP2VisionEncoder"):
        return ops.convert_to_numpy(backbone.pre_layer_norm(backbone.embedding(x)))
    if family == "ViTDetBackbone":
        normalised = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
        grid = _sub(backbone, "AddPositionalEmbedding")(_sub(backbone, "ViTDetPatchingAndEmbedding")(normalised))
        grid = ops.convert_to_numpy(grid)
        return grid.reshape(grid.shape[0], -1, grid.shape[-1])
    layer = {"DeiTBackbone": "DeiTEmbeddings", "SigLIPVisionEncoder": "SigLIPVisionEmbedding",
             "DINOV2Backbone": "DINOV2Embedding", "DINOV3Backbone": "DINOV3Embedding",
             "Gemma3VisionEncoder": "Gemma3VisionEmbedding"}[family]
    return ops.convert_to_numpy(_sub(backbone, layer)(x))


CASES = {
    "deit": ("DeiTBackbone", dict(image_shape=(32, 24, 3), patch_size=(8, 8), **TINY)),
    "clip": ("CLIPVisionEncoder", dict(image_shape=(32, 32, 3), patch_size=8, **TINY)),
    "metaclip2": ("MetaCLIP2VisionEncoder", dict(image_shape=(32, 32, 3), patch_size=8, **TINY)),
    "siglip_remainder": ("SigLIPVisionEncoder", dict(image_shape=(38, 38, 3), patch_size=7, **TINY)),
    "dinov2_registers": ("DINOV2Backbone", dict(image_shape=(32, 32, 3), patch_size=8, num_register_tokens=2,
                                                position_embedding_shape=(32, 32, 3), **TINY)),
    "dinov2_resampled": ("DINOV2Backbone", dict(image_shape=(48, 48, 3), patch_size=8,
                                                position_embedding_shape=(32, 32, 3), **TINY)),
    "dinov3": ("DINOV3Backbone", dict(image_shape=(32, 32, 3), patch_size=8, num_register_tokens=2, **TINY)),
    "gemma3": ("Gemma3VisionEncoder", dict(image_size=32, patch_size=8, num_heads=2, hidden_dim=16, num_layers=1,
                                           intermediate_dim=32, output_dim=16, pool_size=2)),
    "vitdet": ("ViTDetBackbone", dict(hidden_size=16, num_layers=1, intermediate_dim=32, num_heads=2,
                                      global_attention_layer_indices=[0], image_shape=(32, 32, 3), patch_size=8,
                                      window_size=2)),
}
