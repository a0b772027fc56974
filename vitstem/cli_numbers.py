"""argparse types for the numeric options every command shares: refused by the parser with one line
(exit 2) instead of reaching NumPy or ONNX Runtime as a negative seed, batch or thread count."""

from __future__ import annotations

import argparse


def _integer(text: str, lowest: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < lowest:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _integer(text, 0, "a non-negative integer")
