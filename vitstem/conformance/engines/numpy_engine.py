"""The `numpy` engine: the NumPy reference itself (the semantics every other engine is held to)."""

from .backend import BackendEngine
from .base import register


class NumpyEngine(BackendEngine):
    name, description = "numpy", "NumPy reference (vitstem.backends.numpy)"


register(NumpyEngine())
