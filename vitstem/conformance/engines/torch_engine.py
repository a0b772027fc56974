"""The `torch` engine: the PyTorch backend (vitstem.backends.torch)."""

from .backend import BackendEngine
from .base import register


class TorchEngine(BackendEngine):
    name, description = "torch", "PyTorch backend (vitstem.backends.torch)"
    requires, modules = ("torch",), ("vitstem.backends.torch:forward",)


register(TorchEngine())
