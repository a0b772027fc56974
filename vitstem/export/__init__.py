"""Framework-free ONNX export of the stem (needs onnx; onnxruntime for int8 and .ort files).

The package imports onnx only when an export function is used, so `vitstem --help` and the
command registration in `vitstem.export.cli` stay light.
"""

__all__ = ["build_onnx", "check_onnx", "export_onnx"]


def __getattr__(name):
    if name in ("build_onnx", "export_onnx"):
        from . import api

        return getattr(api, name)
    if name == "check_onnx":
        from .checks import check_onnx

        return check_onnx
    raise AttributeError(f"module 'vitstem.export' has no attribute {name!r}")
