"""Backends compute z0 from (spec, weights, images); each imports only the spec and its framework."""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from ..spec import Spec

BACKENDS = ("numpy", "torch", "tensorflow")


def forward(spec: "Spec | Mapping[str, Any] | str | os.PathLike", weights: "Mapping[str, np.ndarray]",
            images: "np.ndarray", *, backend: str = "numpy", profile: str = "fast") -> "np.ndarray":
    """z0 as a NumPy float32 array (B, prefix + N, D), computed by `backend`.

    spec: a Spec, a mapping, a YAML/JSON path or a preset name. weights: canonical weights (e.g.
    `init_weights(spec)` or `load_weights(path, spec)`). images: a batch in the spec's layout, uint8
    pixels (specs with preprocess) or floats. backend: "numpy" (the reference), "torch" or
    "tensorflow". profile: "fast" (float32) or "exact" (float64, bit-identical across engines).
    Raises SpecError, WeightsError or InputError naming what is wrong.
    """
    from ..spec import load_spec

    from ..spec.vocabulary import Profile

    if not isinstance(backend, str) or backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if not isinstance(profile, str) or profile not in Profile.choices():
        raise InputError(f"profile must be one of {', '.join(Profile.choices())}, got {profile!r}")
    module = importlib.import_module(f"{__name__}.{backend}")
    return module.forward(load_spec(spec), weights, images, profile=profile)
