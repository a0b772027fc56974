"""The TensorFlow peer: the stem as one would write it by hand in a `tf.function` (NHWC conv,
concat, add, LayerNorm), with the spec's constants baked in (imports tensorflow)."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

from vitstem.spec import Spec
from vitstem.spec.position import position_table
from vitstem.spec.vocabulary import Layout


def handwritten_stem(spec: Spec, weights: Mapping[str, np.ndarray]):
    """A tf.function: pixels in the spec's layout -> z0 (float32)."""
    pre = spec.input.preprocess
    d, (ph, pw) = spec.embed_dim, spec.patch_size
    kernel = tf.constant(weights["patch_embed.weight"].transpose(2, 3, 1, 0))  # OIHW -> HWIO
    bias = tf.constant(weights["patch_embed.bias"]) if spec.patch_bias else None
    names = [n for n in ("cls_token", "dist_token", "reg_tokens") if n in weights]
    prefix = tf.constant(np.concatenate([weights[n] for n in names], axis=1)) if names else None
    prefix_rows, patch_rows = (tf.constant(t.astype(np.float32)) for t in position_table(spec, weights, spec.patch_grid()))
    covered = spec.pos_prefix_rows
    if pre is not None:
        mean, std = tf.constant(pre.mean, tf.float32), tf.constant(pre.std, tf.float32)
    norms = {prefix: (norm, tf.constant(weights[f"{prefix}.weight"]),
                      tf.constant(weights[f"{prefix}.bias"]) if f"{prefix}.bias" in weights else None)
             for prefix, norm in (("patch_embed.norm", spec.patch_norm), ("norm_pre", spec.pre_norm)) if norm}

    def normalize(x, prefix):
        if prefix not in norms:
            return x
        norm, gamma, beta = norms[prefix]
        if norm.kind == "rms_norm":
            return x * tf.math.rsqrt(tf.reduce_mean(x * x, axis=-1, keepdims=True) + norm.eps) * gamma
        mu, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mu) * tf.math.rsqrt(var + norm.eps) * gamma + beta

    @tf.function
    def stem(images):
        x = tf.cast(images, tf.float32)
        if spec.input.layout == Layout.NCHW:
            x = tf.transpose(x, Layout.NHWC.from_nchw)
        if pre is not None:
            x = (x * pre.scale - mean) / std
        x = tf.nn.conv2d(x, kernel, strides=[1, ph, pw, 1], padding="VALID")
        if bias is not None:
            x = x + bias
        batch = tf.shape(x)[0]
        x = normalize(tf.reshape(x, [batch, -1, d]), "patch_embed.norm") + patch_rows
        if prefix is not None:
            tokens = tf.broadcast_to(prefix, [batch, prefix.shape[1], d])
            if covered:
                tokens = tf.concat([tokens[:, :covered] + prefix_rows, tokens[:, covered:]], axis=1)
            x = tf.concat([tokens, x], axis=1)
        return normalize(x, "norm_pre")

    return stem
