"""The `litert` engine: the TensorFlow backend's graph converted to a .tflite flatbuffer
(vitstem.backends.tensorflow.tflite: float32, fp16 weights, full-integer int8 calibrated on a
representative batch) and run by the LiteRT interpreter (ai_edge_litert), as Android runs it.
One conversion per (precision, batch, size): LiteRT models here have a fixed batch."""

from __future__ import annotations

import numpy as np

from ...errors import ExportError
from ..matrix import sample_images
from .base import Engine, Prepared, Unsupported, native_only, register

CALIBRATION_BATCH = 8
CALIBRATION_SEED = 12345  # not the seed the cells draw their images from


class LiteRtEngine(Engine):
    name = "litert"
    description = "LiteRT interpreter (ai_edge_litert) on tf.lite conversions of the TensorFlow backend"
    requires = ("tensorflow", "ai_edge_litert")
    modules = ("vitstem.backends.tensorflow.tflite:convert",)
    precisions = ("fp32", "fp16", "int8")

    def covers(self, cell, spec, full):
        # Each conversion takes seconds: the default matrix converts the spec as it is (layout and size).
        return cell.precision in self.precisions and (full or native_only(cell, spec))

    def prepare(self, ws, spec, cell, opset):
        from ai_edge_litert.interpreter import Interpreter

        flat = self.flatbuffer(ws, spec, cell)
        interpreter = Interpreter(model_content=flat, num_threads=1)
        interpreter.allocate_tensors()
        index = interpreter.get_input_details()[0]["index"]

        def run(images):
            interpreter.set_tensor(index, images)
            interpreter.invoke()
            return np.asarray(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]), np.float32)

        return Prepared(run)

    def flatbuffer(self, ws, spec, cell) -> bytes:
        key = ("tflite", spec.digest(), cell.profile, cell.precision, cell.batch, tuple(cell.image_size))
        if key not in ws.cache:
            from ...backends.tensorflow.tflite import convert

            representative = None
            if cell.precision == "int8":
                representative = sample_images(spec, CALIBRATION_BATCH, cell.image_size, CALIBRATION_SEED)
            try:
                ws.cache[key] = convert(spec, ws.weights(spec), precision=cell.precision, profile=cell.profile,
                                        batch=cell.batch, image_size=cell.image_size, representative=representative)
            except ExportError as exc:
                ws.cache[key] = exc
        result = ws.cache[key]
        if isinstance(result, ExportError):
            raise Unsupported(str(result))
        return result


register(LiteRtEngine())
