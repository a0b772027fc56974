"""big_vision / vision_transformer parameter trees and .npz files -> from_big_vision -> same z0.

big_vision is not installed, so the peer is its stem rewritten here in NumPy (float32, as jnp
computes) from the upstream sources, independently of vitstem's code:
- big_vision/models/vit.py `_Model.__call__`: x = Conv(HWIO, VALID, stride = patch)(image);
  x = reshape(n, h*w, c); x = x + pos_embedding (learned (1, h*w, c), or posemb_sincos_2d);
  then cls is prepended (pool_type "tok").
- vit_jax/models_vit.py `VisionTransformer.__call__`: conv, reshape, cls prepended
  (classifier "token"), then `Transformer/posembed_input` adds a (1, N + 1, c) table.
- big_vision `resample_posemb`: scipy.ndimage.zoom(grid, (new/old, new/old, 1), order=1).
"""

import numpy as np
import pytest
import scipy.ndimage

import vitstem
from support.reference import assert_agrees
from vitstem.interop import from_big_vision

F32 = np.float32


def conv_patches(image, kernel, bias):
    """flax nn.Conv(kernel_size = strides = patch, padding VALID) on NHWC, in float32."""
    n, hh, ww, c = image.shape
    ph, pw, _, d = kernel.shape
    x = image.reshape(n, hh // ph, ph, ww // pw, pw, c)
    out = np.einsum("nhpwqc,pqcd->nhwd", x, kernel, dtype=F32)
    return out + bias if bias is not None else out


def posemb_sincos_2d(h, w, width, temperature=10_000.0):
    """big_vision posemb_sincos_2d, float32 as jnp."""
    y, x = np.mgrid[:h, :w]
    omega = np.arange(width // 4, dtype=F32) / F32(width // 4 - 1)
    omega = F32(1.0) / (F32(temperature) ** omega)
    y = np.einsum("m,d->md", y.flatten().astype(F32), omega)
    x = np.einsum("m,d->md", x.flatten().astype(F32), omega)
    return np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)[None].astype(F32)


def big_vision_z0(params, image, posemb="learn"):
    x = conv_patches(image, params["embedding"]["kernel"], params["embedding"].get("bias"))
    n, h, w, c = x.shape
    x = x.reshape(n, h * w, c)
    x = x + (params["pos_embedding"] if posemb == "learn" else posemb_sincos_2d(h, w, c))
    if "cls" in params:
        x = np.concatenate([np.tile(params["cls"], [n, 1, 1]), x], axis=1)
    return x


def vision_transformer_z0(params, image):
    x = conv_patches(image, params["embedding"]["kernel"], params["embedding"]["bias"])
    n, h, w, c = x.shape
    x = x.reshape(n, h * w, c)
    if "cls" in params:
        x = np.concatenate([np.tile(params["cls"], [n, 1, 1]), x], axis=1)
    return x + params["Transformer"]["posembed_input"]["pos_embedding"]


def _params(grid=(4, 4), patch=(4, 4), d=16, cls=True, table="top", seed=0):
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.standard_normal(s).astype(F32)  # noqa: E731
    params = {"embedding": {"kernel": r(*patch, 3, d) * F32(0.3), "bias": r(d)},
              "Transformer": {"encoder_norm": {"scale": r(d), "bias": r(d)}}}
    if cls:
        params["cls"] = r(1, 1, d)
    n = grid[0] * grid[1]
    if table == "top":
        params["pos_embedding"] = r(1, n, d)
    elif table == "posembed_input":
        params["Transformer"]["posembed_input"] = {"pos_embedding": r(1, n + int(cls), d)}
    return {"params": params}


def _images(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(F32)


@pytest.mark.parametrize("cls", [True, False])
def test_big_vision_learned_table_added_before_the_class_token(cls):
    tree = _params(cls=cls)
    spec, weights = from_big_vision(tree)
    assert spec.input.layout == "NHWC" and spec.image_size == (16, 16)
    assert spec.pos_prefix_rows == 0  # the table never covers the class token
    x = _images(spec.input_shape(2))
    assert_agrees(spec, weights, x, big_vision_z0(tree["params"], x))


@pytest.mark.parametrize("cls", [True, False])
def test_vision_transformer_table_covers_the_class_slot(cls):
    tree = _params(table="posembed_input", cls=cls, patch=(2, 4), grid=(5, 5))
    spec, weights = from_big_vision(tree["params"])  # without the "params" level too
    assert spec.pos_prefix_rows == int(cls) and spec.patch_size == (2, 4)
    x = _images(spec.input_shape(2))
    assert_agrees(spec, weights, x, vision_transformer_z0(tree["params"], x))


def test_sincos2d_without_a_table_needs_and_uses_the_image_size():
    tree = _params(table=None, d=32)
    with pytest.raises(vitstem.SpecError, match="image_size"):
        from_big_vision(tree)
    spec, weights = from_big_vision(tree, image_size=(16, 24))
    pe = spec.position_embedding
    assert pe.kind == "sincos2d" and pe.sincos_convention == "big_vision" and not pe.covers_prefix
    x = _images(spec.input_shape(2))
    assert_agrees(spec, weights, x, big_vision_z0(tree["params"], x, posemb="sincos2d"))


def test_higher_resolution_resamples_like_resample_posemb():
    tree = _params(grid=(4, 4))
    spec, weights = from_big_vision(tree, image_size=28)  # 7x7 patches from a 4x4 table
    assert spec.pos_grid == (4, 4) and spec.resample.policy == "big_vision"
    params = dict(tree["params"])
    old = params["pos_embedding"]
    grid = scipy.ndimage.zoom(old.reshape(4, 4, -1), (7 / 4, 7 / 4, 1), order=1)  # big_vision resample_posemb
    params["pos_embedding"] = grid.reshape(1, 49, -1)
    x = _images(spec.input_shape(2))
    assert_agrees(spec, weights, x, big_vision_z0(params, x), resampled_in_float32=True)


def test_npz_file_with_value_range_preprocessing(tmp_path):
    tree = _params(grid=(3, 3), seed=5)
    flat = {"embedding/kernel": tree["params"]["embedding"]["kernel"], "embedding/bias": tree["params"]["embedding"]["bias"],
            "cls": tree["params"]["cls"], "pos_embedding": tree["params"]["pos_embedding"]}
    np.savez(tmp_path / "vit.npz", **flat)
    pre = {"scale": 1 / 127.5, "mean": [1.0] * 3, "std": [1.0] * 3}  # value_range(-1, 1)
    spec, weights = from_big_vision(tmp_path / "vit.npz", preprocess=pre)
    pixels = np.random.default_rng(4).integers(0, 256, spec.input_shape(2), dtype=np.uint8)
    peer_input = pixels.astype(F32) / F32(127.5) - F32(1.0)
    assert_agrees(spec, weights, pixels, big_vision_z0(tree["params"], peer_input))


def test_refusals(tmp_path):
    hybrid = _params()
    hybrid["params"]["conv_root"] = {"kernel": np.zeros((7, 7, 3, 8), F32)}
    with pytest.raises(vitstem.SpecError, match="hybrid"):
        from_big_vision(hybrid)
    with pytest.raises(vitstem.WeightsError, match="no square grid"):
        from_big_vision({"embedding": {"kernel": np.zeros((4, 4, 3, 8), F32)}, "pos_embedding": np.zeros((1, 12, 8), F32)})
    np.savez(tmp_path / "pickled.npz", **{"embedding/kernel": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(vitstem.WeightsError, match="pickle"):
        from_big_vision(tmp_path / "pickled.npz")
