"""The engines a conformance run compares, each behind one small adapter.

An engine turns (spec, the shared safetensors weight file, a matrix cell) into a function
images -> z0 (float32 numpy). Each engine says why it cannot run (framework not installed,
vitstem module not there yet) instead of failing; ExportError while preparing a cell means the
engine refuses that cell by design (e.g. a Resize ONNX cannot express at that opset), reported
as "not run" for the cell. Frameworks are imported on first use, torch always before tensorflow
(importing torchvision after tensorflow segfaults).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ExportError
from ..spec import Spec, load_weights
from .matrix import LOWEST_OPSET, Cell


class Unsupported(Exception):
    """The engine refuses this cell by design (the reason is reported, not counted as a failure)."""


@dataclass
class Workspace:
    """What every engine shares within a run: the one weight file, a scratch directory, caches."""

    weights_path: Path
    workdir: Path
    full: bool = False  # the release matrix: no engine defers a slow cell
    cache: dict = field(default_factory=dict)

    def weights(self, spec: Spec) -> dict[str, np.ndarray]:
        """The canonical weights, loaded from the shared file (layout twins share them)."""
        key = ("weights", spec.digest())
        if key not in self.cache:
            self.cache[key] = load_weights(self.weights_path, spec)
        return self.cache[key]


@dataclass
class Prepared:
    """A runnable engine for one cell: `run(images) -> z0`, the opset it actually ran at, and
    whether it resamples the position table in float32 (which widens its fast bound)."""

    run: Callable[[np.ndarray], np.ndarray]
    opset: int | None = None
    resampled_in_float32: bool = False
    note: str = ""  # how the engine ran the cell, when it is not the obvious way


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def import_frameworks(names) -> None:
    """Import the frameworks the engines `names` need, torch (and torchvision) before tensorflow."""
    needed = {m for n in names if n in ENGINES for m in ENGINES[n].requires}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for module in ("torch", "torchvision", "tensorflow"):
        if module in needed or (module == "torchvision" and "torch" in needed and "tensorflow" in needed):
            if _installed(module):
                importlib.import_module(module)


class Engine:
    """Base: `requires` frameworks must be installed and `modules` (vitstem parts) importable to run.

    Call `import_frameworks` before `missing`: importing a vitstem module imports its framework."""

    name = ""
    description = ""
    requires: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()  # "module:attribute" entries
    precisions = ("fp32",)

    def missing(self) -> str | None:
        """Why this engine cannot run here, or None."""
        for module in self.requires:
            if not _installed(module):
                return f"{module} is not installed"
        for entry in self.modules:
            module, _, attr = entry.partition(":")
            try:
                found = hasattr(importlib.import_module(module), attr)
            except ImportError as exc:
                return f"{module} is not available yet ({exc})"
            if not found:
                return f"{module}.{attr} is not available yet"
        return None

    def opsets(self, full: bool) -> tuple:
        return (None,)

    def covers(self, cell: Cell, spec: Spec, full: bool) -> bool:
        """Whether this engine runs in `cell` of `spec`'s matrix (before any refusal of its own)."""
        return cell.precision in self.precisions

    def prepare(self, ws: Workspace, spec: Spec, cell: Cell, opset) -> Prepared:
        raise NotImplementedError


class NumpyEngine(Engine):
    name, description = "numpy", "NumPy reference (vitstem.backends.numpy)"

    def prepare(self, ws, spec, cell, opset):
        from ..backends.numpy import forward

        weights = ws.weights(spec)
        return Prepared(lambda x: forward(spec, weights, x, profile=cell.profile))


class BackendEngine(Engine):
    """A vitstem backend through its module-level `forward(spec, weights, images, profile=)`."""

    def __init__(self, name: str, framework: str, description: str):
        self.name, self.description = name, description
        self.requires, self.modules = (framework,), (f"vitstem.backends.{name}:forward",)

    def prepare(self, ws, spec, cell, opset):
        module = importlib.import_module(f"vitstem.backends.{self.name}")
        weights = ws.weights(spec)
        return Prepared(lambda x: np.asarray(module.forward(spec, weights, x, profile=cell.profile)))


def _feed(input_type: str, images: np.ndarray) -> np.ndarray:
    """The batch (in the spec's layout) in the element type an ONNX graph's input wants."""
    if "uint8" in input_type:
        if images.dtype != np.uint8:
            raise Unsupported("the graph takes uint8 pixels but the batch is float")
        return images
    return images.astype(np.float16 if "float16" in input_type else np.float32)


class OnnxExportEngine(Engine):
    """Our framework-free export (`vitstem.export_onnx`), run by ONNX Runtime or onnx's reference evaluator."""

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
        from .. import export_onnx

        size = "x".join(map(str, cell.image_size))
        name = (f"{spec.name}-{spec.input.layout}-{cell.profile}-{cell.precision}-op{opset or 'default'}-"
                f"{mode if isinstance(mode, str) else size}.onnx")
        path = ws.workdir / "models" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return export_onnx(spec, ws.weights(spec), path, opset=opset, precision=cell.precision,
                           profile=cell.profile, batch="dynamic", image_size=mode)


