"""The `tensorflow` engine: the TensorFlow/Keras backend (vitstem.backends.tensorflow)."""

from .backend import BackendEngine
from .base import register


class TensorFlowEngine(BackendEngine):
    name, description = "tensorflow", "TensorFlow/Keras backend (vitstem.backends.tensorflow)"
    requires, modules = ("tensorflow",), ("vitstem.backends.tensorflow:forward",)


register(TensorFlowEngine())
