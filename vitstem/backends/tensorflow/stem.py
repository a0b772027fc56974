"""The stem in TensorFlow, function for function as the NumPy reference (vitstem/backends/numpy/stem.py).

NHWC native: NCHW batches are transposed on entry. Profile "fast" computes in float32, the patch
projection as one matmul of patches flattened (Ph, Pw, C) with the OIHW kernel transposed to HWIO.
Profile "exact" is the reference's arithmetic step for step: float64, patches flattened (C, Ph, Pw)
as the reference's, every sum in the reference's order (`vitstem.spec.exact.sum_in_order`: the
projection over k = 0..K-1, LayerNorm's means over d = 0..D-1, table resampling over input taps),
elementwise IEEE ops only, one rounding to float32 at the end: the reference's bits by construction.
It always runs eagerly, inside a tf.function too (`z0_eagerly`): Grappler would rewrite it.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

from ...spec import Spec
from ...spec.exact import sum_in_order
from .position import position_table

PROFILES = {"fast": tf.float32, "exact": tf.float64}


def check_profile(profile: str) -> tf.DType:
    """The compute dtype of `profile`; ValueError naming the choices otherwise."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    return PROFILES[profile]


def dims(x: tf.Tensor) -> list:
    """x's shape: static ints where known, scalar tensors where not."""
    dynamic = tf.shape(x)
    return [s if s is not None else dynamic[i] for i, s in enumerate(x.shape)]


def to_nhwc(spec: Spec, images: tf.Tensor) -> tf.Tensor:
    """(B, H, W, C) of a batch in the spec's layout."""
    return images if spec.input.layout == "NHWC" else tf.transpose(images, (0, 2, 3, 1))


