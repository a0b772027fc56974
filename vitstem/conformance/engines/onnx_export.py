"""What the engines that run vitstem's exported ONNX share: one export per cell (and the fallback
when the exporter refuses a dynamic size), and reading a graph's opset and input type from its header."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import ExportError
from ...spec import Spec
from ..matrix import LOWEST_OPSET, Cell
from .base import Engine, Unsupported, Workspace

# The exact profile sums the K patch terms one by one: engines that trace or interpret that graph
# slowly defer specs with a larger K to --full.
EXACT_EXPORT_MAX_K = 64


class OnnxExportEngine(Engine):
    """Our framework-free export (`vitstem.export_onnx`), run by some ONNX runtime."""

    precisions = ("fp32", "fp16", "int8")
    modules = ("vitstem.export:export_onnx",)

    def __init__(self, name: str, requires: tuple[str, ...], description: str):
        self.name, self.requires, self.description = name, requires, description

    def opsets(self, full):
        return (LOWEST_OPSET, None)

    def model(self, ws: Workspace, spec: Spec, cell: Cell, opset) -> tuple[Path, bool, str]:
        """Export once per (spec, profile, precision, opset, size) and share it between the runtimes.

        At the native size: image_size "fixed". Elsewhere: "dynamic" (ONNX Resize in float32); where
        the exporter refuses that (e.g. exact, or antialias below opset 18) the cell runs a graph
        for that one size (table resampled at export time) and the refusal is returned as a note.
        Returns (path, resampled inside the graph, note)."""
        native = tuple(cell.image_size) == tuple(spec.image_size)
        key = ("export", spec.digest(), cell.profile, cell.precision, opset, tuple(cell.image_size))
        if key not in ws.cache:
            modes = ["fixed"] if native else ["dynamic", [tuple(cell.image_size)]]
            note, result = "", None
            for mode in modes:
                try:
                    result = (self._export(ws, spec, cell, opset, mode), mode == "dynamic")
                    break
                except ExportError as exc:
                    note = f"image_size {mode!r} refused: {exc}"
            ws.cache[key] = (result, note)
        result, note = ws.cache[key]
        if result is None:
            raise Unsupported(f"export refused: {note}")
        return (*result, note)

    def _export(self, ws: Workspace, spec: Spec, cell: Cell, opset, mode) -> Path:
        from ... import export_onnx

        size = "x".join(map(str, cell.image_size))
        name = (f"{spec.name}-{spec.input.layout}-{cell.profile}-{cell.precision}-op{opset or 'default'}-"
                f"{mode if isinstance(mode, str) else size}.onnx")
        path = ws.workdir / "models" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return export_onnx(spec, ws.weights(spec), path, opset=opset, precision=cell.precision,
                           profile=cell.profile, batch="dynamic", image_size=mode)


def _header(model):
    """The ModelProto of `model` (path or bytes), without external data."""
    import onnx

    return onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model), load_external_data=False)


def model_opset(model) -> int:
    """The default-domain opset of an ONNX model (path or bytes)."""
    return next(o.version for o in _header(model).opset_import if o.domain in ("", "ai.onnx"))


def input_dtype(model) -> np.dtype:
    """The element type of an ONNX model's (path or bytes) first input."""
    import onnx

    elem = _header(model).graph.input[0].type.tensor_type.elem_type
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))


def as_input(dtype, images: np.ndarray) -> np.ndarray:
    """The batch (in the spec's layout) in the element type a graph's input wants: uint8 pixels as
    they are (Unsupported for a float batch), float16 or else float32."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        if images.dtype != np.uint8:
            raise Unsupported("the graph takes uint8 pixels but the batch is float")
        return images
    return images.astype(np.float16 if dtype == np.float16 else np.float32)
