"""A timm ViT's state dict loads into VitStem, and both stems give the reference's z0 (within the fast bound).

timm's stem is what its forward_features runs before the blocks:
patch_embed -> _pos_embed -> patch_drop -> norm_pre. Models are built with random weights (depth 1).
"""

from __future__ import annotations

import numpy as np
import pytest

import vitstem
from vitstem.backends.numpy.bound import fast_error_bound
from vitstem.backends.torch.names import CANONICAL_NAMES

BASE = vitstem.load_spec("vit_tiny_patch16_224").replace(input={"layout": "NCHW", "preprocess": None})
NO_CLASS_TABLE = {"kind": "learned", "covers_prefix": False}

# id: (timm model, timm kwargs, matching spec changes, input size)
VARIANTS = {
    "vit_tiny": ("vit_tiny_patch16_224", {}, {}, (224, 224)),
    "no_class_token": ("vit_tiny_patch16_224", {"class_token": False, "global_pool": "avg"},
                       {"prefix": {"class_token": False}}, (224, 224)),
    "reg_tokens_4": ("vit_tiny_patch16_224", {"reg_tokens": 4}, {"prefix": {"class_token": True, "register_tokens": 4}},
                     (224, 224)),
    "no_embed_class": ("vit_tiny_patch16_224", {"no_embed_class": True}, {"position_embedding": NO_CLASS_TABLE},
                       (224, 224)),
    "pre_norm": ("vit_tiny_patch16_224", {"pre_norm": True}, {"pre_norm": {"eps": 1e-6}, "patch_bias": False},
                 (224, 224)),
    "deit_distilled": ("deit_tiny_distilled_patch16_224", {}, {"prefix": {"class_token": True, "dist_token": True}},
                       (224, 224)),
    "dynamic_registers_no_embed_class": (
        "vit_tiny_patch16_224", {"dynamic_img_size": True, "reg_tokens": 4, "no_embed_class": True},
        {"prefix": {"class_token": True, "register_tokens": 4}, "position_embedding": NO_CLASS_TABLE,
         "dynamic_image_size": True}, (160, 288)),
}


def timm_stem(model, x):
    """z0 as timm computes it inside forward_features."""
    x = model.patch_embed(x)
    x = model._pos_embed(x)
    x = model.patch_drop(x)
    return model.norm_pre(x)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_timm_state_dict_loads_and_both_stems_match_the_reference(variant):
    import timm
    import torch

    from vitstem.backends.torch import VitStem

    arch, kwargs, changes, hw = VARIANTS[variant]
    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False, depth=1, **kwargs).eval()
    with torch.no_grad():  # timm initialises tokens near 0 and LayerNorm to (1, 0): make every stem weight matter
        for key, param in model.named_parameters():
            if key in CANONICAL_NAMES and not key.startswith("patch_embed"):
                param.normal_(0.0, 0.5)
    spec = BASE.replace(**changes)
    ours = VitStem(spec)
    result = ours.load_state_dict(model.state_dict(), strict=False)
    assert result.missing_keys == []
    assert result.unexpected_keys and not any(k in CANONICAL_NAMES for k in result.unexpected_keys)
    weights = ours.canonical_weights()

    images = np.random.default_rng(1).standard_normal((1, 3, *hw)).astype(np.float32)
    with torch.no_grad():
        theirs = timm_stem(model, torch.from_numpy(images)).numpy()
        z = ours(torch.from_numpy(images)).numpy()
    expected = vitstem.forward(spec, weights, images, profile="exact")
    assert z.shape == theirs.shape == expected.shape == (1, spec.num_tokens(hw), spec.embed_dim)
    # timm resamples the table in float32 (F.interpolate, bicubic, antialias): that error is in its bound.
    resampled = hw != spec.image_size
    assert np.all(np.abs(theirs - expected) <= fast_error_bound(spec, weights, images, resampled_in_float32=resampled))
    assert np.all(np.abs(z - expected) <= fast_error_bound(spec, weights, images))
    if not resampled:  # the prefix rows take timm's adds: the same bits; the patch rows are the same sums
        # in another order (a GEMM here, timm's conv), each within the bound above
        assert np.array_equal(z[:, :spec.num_prefix_tokens], theirs[:, :spec.num_prefix_tokens])
