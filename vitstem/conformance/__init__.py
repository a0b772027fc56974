"""Conformance: every engine on one spec and one weight file, compared cell by cell, one verdict.

`run(spec, weights) -> Report`; the CLI is `vitstem conform`, `vitstem golden` and `vitstem demo`.
"""

from .engines import ENGINES
from .matrix import Cell, cells
from .report import Report
from .runner import run
from .verdicts import Comparison, compare

__all__ = ["ENGINES", "Cell", "Comparison", "Report", "cells", "compare", "run"]
