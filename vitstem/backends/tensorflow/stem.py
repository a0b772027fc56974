"""The stem in TensorFlow, stage for stage as the NumPy reference (same names, signatures and order; tensors).

Layout native: crop, preprocessing and patchify read the batch in the spec's layout (their `layout`
argument; no transpose on entry), and patches are flattened (C, Ph, Pw) as the reference's, so the
canonical OIHW kernel is the projection as it is stored (no per-call kernel transpose). Profile "fast"
computes in float32, the projection as one matmul. Profile "exact" is the reference's arithmetic step
for step: float64, every sum in the reference's order (`vitstem.spec.exact.sum_in_order`: the
projection over k = 0..K-1, the norms' means over d = 0..D-1, table resampling over input taps),
elementwise IEEE ops only, one rounding to float32 at the end: the reference's bits by construction.
It always runs eagerly, inside a tf.function too (`stages_eagerly`): Grappler would rewrite it.
`weights` maps canonical names to tensors or variables (`VitStemLayer` passes its variables).
"""

from __future__ import annotations

import functools
from typing import Mapping

import numpy as np
import tensorflow as tf

from ...spec import Spec
from ...spec.exact import sum_in_order
from ...spec.inputs import check_images
from ...spec.position import position_table
from ...spec.vocabulary import Layout, Profile
from .inputs import check_graph_images
from .norms import normalize
from .position import fixed_table, resample_rows


def compute_dtype(profile, mixed: str | None = None) -> tf.DType:
    """float64 for the exact profile; else float32, or `mixed` (a Keras mixed-precision policy's
    float16/bfloat16). ValueError naming the profiles for another profile."""
    profile = Profile.parse(profile, "profile")
    if profile is Profile.FAST and mixed is not None:
        return tf.as_dtype(mixed)
    return tf.as_dtype(profile.compute_dtype)


def dims(x: tf.Tensor) -> list:
    """x's shape: static ints where known, scalar tensors where not."""
    dynamic = tf.shape(x)
    return [s if s is not None else dynamic[i] for i, s in enumerate(x.shape)]


def _hw(x: tf.Tensor, layout: Layout) -> tuple:
    """(H, W) of a batch in `layout`: static ints where known, scalar tensors where not."""
    shape = dims(x)
    return shape[layout.spatial_axes[0]], shape[layout.spatial_axes[1]]


def to_nchw(spec: Spec, images: tf.Tensor) -> tf.Tensor:
    """(B, C, H, W) of a batch in the spec's layout: a transpose, which `stages` avoids by reading the
    batch in its own layout (the stages' `layout` argument)."""
    layout = Layout(spec.input.layout)
    return images if layout is Layout.NCHW else tf.transpose(images, layout.to_nchw)


