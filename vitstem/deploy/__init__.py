"""Whole models: a vitstem stem joined to the encoder of a peer model, in one ONNX file.

    vitstem.deploy.export_model(timm_or_hf_model, "model.onnx", image_size="dynamic")
    vitstem.deploy.verify(model, "model.onnx", sizes=[(224, 224), (160, 288)])
    vitstem.deploy.compose("stem.onnx", "encoder.onnx", "model.onnx")

`model`: a timm or transformers model, or a keras-hub backbone (keras_hub.py). Imports torch, onnx (and for
keras-hub TensorFlow) only when a function is used (`import vitstem` never loads them).
"""

__all__ = ["build_model", "compose", "export_model", "verify"]


def __getattr__(name):
    if name in ("build_model", "export_model"):
        from . import api

        return getattr(api, name)
    if name == "compose":
        from .join import compose

        return compose
    if name == "verify":
        from .verification import verify

        return verify
    raise AttributeError(f"module 'vitstem.deploy' has no attribute {name!r}")
