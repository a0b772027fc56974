"""`vitstem bench`: runs the benchmark harness of a source checkout (benchmarks/harness/, development
tooling that is not installed with the package); without it the command says so in one line."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from .errors import VitstemError

HARNESS = Path(__file__).resolve().parents[1] / "benchmarks" / "harness"
MISSING = ("vitstem bench needs the benchmark harness of a source checkout (benchmarks/harness/), which this "
           "installation does not have: run it from a clone of the repository")


def load_harness():
    """The checkout's `harness` package (imported once, as `harness`), or None when it is not there."""
    if "harness" in sys.modules:
        return sys.modules["harness"]
    init = HARNESS / "__init__.py"
    if not init.is_file():
        return None
    spec = importlib.util.spec_from_file_location("harness", init, submodule_search_locations=[str(HARNESS)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["harness"] = module
    spec.loader.exec_module(module)
    return module


def _missing(args) -> int:
    raise VitstemError(MISSING)


def register(subparsers) -> None:
    if load_harness() is not None:
        from harness.cli import register as register_harness

        return register_harness(subparsers)
    p = subparsers.add_parser("bench", help="time the stem's engines (source checkout only)",
                              description=MISSING, prefix_chars="\0")
    p.add_argument("args", nargs="*", help="the harness's arguments")
    p.set_defaults(run=_missing)
