"""The NumPy reference backend (defines the semantics every other engine is held to)."""

from .stem import forward

__all__ = ["forward"]
