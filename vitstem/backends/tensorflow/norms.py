"""The optional norms in TensorFlow, as the reference's `normalize`: in float64 (exact) every mean is
summed in order d = 0..D-1, as the reference's; float16/bfloat16 rows are normalised in float32."""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from ...spec.exact import sum_in_order


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
