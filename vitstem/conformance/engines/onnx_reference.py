"""The `onnx-reference` engine: vitstem's exported ONNX run by onnx's own ReferenceEvaluator."""

from __future__ import annotations

import numpy as np

from .base import Prepared, register
from .onnx_export import OnnxExportEngine, as_input, input_dtype, model_opset


class OnnxReferenceEngine(OnnxExportEngine):
    # onnx's evaluator has no DequantizeLinear for opset 18 (the exporter's default): int8 runs in ORT only.
    precisions = ("fp32", "fp16")

    def __init__(self):
        super().__init__("onnx-reference", ("onnx",), "onnx.reference.ReferenceEvaluator on vitstem.export_onnx")

    def prepare(self, ws, spec, cell, opset):
        import onnx
        from onnx.reference import ReferenceEvaluator

        path, resampled, note = self.model(ws, spec, cell, opset)
        evaluator = ReferenceEvaluator(onnx.load(str(path)))
        name, dtype = evaluator.input_names[0], input_dtype(path)

        def run(images):
            return np.asarray(evaluator.run(None, {name: as_input(dtype, images)})[0], dtype=np.float32)

        return Prepared(run, model_opset(path), resampled, note)


register(OnnxReferenceEngine())
