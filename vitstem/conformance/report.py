"""The conformance report: one verdict, a terminal table, JSON for machines, Markdown for people."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes
from ..spec import Spec
from .matrix import Cell
from .verdicts import CRITERIA, Comparison, _failed


@dataclass
class Result:
    """One comparison of two engines (or an engine and the exact reference) in one matrix cell."""

    engines: tuple[str, str]
    cell: Cell
    opset: int | None
    bound_factor: int
    comparison: Comparison

    @classmethod
    def crashed(cls, engines, cell, opset, message: str) -> "Result":
        kind = cell.precision if cell.precision != "fp32" else cell.profile
        return cls(tuple(engines), cell, opset, 1, _failed(kind, f"crashed: {message}"))

    @property
    def passed(self) -> bool:
        return self.comparison.passed

    def to_json(self) -> dict:
        c = self.comparison.summary()
        return {"engines": list(self.engines), **self.cell.fields(), "opset": self.opset,
                "bound_factor": self.bound_factor, "max_abs_diff": c.pop("max_abs_diff"), "bound": c.pop("bound"),
                "max_ratio": c.pop("max_ratio"), "passed": c.pop("passed"), **c}


@dataclass
class NotRun:
    """An engine that did not run: everywhere (cell None) or in one cell it refuses by design."""

    engine: str
    reason: str
    cell: Cell | None = None

    def to_json(self) -> dict:
        return {"engine": self.engine, "reason": self.reason, "cell": None if self.cell is None else self.cell.fields()}


@dataclass
class Report:
    spec: Spec
    weights_digest: str
    weights_path: str
    matrix: str
    engines: dict[str, str] = field(default_factory=dict)  # name -> "ran" or why not
    results: list[Result] = field(default_factory=list)
    not_run: list[NotRun] = field(default_factory=list)
    notes: list[NotRun] = field(default_factory=list)  # how an engine ran a cell, when not the obvious way
    seconds: float = 0.0
    engine_seconds: dict[str, float] = field(default_factory=dict)  # preparing (exports) and running
    command_seconds: float | None = None  # the whole `vitstem conform` process, interpreter and imports included
    whole_models: list[dict] = field(default_factory=list)  # vitstem.conformance.whole rows (--whole-models)

    @property
    def verdict(self) -> str:
        ok = self.results and all(r.passed for r in self.results) and all(w["passed"] for w in self.whole_models)
        return "pass" if ok else "fail"

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if not r.passed]

    def to_json(self) -> dict:
        return {"verdict": self.verdict, "spec": self.spec.name, "spec_digest": self.spec.digest(),
                "weights_digest": self.weights_digest, "matrix": self.matrix, "seconds": round(self.seconds, 3),
                "command_seconds": None if self.command_seconds is None else round(self.command_seconds, 3),
                "engine_seconds": {k: round(v, 3) for k, v in self.engine_seconds.items()},
                "engines": dict(self.engines), "criteria": CRITERIA,
                "results": [r.to_json() for r in self.results],
                "not_run": [n.to_json() for n in self.not_run],
                "notes": [n.to_json() for n in self.notes],
                **({"whole_models": self.whole_models} if self.whole_models else {})}

    def write_json(self, path) -> Path:
        text = json.dumps(self.to_json(), indent=2, sort_keys=False, allow_nan=False) + "\n"
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_bytes(path, text.encode())

    # -- summaries -----------------------------------------------------------------------
    def by_pair(self) -> dict[tuple, list[Result]]:
        """Results grouped by (engine pair, kind), in first-seen order."""
        groups: dict[tuple, list[Result]] = defaultdict(list)
        for r in self.results:
            groups[(r.engines, r.comparison.kind)].append(r)
        return groups

    def summary_rows(self) -> list[dict]:
        rows = []
        for (engines, kind), results in self.by_pair().items():
            cs = [r.comparison for r in results]
            rows.append({
                "pair": f"{engines[0]} vs {engines[1]}", "kind": kind,
                "cells": f"{sum(c.passed for c in cs)}/{len(cs)}",
                "max|d|": _num(_nanmax(c.max_abs_diff for c in cs)),
                "max|d|/bound": "-" if kind == "exact" else _num(_nanmax(c.max_ratio for c in cs)),
                "ulp p50/p99/max": "/".join(_num(_nanmax(getattr(c, k) for c in cs), ulp=True)
                                            for k in ("ulp_p50", "ulp_p99", "ulp_max")),
                "cos min": _num(-_nanmax(-c.cosine_min for c in cs), digits=6),
                "verdict": "pass" if all(c.passed for c in cs) else "FAIL",
            })
        return rows

    def table(self) -> str:
        """The verdict table for the terminal (plain text)."""
        rows = self.summary_rows()
        took = f"{self.seconds:.1f} s" + ("" if self.command_seconds is None else
                                          f"; {self.command_seconds:.1f} s for the command, imports included")
        lines = [f"vitstem conform {self.spec.name} ({self.matrix} matrix, {len(self.results)} comparisons, {took})",
                 f"spec {self.spec.digest()}", f"weights {self.weights_digest}", ""]
        lines += _text_table(rows)
        if any(c.passed and (c.ulp_max or 0) > ULP_NOTE_ABOVE for r in self.results for c in [r.comparison]):
            lines += ["", ULP_NOTE]
        if self.engine_seconds:
            lines += ["", "seconds per engine (exports included): "
                      + ", ".join(f"{k} {v:.1f}" for k, v in self.engine_seconds.items())]
        whole = [n for n in self.not_run if n.cell is None]
        per_cell = [n for n in self.not_run if n.cell is not None]
        if whole:
            lines += ["", "not run:"] + [f"  {n.engine}: {n.reason}" for n in whole]
        if per_cell:
            lines += ["", f"not run in {len(per_cell)} cells (refused by design or deferred to --full; not failures):"]
            seen = set()
            for n in per_cell:
                if (n.engine, n.reason) not in seen:
                    seen.add((n.engine, n.reason))
                    lines.append(f"  {n.engine} {n.cell.label()}: {' '.join(str(n.reason).split())}")
        if self.notes:
            counts: dict[tuple, int] = defaultdict(int)
            for n in self.notes:
                counts[(n.engine.split("@")[0], n.reason)] += 1
            lines += ["", "notes:"] + [f"  {engine} ({count} runs): {_short(reason)}"
                                       for (engine, reason), count in counts.items()]
        fails = self.failures
        if fails:
            lines += ["", f"failures ({len(fails)}):"]
            lines += [f"  {' vs '.join(r.engines)} [{r.cell.label()}]: {_short(r.comparison.note)}" for r in fails[:20]]
        lines += ["", f"verdict: {self.verdict.upper()}"]
        return "\n".join(lines)

    def write_markdown(self, path) -> Path:
        """Markdown for people, with one PNG plot of the error distribution per engine pair beside it."""
        from .plots import plot_pair

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"# Conformance report: `{self.spec.name}`", "",
                 f"**Verdict: {self.verdict.upper()}** ({self.matrix} matrix, {len(self.results)} comparisons, "
                 f"{self.seconds:.1f} s)", "",
                 f"- spec digest: `{self.spec.digest()}`", f"- weights digest: `{self.weights_digest}`", "",
                 "## Criteria", ""]
        lines += [f"- `{k}`: {v}" for k, v in CRITERIA.items()]
        lines += ["", "## Engines", "", "| engine | status |", "|---|---|"]
        lines += [f"| {name} | {status} |" for name, status in self.engines.items()]
        lines += ["", "## Summary per engine pair", ""] + _markdown_table(self.summary_rows())
        lines += ["", "## Error distributions", ""]
        by_engines: dict[tuple, dict[str, list]] = defaultdict(dict)
        for (engines, kind), results in self.by_pair().items():
            by_engines[engines][kind] = [r.comparison for r in results]
        for i, (engines, kinds) in enumerate(by_engines.items()):
            name = f"{path.stem}-{i:02d}-{_slug(engines[0])}-vs-{_slug(engines[1])}.png"
            plot_pair(path.parent / name, f"{engines[0]} vs {engines[1]}", kinds)
            lines += [f"![{engines[0]} vs {engines[1]}]({name})", ""]
        lines += ["## Every comparison", ""]
        lines += _markdown_table([{
            "engines": " vs ".join(r.engines), "cell": r.cell.label(), "opset": r.opset or "-",
            "max|d|": _num(r.comparison.max_abs_diff), "bound": _num(r.comparison.bound),
            "ratio": _num(r.comparison.max_ratio),
            "ulp p50/p99/max": "/".join(_num(getattr(r.comparison, k), ulp=True) for k in ("ulp_p50", "ulp_p99", "ulp_max")),
            "verdict": "pass" if r.passed else "FAIL", "note": r.comparison.note} for r in self.results])
        if self.notes:
            lines += ["", "## Notes", ""] + _markdown_table(
                [{"engine": n.engine, "cell": n.cell.label(), "note": n.reason} for n in self.notes])
        if self.not_run:
            lines += ["", "## Not run", ""] + _markdown_table(
                [{"engine": n.engine, "cell": n.cell.label() if n.cell else "all", "reason": n.reason} for n in self.not_run])
        return atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def _nanmax(values) -> float:
    values = [v for v in values if not np.isnan(v)]
    return max(values) if values else float("nan")


ULP_NOTE_ABOVE = 1e4
ULP_NOTE = ("ULP distances count the float32 values between two results, so they are diagnostics, not verdicts: "
            "for an element of z0 near zero, whose sign may differ between engines, a |d| of 1e-7 spans up to ~2e9 "
            "ULPs. The verdicts hold |d| to the bound.")


def _num(value, ulp: bool = False, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if ulp:
        return f"{value:.0f}" if value == int(value) else f"{value:.1f}"
    return "0" if value == 0 else f"{value:.{digits}g}"


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text)


def _text_table(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(no comparisons)"]
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    line = "  ".join(k.ljust(widths[k]) for k in keys)
    return [line, "  ".join("-" * widths[k] for k in keys)] + ["  ".join(str(r[k]).ljust(widths[k]) for k in keys) for r in rows]


def _markdown_table(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(none)"]
    keys = list(rows[0])
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return (["| " + " | ".join(cell(k) for k in keys) + " |", "|" + "---|" * len(keys)]
            + ["| " + " | ".join(cell(r[k]) for k in keys) + " |" for r in rows])
