"""Which frameworks are installed, and importing them in the one safe order.

Frameworks are imported on first use, torch always before tensorflow (importing torchvision after
tensorflow segfaults).
"""

from __future__ import annotations

import importlib
import importlib.util
import os

ORDER = ("torch", "torchvision", "tensorflow")


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def unavailable(requires, modules) -> str | None:
    """Why an engine needing the frameworks `requires` and the vitstem `modules` ("module:attribute")
    cannot run here, or None."""
    for module in requires:
        if not installed(module):
            return f"{module} is not installed"
    for entry in modules:
        module, _, attr = entry.partition(":")
        try:
            found = hasattr(importlib.import_module(module), attr)
        except ImportError as exc:
            return f"{module} is not available yet ({exc})"
        if not found:
            return f"{module}.{attr} is not available yet"
    return None


def import_frameworks(names) -> None:
    """Import the frameworks the engines `names` need, torch (and torchvision) before tensorflow."""
    from .base import ENGINES

    needed = {m for n in names if n in ENGINES for m in ENGINES[n].requires}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for module in ORDER:
        if module in needed or (module == "torchvision" and "torch" in needed and "tensorflow" in needed):
            if installed(module):
                importlib.import_module(module)
