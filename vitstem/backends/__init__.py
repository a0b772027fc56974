"""Backends compute z0 from (spec, weights, images); each imports only the spec and its framework."""

from __future__ import annotations

import importlib

BACKENDS = ("numpy", "torch", "tensorflow")


def forward(spec, weights, images, *, backend: str = "numpy", profile: str = "fast"):
    """z0 as a NumPy float32 array (B, prefix + N, D), computed by `backend`."""
    from ..spec import load_spec

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    module = importlib.import_module(f"{__name__}.{backend}")
    return module.forward(load_spec(spec), weights, images, profile=profile)
