"""Execution providers: ask for one this onnxruntime build lacks and get an error, not a silent CPU run."""

from __future__ import annotations

from ..errors import ProviderError

DEFAULT = ["CPUExecutionProvider"]


def _name(entry) -> str:
    return entry[0] if isinstance(entry, tuple) else entry


def check_available(providers, available: list[str]) -> list:
    """`providers` (names, or (name, options) pairs, in priority order) if this build has them all."""
    if providers is None:
        return list(DEFAULT)
    providers = [providers] if isinstance(providers, (str, tuple)) else list(providers)
    if not providers or not all(isinstance(_name(p), str) for p in providers):
        raise ProviderError(f"providers {providers!r}: give one or more execution provider names")
    lacking = [_name(p) for p in providers if _name(p) not in available]
    if lacking:
        raise ProviderError(f"execution provider {', '.join(lacking)} is not in this onnxruntime build "
                            f"(it has {', '.join(available)}); onnxruntime would silently run on CPU instead")
    return providers


def check_started(providers, started: list[str], source: str) -> None:
    """ProviderError if the session dropped a provider it was given (e.g. its library failed to load)."""
    dropped = [_name(p) for p in providers if _name(p) not in started]
    if dropped:
        raise ProviderError(f"{source}: execution provider {', '.join(dropped)} is in this onnxruntime build but "
                            f"did not start (the session runs on {', '.join(started)}); check its libraries")
