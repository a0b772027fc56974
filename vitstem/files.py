"""Atomic file writes: a reader never sees a partial file, even if the writer is killed midway.

Kept for its callers; the rule itself (what may be replaced, permissions, fsync) is vitstem.outputs."""

from __future__ import annotations

import os
from pathlib import Path

from .outputs import write_bytes


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` by vitstem.outputs' rule; returns `path` as a Path."""
    return Path(write_bytes(path, data))
