"""The edge runtime: run an exported stem or whole model with nothing but numpy and onnxruntime.

    stem = vitstem.runtime.load("stem.onnx")
    z0 = stem(images)          # validated against the spec stored in the model
    model = vitstem.runtime.load("model.onnx")   # a whole model (vitstem.deploy)
    outputs = model(images)    # {output name: array}, in the peer's order

It reads the spec and the export options from the model's metadata, so the file is all a device
needs. Imports: numpy, onnxruntime, the standard library, and vitstem modules that use only those.
"""

from .model import Model
from .stem import Stem, load

__all__ = ["Model", "Stem", "load"]
