"""vitstem: one declarative spec of the Vision Transformer input layer, held to by every engine.

Importing vitstem imports numpy and the standard library only; torch, tensorflow and onnx are
imported by the modules that need them, when they are used.
"""

from .backends import forward
from .errors import ExportError, InputError, SpecError, VitstemError, WeightsError
from .spec import Spec, init_weights, load_spec, load_weights, save_weights, weight_shapes

__version__ = "0.2.3"

__all__ = [
    "ExportError", "InputError", "Spec", "SpecError", "VitstemError", "WeightsError", "__version__",
    "export_onnx", "forward", "init_weights", "load_spec", "load_weights", "save_weights", "weight_shapes",
]


def __getattr__(name):
    if name == "export_onnx":  # needs onnx: imported on first use only
        from .export import export_onnx

        return export_onnx
    raise AttributeError(f"module 'vitstem' has no attribute {name!r}")
