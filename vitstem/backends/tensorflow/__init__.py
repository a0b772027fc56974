"""The TensorFlow / Keras 3 backend: `VitStemLayer` and `forward` (imports tensorflow and keras).

Import torch/torchvision (or timm) BEFORE this module when a process uses both: torchvision
imported after tensorflow segfaults (torch 2.14 + torchvision 0.29 + tensorflow 2.21).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ...spec import Spec, check_weights
from ...spec.inputs import check_images, check_z0
from .layer import VitStemLayer
from .stem import check_profile

__all__ = ["VitStemLayer", "forward"]


def forward(spec: Spec, weights: Mapping[str, np.ndarray], images, profile: str = "fast") -> np.ndarray:
    """z0 of shape (B, prefix + N, D), float32, computed by a `VitStemLayer` holding `weights`."""
    check_profile(profile)
    weights = check_weights(weights, spec)
    images, _ = check_images(spec, images)
    return check_z0(VitStemLayer.from_weights(spec, weights, profile)(images).numpy())
