"""Each named resampling policy, run through the shared position table, against the library it names.

The peer computes its own way inside the test (timm's and transformers' own functions,
tf.image.resize, big_vision's scipy call); the peers work in float32, so agreement is to float32
rounding of the table (32 ulp of its largest value, as in test_resampling.py).
"""

import numpy as np
import pytest

import vitstem
from vitstem.spec.position import position_table

SRC, DST = (6, 6), (9, 7)  # up in one axis, down-ish in the other; non-square target
D = 8


def spec_for(policy, prefix=1, grid=SRC, image=DST):
    return vitstem.load_spec({
        "spec_version": 1, "image_size": [image[0] * 2, image[1] * 2], "patch_size": 2, "embed_dim": D,
        "prefix": {"class_token": prefix > 0}, "position_embedding": {"kind": "learned", "grid": list(grid)},
        "resample": {"policy": policy}, "dynamic_image_size": True})


def ours(policy, table, dst=DST):
    spec = spec_for(policy, grid=SRC, image=dst)
    prefix, patches = position_table(spec, {"pos_embed": table}, dst)
    return np.concatenate([prefix, patches])


def table(seed=0):
    return np.random.default_rng(seed).standard_normal((1, 1 + SRC[0] * SRC[1], D)).astype(np.float32)


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=0, atol=32 * np.finfo(np.float32).eps * np.abs(b).max())


def test_timm_policy_is_timm_resample_abs_pos_embed():
    import torch
    from timm.layers import resample_abs_pos_embed

    t = table()
    theirs = resample_abs_pos_embed(torch.from_numpy(t), new_size=list(DST), old_size=list(SRC), num_prefix_tokens=1)
    close(ours("timm", t), theirs[0].numpy())


def test_hf_pytorch_policy_is_vit_interpolate_pos_encoding():
    import torch
    from transformers import ViTConfig
    from transformers.models.vit.modeling_vit import ViTEmbeddings

    t = table(1)
    config = ViTConfig(image_size=SRC[0] * 2, patch_size=2, hidden_size=D, num_channels=3)
    emb = ViTEmbeddings(config).eval()
    with torch.no_grad():
        emb.position_embeddings.copy_(torch.from_numpy(t))
        patches = torch.zeros(1, DST[0] * DST[1] + 1, D)
        theirs = emb.interpolate_pos_encoding(patches, DST[0] * 2, DST[1] * 2)
    close(ours("hf_pytorch", t), theirs[0].numpy())


def test_hf_dpt_policy_is_dpt_resize_pos_embed():
    import torch
    from transformers import DPTConfig
    from transformers.models.dpt.modeling_dpt import DPTViTEmbeddings

    t = table(4)
    emb = DPTViTEmbeddings(DPTConfig(image_size=SRC[0] * 2, patch_size=2, hidden_size=D, num_channels=3)).eval()
    with torch.no_grad():
        theirs = emb._resize_pos_embed(torch.from_numpy(t), *DST)
    close(ours("hf_dpt", t), theirs[0].numpy())
    assert np.abs(ours("hf_pytorch", t) - theirs[0].numpy()).max() > 1e-3  # bicubic would not do


def test_hf_tensorflow_policy_is_tf_image_resize_bicubic():
    import tensorflow as tf

    t = table(2)
    grid = t[0, 1:].reshape(1, *SRC, D)
    resized = tf.image.resize(grid, DST, method="bicubic").numpy().reshape(-1, D)  # transformers 4.x TFViT
    close(ours("hf_tensorflow", t), np.concatenate([t[0, :1], resized]))


@pytest.mark.parametrize("dst", [(9, 9), (4, 4)])
def test_big_vision_policy_is_scipy_zoom(dst):
    import scipy.ndimage

    t = table(3)
    # big_vision.models.vit.resample_posemb, square grids only:
    gs_old, gs_new = SRC[0], dst[0]
    grid = t[0, 1:].reshape(gs_old, gs_old, -1)
    zoom = (gs_new / gs_old, gs_new / gs_old, 1)
    grid = scipy.ndimage.zoom(grid, zoom, order=1).reshape(gs_new * gs_new, -1)
    close(ours("big_vision", t, dst), np.concatenate([t[0, :1], grid]))


def test_named_policies_differ_from_each_other():
    """The policies are not interchangeable: each pair gives visibly different tables."""
    t = table(4)
    results = {p: ours(p, t) for p in ("timm", "hf_pytorch", "hf_tensorflow", "big_vision")}
    names = list(results)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(results[a] - results[b]).max() > 1e-3, (a, b)
