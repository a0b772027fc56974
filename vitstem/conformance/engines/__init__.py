"""The engines a conformance run compares: one module per engine, each registering itself on import.

`base` holds the interface (Engine, Prepared, Workspace, Unsupported) and the registry (ENGINES,
`register`); `frameworks` the import order and availability probing; `onnx_export` what the engines
on vitstem's exported ONNX share. The order below is the order of the report.
"""

import importlib

from .backend import BackendEngine
from .base import ENGINES, Engine, Prepared, Unsupported, Workspace, register
from .frameworks import import_frameworks
from .numpy_engine import NumpyEngine
from .onnx_export import EXACT_EXPORT_MAX_K, OnnxExportEngine

for _module in ("torch_engine", "tensorflow_engine", "onnxruntime_engine", "onnx_reference", "torch_onnx",
                "ort_web", "openvino_engine", "litert_engine"):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["ENGINES", "EXACT_EXPORT_MAX_K", "BackendEngine", "Engine", "NumpyEngine", "OnnxExportEngine", "Prepared",
           "Unsupported", "Workspace", "import_frameworks", "register"]
