"""The stem in TensorFlow, function for function as the NumPy reference (vitstem/backends/numpy/stem.py).

Layout native: preprocessing and patchify work on the batch in the spec's layout (no transpose on
entry), and patches are flattened (C, Ph, Pw) as the reference's, so the canonical OIHW kernel is
the projection as it is stored (no per-call kernel transpose). Profile "fast" computes in float32,
the projection as one matmul. Profile "exact" is the reference's arithmetic step for step: float64,
every sum in the reference's order (`vitstem.spec.exact.sum_in_order`: the projection over
k = 0..K-1, LayerNorm's means over d = 0..D-1, table resampling over input taps), elementwise IEEE
ops only, one rounding to float32 at the end: the reference's bits by construction.
It always runs eagerly, inside a tf.function too (`z0_eagerly`): Grappler would rewrite it.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

from ...spec import Spec
from ...spec.exact import sum_in_order
from ...spec.inputs import image_hw
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


def preprocess(spec: Spec, x: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """x = (pixels * scale - mean) / std per channel (the layout's channel axis), or x unchanged without preprocessing."""
    x = tf.cast(x, dtype)
    pre = spec.input.preprocess
    if pre is None:
        return x
    np_dtype = dtype.as_numpy_dtype
    shape = (-1, 1, 1) if spec.input.layout == "NCHW" else (-1,)
    mean = tf.constant(np.asarray(pre.mean, np_dtype).reshape(shape))  # rounded as the reference rounds them
    std = tf.constant(np.asarray(pre.std, np_dtype).reshape(shape))
    return (x * tf.constant(np_dtype(pre.scale)) - mean) / std


def crop(spec: Spec, x: tf.Tensor) -> tf.Tensor:
    """The batch cut to the whole patches (input.remainder: drop), in its layout, as the reference.
    Under refuse the input checks let only multiples of the patch through: nothing to cut."""
    if spec.input.remainder != "drop":
        return x
    full = image_hw(spec, dims(x))
    h, w = full[0] // spec.patch_size[0] * spec.patch_size[0], full[1] // spec.patch_size[1] * spec.patch_size[1]
    if all(isinstance(s, int) for s in full) and (h, w) == tuple(full):
        return x  # a static multiple of the patch: no slice op
    return x[:, :, :h, :w] if spec.input.layout == "NCHW" else x[:, :h, :w, :]


def patchify(x: tf.Tensor, patch_size: tuple[int, int], layout: str) -> tf.Tensor:
    """(B, C, H, W) or (B, H, W, C) -> (B, N, K): patches in row-major grid order, each flattened
    (C, Ph, Pw), the reference's order (the rows of the OIHW kernel reshaped to (D, K))."""
    ph, pw = patch_size
    if layout == "NCHW":
        b, c, h, w = dims(x)
        x = tf.transpose(tf.reshape(x, (b, c, h // ph, ph, w // pw, pw)), (0, 2, 4, 1, 3, 5))
    else:
        b, h, w, c = dims(x)
        x = tf.transpose(tf.reshape(x, (b, h // ph, ph, w // pw, pw, c)), (0, 1, 3, 5, 2, 4))
    return tf.reshape(x, (b, (h // ph) * (w // pw), c * ph * pw))


def embed_patches(spec: Spec, weights: Mapping[str, tf.Tensor], patches: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """x^i E (+ b), equal to a conv with kernel = stride = P.

    fast: one matmul with the (D, K) kernel as stored, transposed inside the matmul (transposing
    the 768x768 kernel on every call cost TF ~4 % of a batch-1 ViT-B stem, measured). exact: the
    sum over k of x_k * E[k] in order k = 0..K-1.
    """
    weight = tf.reshape(tf.cast(weights["patch_embed.weight"], dtype), (spec.embed_dim, spec.patch_dim))  # (D, K)
    if dtype == tf.float64:
        columns = tf.transpose(patches, (2, 0, 1))[..., None]  # (K, B, N, 1): x_k per patch
        out = sum_in_order(products_in_order(columns, tf.transpose(weight)[:, None, None, :]))
    else:
        b, n, k = dims(patches)
        out = tf.reshape(tf.matmul(tf.reshape(patches, (-1, k)), weight, transpose_b=True), (b, n, spec.embed_dim))
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


def _row_mean(v: tf.Tensor) -> tf.Tensor:
    """Mean over the last axis (kept); in float64 (exact) summed in order d = 0..D-1, as the reference's."""
    if v.dtype == tf.float64:
        terms = tf.unstack(tf.transpose(v, (2, 0, 1))[..., None])  # D of (B, T, 1)
        return sum_in_order(terms) / tf.constant(len(terms), tf.float64)
    return tf.reduce_mean(v, axis=-1, keepdims=True)


def layer_norm(z: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: float) -> tf.Tensor:
    """LayerNorm over the last axis with the biased variance, as torch.nn.LayerNorm.

    In float64 (exact) the two sums over D run in order d = 0..D-1, as the reference's.
    """
    centred = z - _row_mean(z)
    var = _row_mean(centred * centred)
    return centred / tf.sqrt(var + tf.constant(eps, z.dtype)) * weight + bias


def rms_norm(z: tf.Tensor, weight: tf.Tensor, eps: float) -> tf.Tensor:
    """RmsNorm over the last axis, z / sqrt(mean(z^2) + eps) * weight (timm's RmsNorm)."""
    return z / tf.sqrt(_row_mean(z * z) + tf.constant(eps, z.dtype)) * weight


def normalize(norm, weights: Mapping[str, tf.Tensor], prefix: str, z: tf.Tensor) -> tf.Tensor:
    """The spec's `norm` (a Norm, or None: z unchanged) with the weights PREFIX.weight [, PREFIX.bias].

    float16/bfloat16 rows (a Keras mixed-precision policy) are normalised in float32 and cast back,
    as Keras's own normalization layers do."""
    if norm is None:
        return z
    if z.dtype in (tf.float16, tf.bfloat16):
        return tf.cast(normalize(norm, weights, prefix, tf.cast(z, tf.float32)), z.dtype)
    weight = tf.cast(weights[f"{prefix}.weight"], z.dtype)
    if norm.kind == "rms_norm":
        return rms_norm(z, weight, norm.eps)
    return layer_norm(z, weight, tf.cast(weights[f"{prefix}.bias"], z.dtype), norm.eps)


def z0(spec: Spec, weights: Mapping[str, tf.Tensor], images: tf.Tensor, profile: str = "fast",
       compute_dtype: tf.DType | None = None) -> tf.Tensor:
    """z0 of shape (B, prefix + N, D) from a batch in the spec's layout (checked by the caller).

    float32 by default; `compute_dtype` (fast profile only: a Keras mixed-precision policy's
    float16/bfloat16) computes and returns in that dtype, norm statistics in float32 as Keras's
    normalization layers do.
    """
    dtype = check_profile(profile)
    if compute_dtype is not None and profile == "fast":
        dtype = tf.as_dtype(compute_dtype)
    x = preprocess(spec, crop(spec, images), dtype)
    shape = dims(x)
    b, (h, w) = shape[0], image_hw(spec, shape)
    ph, pw = spec.patch_size
    patches = embed_patches(spec, weights, patchify(x, spec.patch_size, spec.input.layout), dtype)
    patches = normalize(spec.patch_norm, weights, "patch_embed.norm", patches)
    prefix = prefix_tokens(spec, weights, b, dtype)
    table = position_table(spec, weights.get("pos_embed"), (h // ph, w // pw), in_order=dtype == tf.float64,
                           dtype=dtype)
    z = add_position(spec, prefix, patches, table, dtype)
    z = normalize(spec.pre_norm, weights, "norm_pre", z)
    return tf.cast(z, tf.float32 if dtype == tf.float64 else dtype)


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
