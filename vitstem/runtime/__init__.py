"""The edge runtime: run an exported stem with nothing but numpy and onnxruntime.

    stem = vitstem.runtime.load("model.onnx")
    z0 = stem(images)          # validated against the spec stored in the model

It reads the spec and the export options from the model's metadata, so the file is all a device
needs. Imports: numpy, onnxruntime, the standard library, and vitstem modules that use only those.
"""

from .stem import Stem, load

__all__ = ["Stem", "load"]
