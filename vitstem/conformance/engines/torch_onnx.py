"""The `torch-onnx` engine: the PyTorch backend's module exported by `torch.onnx.export(dynamo=True)`,
run by ONNX Runtime (a plain session: the graph carries no vitstem metadata for the edge runtime)."""

from __future__ import annotations

import numpy as np

from ..matrix import LOWEST_OPSET
from .base import Engine, Prepared, Unsupported, native_only, register
from .onnx_export import EXACT_EXPORT_MAX_K, as_input, input_dtype, model_opset


def ort_runner(model: bytes):
    """An ONNX Runtime CPU session on serialized `model` as images -> float32 z0."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name, dtype = session.get_inputs()[0].name, input_dtype(model)
    return lambda images: np.asarray(session.run(None, {name: as_input(dtype, images)})[0], dtype=np.float32)


class TorchOnnxEngine(Engine):
    name, description = "torch-onnx", "ONNX Runtime on torch.onnx.export(dynamo=True) of the PyTorch backend"
    requires = ("torch", "onnx", "onnxruntime", "onnxscript")
    modules = ("vitstem.backends.torch:VitStem",)

    def opsets(self, full):
        return (LOWEST_OPSET, None) if full else (None,)

    def covers(self, cell, spec, full):
        # Each dynamo export takes seconds: the default matrix exports the spec as it is (both profiles).
        return cell.precision == "fp32" and (full or native_only(cell, spec))

    def prepare(self, ws, spec, cell, opset):
        if cell.profile == "exact" and spec.patch_dim > EXACT_EXPORT_MAX_K and not ws.full:
            raise Unsupported(f"deferred to --full: the exact profile sums the K = {spec.patch_dim} patch terms "
                              "one by one in a fixed order, which torch.onnx.export takes ~30 s of CPU to trace "
                              f"at K = 768 (K <= {EXACT_EXPORT_MAX_K} runs by default)")
        key = ("torch-onnx", spec.digest(), cell.profile, opset, tuple(cell.image_size))
        if key not in ws.cache:
            ws.cache[key] = self._export(ws, spec, cell, opset)
        model = ws.cache[key]
        produced = model_opset(model)
        note = "" if opset in (None, produced) else (
            f"asked for opset {opset}; torch.onnx.export(dynamo=True) produced opset {produced}")
        return Prepared(ort_runner(model), opset=produced, note=note)

    def _export(self, ws, spec, cell, opset) -> bytes:
        import warnings

        import torch

        from ...backends.torch import VitStem
        from ..matrix import sample_images

        module = VitStem.from_weights(spec, ws.weights(spec), profile=cell.profile).eval()
        example = torch.from_numpy(sample_images(spec, 2, cell.image_size))
        batch = torch.export.Dim("batch", min=1, max=1024)
        kwargs = {} if opset is None else {"opset_version": opset}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (example,), dynamo=True, dynamic_shapes=({0: batch},),
                                        verbose=False, **kwargs)
        return program.model_proto.SerializeToString()


register(TorchOnnxEngine())
