"""`run(spec, weights)`: every engine over the conformance matrix, compared pair by pair, into a Report."""

from __future__ import annotations

import tempfile
import time
from itertools import combinations
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import ExportError, InputError
from ..spec import Spec, init_weights, load_spec, save_weights
from ..spec.digest import weights_digest
from ..spec.vocabulary import FAST_BOUND_BETWEEN_ENGINES
from .engines import ENGINES, Unsupported, Workspace, import_frameworks
from .matrix import PRECISIONS, PROFILES, Cell, cells, sample_images, with_layout
from .progress import Progress
from .report import NotRun, Report, Result
from .verdicts import compare

REFERENCE = "reference"  # the NumPy reference in the exact profile: z0 computed in float64, rounded once
# The fast bound is linear in the unit roundoff (to first order), so scaling it by u64/u32 bounds how
# far a float64 evaluation in another summation order may be from the reference's float64 z0.
FLOAT64_PER_FLOAT32_ERROR = 2.0**-53 / 2.0**-24


def _label(name: str, opset) -> str:
    return name if opset is None else f"{name}@{opset}"


def run(spec, weights=None, *, engines=None, profiles=PROFILES, precisions=PRECISIONS, full: bool = False,
        workdir=None, seed: int = 0, progress: bool = False) -> Report:
    """Run the conformance matrix of `spec` (a Spec, mapping, file or preset name) on `engines`
    (default: all) and return the Report. `weights`: a safetensors path every engine loads, a
    mapping of canonical arrays (saved once to a file in `workdir`), or None for seeded weights."""
    spec = load_spec(spec)
    names = list(ENGINES) if engines is None else list(engines)
    unknown = [n for n in names if not isinstance(n, str) or n not in ENGINES]
    if unknown:
        raise InputError(f"unknown engines {unknown}; choose from {', '.join(ENGINES)}")
    for p in profiles:
        if p not in PROFILES:
            raise InputError(f"unknown profile {p!r}; choose from {', '.join(PROFILES)}")
    for p in precisions:
        if p not in PRECISIONS:
            raise InputError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)}")
    with tempfile.TemporaryDirectory(prefix="vitstem-conform-") as scratch:
        work = Path(workdir) if workdir is not None else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        if weights is None or isinstance(weights, Mapping):
            weights = init_weights(spec, seed) if weights is None else weights
            path = save_weights(weights, work / "weights.safetensors", spec)
        else:
            path = Path(weights)
        ws = Workspace(path, work, full=full)
        return _run(spec, ws, names, tuple(profiles), tuple(precisions), full, seed, progress)


def _run(spec: Spec, ws: Workspace, names, profiles, precisions, full, seed, progress) -> Report:
    started = time.perf_counter()
    weights = ws.weights(spec)
    report = Report(spec=spec, weights_digest=weights_digest(weights), weights_path=str(ws.weights_path),
                    matrix="full" if full else "default")
    import_frameworks(names)
    available = []
    for name in names:
        reason = ENGINES[name].missing()
        report.engines[name] = reason or "ran"
        if reason:
            report.not_run.append(NotRun(name, reason))
        else:
            available.append(name)
    matrix = cells(spec, profiles=profiles, precisions=precisions, full=full)
    bar = Progress(len(matrix), enabled=progress)
    for i, cell in enumerate(matrix):
        bar.update(i, cell.label())
        names = [n for n in available if ENGINES[n].covers(cell, spec, full)]
        _run_cell(with_layout(spec, cell.layout), ws, cell, names, full, seed, report)
    bar.done()
    report.seconds = time.perf_counter() - started
    return report


def _run_cell(spec: Spec, ws: Workspace, cell: Cell, names, full, seed, report: Report) -> None:
    from ..backends.numpy.bound import fast_error_bound
    from ..backends.numpy.stem import unrounded

    weights = ws.weights(spec)
    images = sample_images(spec, cell.batch, cell.image_size, seed)
    exact = unrounded(spec, weights, images, "exact")  # the reference's float64 steps, rounded once below
    reference = exact.astype(np.float32)
    bounds: dict[bool, np.ndarray] = {}  # resampled in float32 -> fast bound, computed once per cell

    def bound_for(resampled: bool) -> np.ndarray:
        if resampled not in bounds:
            bounds[resampled] = fast_error_bound(spec, weights, images, resampled_in_float32=resampled)
        return bounds[resampled]

    ties = None
    if cell.profile == "exact":  # to tell float64 double-rounding near-ties from real mismatches
        # Each float64 evaluation is within e of the true z0, so two are within 2e of each other.
        ties = (exact, 2 * bound_for(False) * FLOAT64_PER_FLOAT32_ERROR)
    outputs = {}  # label -> (engine name, opset, z0, bound or None)
    for name in names:
        engine = ENGINES[name]
        opsets = engine.opsets(full) if (full or cell.precision == "fp32") else (None,)
        for opset in opsets:
            label = _label(name, opset)
            tic = time.perf_counter()
            try:
                prepared = engine.prepare(ws, spec, cell, opset)
                z0 = prepared.run(images)
            except (Unsupported, ExportError) as exc:
                report.not_run.append(NotRun(label, str(exc), cell))
                continue
            except Exception as exc:  # a crash is a failure of that engine, reported, not raised
                report.results.append(Result.crashed((label, REFERENCE), cell, opset, f"{type(exc).__name__}: {exc}"))
                continue
            finally:
                report.engine_seconds[name] = report.engine_seconds.get(name, 0.0) + time.perf_counter() - tic
            bound = None
            if cell.profile == "fast" and cell.precision == "fp32":
                bound = bound_for(prepared.resampled_in_float32)
            outputs[label] = (name, prepared.opset, z0, bound)
            if prepared.note:
                report.notes.append(NotRun(label, prepared.note, cell))
    kind = cell.precision if cell.precision != "fp32" else cell.profile
    for label, (name, opset, z0, bound) in outputs.items():
        report.results.append(Result((label, REFERENCE), cell, opset, 1, compare(z0, reference, kind, bound, ties=ties)))
    if kind in ("fast", "exact"):  # engine against engine, at the default opset
        # Two fast engines are each within their bound of the exact z0, so within the sum of each other.
        default_opset = [(label, v) for label, v in outputs.items() if "@" not in label]
        for (la, a), (lb, b) in combinations(default_opset, 2):
            opset = a[1] if a[1] is not None else b[1]
            bound = None if kind == "exact" else a[3] + b[3]
            factor = int(FAST_BOUND_BETWEEN_ENGINES) if bound is not None else 1
            report.results.append(Result((la, lb), cell, opset, factor,
                                         compare(a[2], b[2], kind, bound, ties=ties)))
