"""The `onnxruntime` engine: vitstem's exported ONNX run by the shipped edge runtime
(`vitstem.runtime.load`), so every conformance run also checks what a device runs."""

from __future__ import annotations

import numpy as np

from ...errors import VitstemError
from .base import Prepared, register
from .onnx_export import OnnxExportEngine, model_opset


class RuntimeFailed(RuntimeError):
    """The edge runtime refused or failed a model the exporter wrote: a failure of this engine, not a refusal."""


class OrtEngine(OnnxExportEngine):
    def __init__(self):
        super().__init__("onnxruntime", ("onnx", "onnxruntime"), "ONNX Runtime (CPU) on vitstem.export_onnx")

    def prepare(self, ws, spec, cell, opset):
        from ...runtime import load

        path, resampled, note = self.model(ws, spec, cell, opset)
        try:
            stem = load(path)
        except VitstemError as exc:
            raise RuntimeFailed(f"vitstem.runtime.load: {exc}") from None

        def run(images):
            try:
                return np.asarray(stem(images), dtype=np.float32)
            except VitstemError as exc:
                raise RuntimeFailed(f"vitstem.runtime: {exc}") from None

        return Prepared(run, model_opset(path), resampled, note)


register(OrtEngine())
