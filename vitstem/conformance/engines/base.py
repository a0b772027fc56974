"""The one interface every conformance engine implements, and the registry the runner reads.

An engine turns (spec, the shared safetensors weight file, a matrix cell) into a function
images -> z0 (float32 numpy). It says why it cannot run (`missing`: framework not installed,
vitstem module not there) instead of failing; `Unsupported` (or ExportError while preparing a cell)
means it refuses that cell by design, reported as "not run" for the cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ...spec import Spec, load_weights
from ..matrix import Cell
from .frameworks import unavailable


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
            self.cache[key] = load_weights(self.weights_path, spec, other_spec=True)  # layout twins share them
        return self.cache[key]


@dataclass
class Prepared:
    """A runnable engine for one cell: `run(images) -> z0`, the opset it actually ran at, and
    whether it resamples the position table in float32 (which widens its fast bound)."""

    run: Callable[[np.ndarray], np.ndarray]
    opset: int | None = None
    resampled_in_float32: bool = False
    note: str = ""  # how the engine ran the cell, when it is not the obvious way


class Engine:
    """Base: `requires` frameworks must be installed and `modules` (vitstem parts) importable to run.

    Call `frameworks.import_frameworks` before `missing`: importing a vitstem module imports its framework."""

    name = ""
    description = ""
    requires: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()  # "module:attribute" entries
    precisions = ("fp32",)

    def missing(self) -> str | None:
        """Why this engine cannot run here, or None."""
        return unavailable(self.requires, self.modules)

    def opsets(self, full: bool) -> tuple:
        return (None,)

    def covers(self, cell: Cell, spec: Spec, full: bool) -> bool:
        """Whether this engine runs in `cell` of `spec`'s matrix (before any refusal of its own)."""
        return cell.precision in self.precisions

    def prepare(self, ws: Workspace, spec: Spec, cell: Cell, opset) -> Prepared:
        raise NotImplementedError


def native_only(cell: Cell, spec: Spec) -> bool:
    """The cell runs the spec as it is (its own layout and size): what engines whose every build
    takes seconds (torch.onnx.export, tf.lite conversion) cover outside the full matrix."""
    return cell.layout == spec.input.layout and tuple(cell.image_size) == tuple(spec.image_size)


ENGINES: dict[str, Engine] = {}


def register(engine: Engine) -> None:
    """Add an engine to ENGINES (and so to `vitstem conform --engines` and the default matrix)."""
    ENGINES[engine.name] = engine