def _model_opset(model) -> int:
    """The default-domain opset of an ONNX model (path or bytes), read from its header only."""
    import onnx

    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model), load_external_data=False)
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _ort_runner(model) -> Callable:
    """An ONNX Runtime CPU session on `model` (path or bytes) as images -> float32 z0."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                   providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]

    def run(images):
        return np.asarray(session.run(None, {inp.name: _feed(inp.type, images)})[0],
                          dtype=np.float32)

    return run


class OrtEngine(OnnxExportEngine):
    def __init__(self):
        super().__init__("onnxruntime", ("onnx", "onnxruntime"), "ONNX Runtime (CPU) on vitstem.export_onnx")

    def prepare(self, ws, spec, cell, opset):
        path, resampled, note = self.model(ws, spec, cell, opset)
        return Prepared(_ort_runner(path), _model_opset(path), resampled, note)


class OnnxReferenceEngine(OnnxExportEngine):
    # onnx's evaluator has no DequantizeLinear for opset 18 (the exporter's default): int8 runs in ORT only.
    precisions = ("fp32", "fp16")

    def __init__(self):
        super().__init__("onnx-reference", ("onnx",), "onnx.reference.ReferenceEvaluator on vitstem.export_onnx")

    def prepare(self, ws, spec, cell, opset):
        from onnx.reference import ReferenceEvaluator

        path, resampled, note = self.model(ws, spec, cell, opset)
        import onnx

        proto = onnx.load(str(path))
        evaluator = ReferenceEvaluator(proto)
        name = evaluator.input_names[0]
        elem = proto.graph.input[0].type.tensor_type.elem_type  # as ORT names it: tensor(float16) etc.
        itype = f"tensor({onnx.helper.tensor_dtype_to_np_dtype(elem).name})"

        def run(images):
            return np.asarray(evaluator.run(None, {name: _feed(itype, images)})[0], dtype=np.float32)

        return Prepared(run, _model_opset(path), resampled, note)


EXACT_EXPORT_MAX_K = 64


class TorchOnnxEngine(Engine):
    """The PyTorch backend's module exported by `torch.onnx.export(dynamo=True)`, run by ONNX Runtime."""

    name, description = "torch-onnx", "ONNX Runtime on torch.onnx.export(dynamo=True) of the PyTorch backend"
    requires = ("torch", "onnx", "onnxruntime", "onnxscript")
    modules = ("vitstem.backends.torch:VitStem",)

    def opsets(self, full):
        return (LOWEST_OPSET, None) if full else (None,)

    def covers(self, cell, spec, full):
        # Each dynamo export takes seconds: the default matrix exports the spec as it is (both profiles).
        native = cell.layout == spec.input.layout and tuple(cell.image_size) == tuple(spec.image_size)
        return cell.precision == "fp32" and (full or native)

    def prepare(self, ws, spec, cell, opset):
        if cell.profile == "exact" and spec.patch_dim > EXACT_EXPORT_MAX_K and not ws.full:
            raise Unsupported(f"deferred to --full: the exact profile sums the K = {spec.patch_dim} patch terms "
                              "one by one in a fixed order, which torch.onnx.export takes ~30 s of CPU to trace "
                              f"at K = 768 (K <= {EXACT_EXPORT_MAX_K} runs by default)")
        key = ("torch-onnx", spec.digest(), cell.profile, opset, tuple(cell.image_size))
        if key not in ws.cache:
            ws.cache[key] = self._export(ws, spec, cell, opset)
        model = ws.cache[key]
        produced = _model_opset(model)
        note = "" if opset in (None, produced) else (
            f"asked for opset {opset}; torch.onnx.export(dynamo=True) produced opset {produced}")
        return Prepared(_ort_runner(model), opset=produced, note=note)

    def _export(self, ws, spec, cell, opset) -> bytes:
        import warnings

        import torch

        from ..backends.torch import VitStem
        from .matrix import sample_images

        module = VitStem.from_weights(spec, ws.weights(spec), profile=cell.profile).eval()
        example = torch.from_numpy(sample_images(spec, 2, cell.image_size))
        batch = torch.export.Dim("batch", min=1, max=1024)
        kwargs = {} if opset is None else {"opset_version": opset}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (example,), dynamo=True, dynamic_shapes=({0: batch},),
                                        verbose=False, **kwargs)
        return program.model_proto.SerializeToString()


ENGINES: dict[str, Engine] = {e.name: e for e in (
    NumpyEngine(),
    BackendEngine("torch", "torch", "PyTorch backend (vitstem.backends.torch)"),
    BackendEngine("tensorflow", "tensorflow", "TensorFlow/Keras backend (vitstem.backends.tensorflow)"),
    OrtEngine(),
    OnnxReferenceEngine(),
    TorchOnnxEngine(),
)}


def register(engine: Engine) -> None:
    """Add an engine to ENGINES (and so to `vitstem conform --engines` and the default matrix)."""
    ENGINES[engine.name] = engine


# Engines kept in modules of their own, each registering itself on import.
for _module in ("ort_web", "openvino_engine", "litert_engine"):
    if importlib.util.find_spec(f"{__package__}.{_module}") is not None:
        importlib.import_module(f"{__package__}.{_module}")