def crop(spec: Spec, x: tf.Tensor, layout: Layout = Layout.NCHW) -> tf.Tensor:
    """The batch cut to the whole patches (input.remainder: drop), as the reference. Under refuse the
    input checks let only multiples of the patch through: nothing to cut."""
    layout = Layout(layout)
    if spec.input.remainder != "drop":
        return x
    full = _hw(x, layout)
    cut = (full[0] // spec.patch_size[0] * spec.patch_size[0], full[1] // spec.patch_size[1] * spec.patch_size[1])
    if all(isinstance(s, int) for s in full) and cut == tuple(full):
        return x  # a static multiple of the patch: no slice op
    index = [slice(None)] * 4
    for axis, size in zip(layout.spatial_axes, cut):
        index[axis] = slice(size)
    return x[tuple(index)]


def preprocess(spec: Spec, x: tf.Tensor, dtype: tf.DType, layout: Layout = Layout.NCHW) -> tf.Tensor:
    """x = (pixels * scale - mean) / std per channel (the layout's channel axis), or x unchanged without preprocessing."""
    layout = Layout(layout)
    x = tf.cast(x, dtype)
    pre = spec.input.preprocess
    if pre is None:
        return x
    np_dtype = dtype.as_numpy_dtype
    shape = layout.shape(1, -1, 1, 1)
    mean = tf.constant(np.asarray(pre.mean, np_dtype).reshape(shape))  # rounded as the reference rounds them
    std = tf.constant(np.asarray(pre.std, np_dtype).reshape(shape))
    return (x * tf.constant(np_dtype(pre.scale)) - mean) / std


def patchify(x: tf.Tensor, patch_size: tuple[int, int], layout: Layout = Layout.NCHW) -> tf.Tensor:
    """(B, C, H, W) or (B, H, W, C) -> (B, N, K): patches in row-major grid order, each flattened
    (C, Ph, Pw), the reference's order (the rows of the OIHW kernel reshaped to (D, K))."""
    layout = Layout(layout)
    ph, pw = patch_size
    if layout is Layout.NCHW:
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
    """[prefix; patches] + E_pos, `table` the pair (prefix rows, patch rows) of `position_table`;
    without covers_prefix the prefix tokens get no position."""
    prefix_rows, patch_rows = (tf.cast(t, dtype) for t in table)
    n = spec.pos_prefix_rows  # 0 or the number of prefix tokens
    prefix = tf.concat([prefix[:, :n] + prefix_rows, prefix[:, n:]], axis=1)
    return tf.concat([prefix, patches + patch_rows], axis=1)


def stages(spec: Spec, weights: Mapping[str, tf.Tensor], images: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """z0 in `dtype` before any final rounding: the stages in the reference's order on a checked batch,
    read in the spec's layout."""
    layout = Layout(spec.input.layout)
    x = preprocess(spec, crop(spec, images, layout), dtype, layout)
    (h, w), (ph, pw) = _hw(x, layout), spec.patch_size
    patches = embed_patches(spec, weights, patchify(x, spec.patch_size, layout), dtype)
    patches = normalize(spec.patch_norm, weights, "patch_embed.norm", patches)
    prefix = prefix_tokens(spec, weights, dims(x)[0], dtype)
    resample = functools.partial(resample_rows, ordered=dtype == tf.float64)
    table = position_table(spec, weights, (h // ph, w // pw), fixed=fixed_table, resample=resample)
    z = add_position(spec, prefix, patches, table, dtype)
    return normalize(spec.pre_norm, weights, "norm_pre", z)


def forward(spec: Spec, weights: Mapping[str, tf.Tensor], images, profile: str = "fast", *,
            mixed: str | None = None) -> tf.Tensor:
    """z0 (B, prefix + N, D) from a batch in the spec's layout, float32, or `mixed` (fast profile only: a
    Keras mixed-precision policy's float16/bfloat16; norm statistics in float32 as Keras's normalization
    layers do). The batch is checked here: in full when eager; its static shape and run-time sizes when
    traced, where the exact profile runs eagerly (`stages_eagerly`). `weights` are checked by the caller.
    """
    dtype = compute_dtype(profile, mixed)
    if tf.executing_eagerly():
        checked, _ = check_images(spec, images)
        images = images if isinstance(images, tf.Tensor) else tf.convert_to_tensor(checked)
    else:
        images = check_graph_images(spec, images)
        if dtype == tf.float64:
            return stages_eagerly(spec, weights, images, output_shape(spec, images.shape))
    z = stages(spec, weights, images, dtype)
    return tf.cast(z, tf.float32) if dtype == tf.float64 else z


def output_shape(spec: Spec, input_shape) -> tuple:
    """z0's static shape for a batch's static shape (None where unknown)."""
    h, w = (tuple(input_shape)[axis] for axis in Layout(spec.input.layout).spatial_axes)
    if not spec.dynamic_image_size:
        h, w = spec.image_size
    tokens = spec.num_tokens((h, w)) if h is not None and w is not None else None
    return (input_shape[0], tokens, spec.embed_dim)


def stages_eagerly(spec: Spec, weights: Mapping[str, tf.Tensor], images: tf.Tensor, shape) -> tf.Tensor:
    """The exact z0 run eagerly even inside a graph (a tf.py_function, differentiable), static shape `shape`.

    The exact profile needs this: Grappler rewrites its graph into other roundings (measured on TF
    2.21: the ordered sums become one AddN, accumulated in place in any order; x / sqrt(v) becomes
    x * rsqrt(v); division by the std becomes multiplication by its reciprocal). Eager ops are
    never rewritten.
    """
    names = list(weights)

    def run(images, *values):
        return tf.cast(stages(spec, dict(zip(names, values)), images, tf.float64), tf.float32)

    out = tf.py_function(run, [images, *(weights[name] for name in names)], tf.float32)
    out.set_shape(shape)
    return out