def preprocess(spec: Spec, x: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """x = (pixels * scale - mean) / std per channel (last axis), or x unchanged without preprocessing."""
    x = tf.cast(x, dtype)
    pre = spec.input.preprocess
    if pre is None:
        return x
    np_dtype = dtype.as_numpy_dtype
    mean = tf.constant(np.asarray(pre.mean, np_dtype))  # rounded as the reference rounds them
    std = tf.constant(np.asarray(pre.std, np_dtype))
    return (x * tf.constant(np_dtype(pre.scale)) - mean) / std


def patchify(x: tf.Tensor, patch_size: tuple[int, int], channels_first: bool = False) -> tf.Tensor:
    """(B, H, W, C) -> (B, N, K): patches in row-major grid order, each flattened (Ph, Pw, C), the
    order of TF's HWIO conv kernel, or with `channels_first` (C, Ph, Pw), the reference's order."""
    b, h, w, c = dims(x)
    ph, pw = patch_size
    x = tf.reshape(x, (b, h // ph, ph, w // pw, pw, c))
    perm = (0, 1, 3, 5, 2, 4) if channels_first else (0, 1, 3, 2, 4, 5)
    return tf.reshape(tf.transpose(x, perm), (b, (h // ph) * (w // pw), ph * pw * c))


def embed_patches(spec: Spec, weights: Mapping[str, tf.Tensor], patches: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """x^i E (+ b), equal to a conv with kernel = stride = P.

    fast: one matmul of (Ph, Pw, C)-flattened patches with the kernel in HWIO. exact: patches
    flattened (C, Ph, Pw) as the reference's, and the sum over k of x_k * E[k] in order k = 0..K-1.
    """
    weight = tf.cast(weights["patch_embed.weight"], dtype)
    if dtype == tf.float64:
        E = tf.transpose(tf.reshape(weight, (spec.embed_dim, spec.patch_dim)))  # OIHW: row k is the reference's E[k]
        columns = tf.transpose(patches, (2, 0, 1))[..., None]  # (K, B, N, 1): x_k per patch
        out = sum_in_order(products_in_order(columns, E[:, None, None, :]))
    else:
        # Canonical OIHW (D, C, Ph, Pw) -> HWIO (Ph, Pw, C, D), TF's conv kernel layout: its rows then
        # follow the (Ph, Pw, C) flattening of NHWC patches, so E is the same map as the reference's.
        E = tf.reshape(tf.transpose(weight, (2, 3, 1, 0)), (spec.patch_dim, spec.embed_dim))
        b, n, k = dims(patches)
        out = tf.reshape(tf.matmul(tf.reshape(patches, (-1, k)), E), (b, n, spec.embed_dim))
    if spec.patch_bias:
        out = out + tf.cast(weights["patch_embed.bias"], dtype)
    return out


def products_in_order(a: tf.Tensor, b: tf.Tensor, block: int = 32):
    """a[k] * b[k] for k = 0, 1, ..., in order; multiplied `block` k at a time (fewer eager ops)."""
    for k in range(0, a.shape[0], block):
        yield from tf.unstack(a[k:k + block] * b[k:k + block])


def prefix_tokens(spec: Spec, weights: Mapping[str, tf.Tensor], batch, dtype: tf.DType) -> tf.Tensor:
    """(B, P, D): [cls, dist, registers...] in that order, the same for every image."""
    parts = [tf.cast(weights[n], dtype) for n in ("cls_token", "dist_token", "reg_tokens") if n in weights]
    tokens = tf.concat(parts, axis=1) if parts else tf.zeros((1, 0, spec.embed_dim), dtype)
    return tf.tile(tokens, tf.stack([batch, 1, 1]))


def add_position(spec: Spec, prefix: tf.Tensor, patches: tf.Tensor, table, dtype: tf.DType) -> tf.Tensor:
    """[prefix; patches] + E_pos; without covers_prefix the prefix tokens get no position."""
    prefix_rows, patch_rows = (tf.cast(t, dtype) for t in table)
    n = spec.pos_prefix_rows  # 0 or the number of prefix tokens
    prefix = tf.concat([prefix[:, :n] + prefix_rows, prefix[:, n:]], axis=1)
    return tf.concat([prefix, patches + patch_rows], axis=1)


def layer_norm(z: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: float) -> tf.Tensor:
    """LayerNorm over the last axis with the biased variance, as torch.nn.LayerNorm.

    In float64 (exact) the two sums over D run in order d = 0..D-1, as the reference's.
    """
    if z.dtype == tf.float64:
        def mean(v):
            terms = tf.unstack(tf.transpose(v, (2, 0, 1))[..., None])  # D of (B, T, 1)
            return sum_in_order(terms) / tf.constant(len(terms), tf.float64)
    else:
        def mean(v):
            return tf.reduce_mean(v, axis=-1, keepdims=True)
    centred = z - mean(z)
    var = mean(centred * centred)
    return centred / tf.sqrt(var + tf.constant(eps, z.dtype)) * weight + bias


def z0(spec: Spec, weights: Mapping[str, tf.Tensor], images: tf.Tensor, profile: str = "fast") -> tf.Tensor:
    """z0 of shape (B, prefix + N, D), float32, from a batch in the spec's layout (checked by the caller)."""
    dtype = check_profile(profile)
    x = preprocess(spec, to_nhwc(spec, images), dtype)
    b, h, w, _ = dims(x)
    ph, pw = spec.patch_size
    patches = embed_patches(spec, weights, patchify(x, spec.patch_size, channels_first=dtype == tf.float64), dtype)
    prefix = prefix_tokens(spec, weights, b, dtype)
    table = position_table(spec, weights.get("pos_embed"), (h // ph, w // pw), in_order=dtype == tf.float64)
    z = add_position(spec, prefix, patches, table, dtype)
    if spec.pre_norm is not None:
        z = layer_norm(z, tf.cast(weights["norm_pre.weight"], dtype), tf.cast(weights["norm_pre.bias"], dtype),
                       spec.pre_norm.eps)
    return tf.cast(z, tf.float32)


def z0_eagerly(spec: Spec, weights: Mapping[str, tf.Tensor], images: tf.Tensor, profile: str, shape) -> tf.Tensor:
    """`z0` run eagerly even inside a graph (a tf.py_function, differentiable), with static shape `shape`.

    The exact profile needs this: Grappler rewrites its graph into other roundings (measured on TF
    2.21: the ordered sums become one AddN, accumulated in place in any order; x / sqrt(v) becomes
    x * rsqrt(v); division by the std becomes multiplication by its reciprocal). Eager ops are
    never rewritten.
    """
    names = list(weights)

    def run(images, *values):
        return z0(spec, dict(zip(names, values)), images, profile)

    out = tf.py_function(run, [images, *(weights[name] for name in names)], tf.float32)
    out.set_shape(shape)
    return out
