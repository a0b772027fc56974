"""The TensorFlow / Keras 3 backend: `VitStemLayer` and `forward` (imports tensorflow and keras).

Import torch/torchvision (or timm) BEFORE this module when a process uses both: torchvision
imported after tensorflow segfaults (torch 2.14 + torchvision 0.29 + tensorflow 2.21).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

from ...spec import Spec, check_weights
from ...spec.inputs import check_z0
from . import stem
from .layer import VitStemLayer

__all__ = ["VitStemLayer", "forward"]


def forward(spec: Spec, weights: Mapping[str, np.ndarray], images, profile: str = "fast") -> np.ndarray:
    """z0 of shape (B, prefix + N, D), float32: `stem.forward` eagerly on the weights as constants
    (weights checked here, the batch there)."""
    stem.compute_dtype(profile)  # a bad profile first, as the layer refuses it
    weights = check_weights(weights, spec)
    z0 = stem.forward(spec, {name: tf.constant(value) for name, value in weights.items()}, images, profile)
    return check_z0(z0.numpy())
