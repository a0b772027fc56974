"""The `openvino` engine: vitstem's exported ONNX read and compiled by OpenVINO on CPU, with float32
inference precision forced (the CPU plugin otherwise picks bf16 or fp16 where the CPU has them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import ExportError
from .base import Prepared, Unsupported, register
from .onnx_export import OnnxExportEngine, as_input, model_opset

PRECISION_HINT = "INFERENCE_PRECISION_HINT"
# tests/test_edge_openvino.py pins the divergence this works around.
RESIZE_NOTE = ("OpenVINO's CPU Resize departs from ONNX's cubic (and antialiased) definition, so the position "
               "table is resampled at export time for this size (image_size [size]), not in the graph")


def compile_f32(path: Path, threads: int | None = None):
    """OpenVINO's compiled CPU model of an ONNX file, with float32 inference precision; RuntimeError
    if the compiled model reports another precision (the hint was not honoured)."""
    import openvino as ov

    config = {PRECISION_HINT: ov.Type.f32}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    compiled = ov.Core().compile_model(ov.Core().read_model(str(path)), "CPU", config)
    got = compiled.get_property(PRECISION_HINT)
    if got != ov.Type.f32:
        raise RuntimeError(f"OpenVINO compiled {path.name} with inference precision {got}, not f32")
    return compiled


def _has_float64(path: Path) -> bool:
    import onnx

    proto = onnx.load(str(path))
    double = onnx.TensorProto.DOUBLE
    return (any(t.data_type == double for t in proto.graph.initializer)
            or any(a.i == double for n in proto.graph.node for a in n.attribute if a.name == "to"))


class OpenVinoEngine(OnnxExportEngine):
    def __init__(self):
        super().__init__("openvino", ("onnx", "openvino"), "OpenVINO (CPU, f32 inference precision) on vitstem.export_onnx")

    def model(self, ws, spec, cell, opset):
        if tuple(cell.image_size) == tuple(spec.image_size):
            return super().model(ws, spec, cell, opset)
        key = ("export", spec.digest(), cell.profile, cell.precision, opset, tuple(cell.image_size), "sized")
        if key not in ws.cache:
            try:
                ws.cache[key] = self._export(ws, spec, cell, opset, [tuple(cell.image_size)])
            except ExportError as exc:
                raise Unsupported(f"export refused: {exc}") from None
        return ws.cache[key], False, RESIZE_NOTE

    def prepare(self, ws, spec, cell, opset):
        path, resampled, note = self.model(ws, spec, cell, opset)
        if cell.profile == "exact" and _has_float64(path):
            raise Unsupported("OpenVINO's CPU plugin has no float64 arithmetic (it runs f64 graphs in f32), "
                              "so the exact profile's float64 accumulation cannot be reproduced")
        compiled = compile_f32(path)
        dtype = compiled.input(0).get_element_type().to_dtype()

        def run(images):
            return np.asarray(compiled(as_input(dtype, images))[0], dtype=np.float32)

        return Prepared(run, model_opset(path), resampled, note)


register(OpenVinoEngine())
