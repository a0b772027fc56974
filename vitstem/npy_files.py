""".npy files the user gives and gets: read without unpickling, written atomically.

Shared by every command that takes or writes a batch (`forward`, `run`, `export --calibration`, ...).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .errors import InputError


def load_npy(path: str) -> np.ndarray:
    """An array from a .npy file, never unpickling; InputError if it is not one (an image file, a
    pickle, an object array: each named as what it is)."""
    from .spec.file_kinds import first_bytes, sniff

    head = first_bytes(path, 6)
    if head and head != b"\x93NUMPY":
        what = sniff(path)
        hint = ("image files go to `vitstem run MODEL IMAGE...`; " if what and what.endswith("image") else "")
        raise InputError(f"{path} is not a readable .npy array: {f'it is {what}' if what else 'no NUMPY header'}; "
                         f"{hint}save a batch with np.save('batch.npy', images)")
    from .spec.npy_file import NotNpy, load_npy_file

    try:
        return load_npy_file(path)
    except NotNpy as exc:
        raise InputError(f"{path} is not a readable .npy array: {exc}") from None
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise InputError(f"{path} is not a readable .npy array: {exc.strerror or exc}") from None


def save_npy(array: np.ndarray, path: str) -> Path:
    """Write a .npy file atomically."""
    from .files import atomic_write_bytes

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return atomic_write_bytes(path, buffer.getvalue())
