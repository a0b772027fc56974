"""Reading a safetensors file with bounded memory: the header is read and checked first (its length,
JSON, every tensor's dtype, shape and byte range against the file's size), then tensors are views
of a read-only memory map, so only the bytes a caller touches are read, and only what it copies is
allocated.

Limits: a header of at most MAX_HEADER_BYTES (safetensors' own limit); the file may be any size
(a whole peer checkpoint: only its stem tensors are ever touched). The rules are safetensors'
own: tensors tile the data section in order, with no gap or overlap.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from .npy_file import open_regular

MAX_HEADER_BYTES = 100_000_000
# safetensors dtype -> the NumPy dtype holding it; the others (BF16, F8_*, ...) NumPy cannot hold.
NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "U64": "<u8", "I32": "<i4", "U32": "<u4",
                "I16": "<i2", "U16": "<u2", "I8": "i1", "U8": "u1", "BOOL": "?", "C64": "<c8"}
OTHER_DTYPES = {"BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "F4": 1, "F6_E2M3": 1, "F6_E3M2": 1, "C128": 16}


class NotSafetensors(ValueError):
    """The bytes are not a safetensors file (the reason is the message)."""


def _int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NotSafetensors(f"{what} is {value!r}, not a non-negative integer")
    return value


def _entries(header, data_size: int) -> dict[str, tuple[str, tuple[int, ...], int]]:
    """name -> (NumPy dtype, shape, offset in the data section), checked against `data_size`."""
    if not isinstance(header, dict):
        raise NotSafetensors(f"the header is a JSON {type(header).__name__}, not an object")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise NotSafetensors("__metadata__ must map names to strings")
    spans, entries = [], {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise NotSafetensors(f"tensor {name!r}: an entry needs exactly dtype, shape and data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(shape, list) or not isinstance(offsets, list) or len(offsets) != 2:
            raise NotSafetensors(f"tensor {name!r}: shape must be a list and data_offsets [begin, end]")
        shape = tuple(_int(s, f"tensor {name!r}: a dimension") for s in shape)
        begin, end = (_int(o, f"tensor {name!r}: an offset") for o in offsets)
        if dtype in NUMPY_DTYPES:
            itemsize = np.dtype(NUMPY_DTYPES[dtype]).itemsize
        elif dtype in OTHER_DTYPES:
            itemsize = OTHER_DTYPES[dtype]
        else:
            raise NotSafetensors(f"tensor {name!r}: unknown dtype {dtype!r}")
        count, extent = 1, 1
        for s in shape:
            count, extent = count * s, extent * max(s, 1)
        if count * itemsize > data_size:  # also every absurd declared shape: checked before any allocation
            raise NotSafetensors(f"tensor {name!r}: shape {list(shape)} of {dtype} needs {count * itemsize} bytes; "
                                 f"the file holds {data_size} (overflow, or a truncated file)")
        if extent * itemsize >= 2**63:  # a zero dimension beside huge ones: NumPy cannot describe it
            raise NotSafetensors(f"tensor {name!r}: shape {list(shape)} is not a shape an array can have")
        if end - begin != count * itemsize or end < begin:
            raise NotSafetensors(f"tensor {name!r}: data_offsets {[begin, end]} do not hold shape {list(shape)} of {dtype}")
        spans.append((begin, end, name))
        entries[name] = (dtype, shape, begin)
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise NotSafetensors(f"tensor {name!r} starts at byte {begin}, not {position}: a gap or an overlap")
        position = end
    if position != data_size:
        raise NotSafetensors(f"the tensors hold {position} bytes, the data section {data_size} (truncated or padded)")
    return entries


class SafetensorsFile:
    """A checked safetensors file: `metadata`, `declared` (name -> (dtype name, shape)) and `tensors()`."""

    def __init__(self, path: str | os.PathLike):
        from .strict_text import loads_json

        self.path = Path(path)
        try:
            with open_regular(self.path) as f:
                st = os.fstat(f.fileno())
                head = f.read(8)
                if len(head) < 8:
                    raise NotSafetensors("truncated or not a safetensors file (under 8 bytes)")
                size = int.from_bytes(head, "little")
                if size > MAX_HEADER_BYTES or size > st.st_size - 8:
                    raise NotSafetensors(f"truncated or not a safetensors file (a header of {size} bytes, in a file "
                                         f"of {st.st_size}; the limit is {MAX_HEADER_BYTES})")
                header = loads_json(f.read(size).decode("utf-8"))
                self._start = 8 + size
                self._entries = _entries(header, st.st_size - self._start)
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise WeightsError(f"cannot read weights file {self.path}: {exc.strerror or exc}") from None
        except (NotSafetensors, ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise WeightsError(f"{self.path} is not a readable safetensors file: {_reason(self.path, exc)}") from None
        self.metadata: dict[str, str] = dict(header.get("__metadata__", {}))
        self.declared = {name: (dtype, shape) for name, (dtype, shape, _) in self._entries.items()}

    def tensors(self, names=None) -> dict[str, np.ndarray]:
        """Read-only arrays (views of the map: nothing is copied) of `names` (default: all);
        WeightsError naming a tensor whose dtype NumPy cannot hold."""
        out = {}
        for name in self._entries if names is None else names:
            dtype, shape, begin = self._entries[name]
            if dtype not in NUMPY_DTYPES:
                raise WeightsError(f"{self.path} is not a readable safetensors file: tensor {name!r} has dtype {dtype}, "
                                   "which NumPy cannot hold (vitstem weights are F32)")
            count = int(np.prod(shape, dtype=object))
            if count == 0:
                out[name] = np.zeros(shape, NUMPY_DTYPES[dtype])
            else:
                out[name] = np.frombuffer(self._map, NUMPY_DTYPES[dtype], count, self._start + begin).reshape(shape)
        return out


def _reason(path: Path, exc: Exception) -> str:
    from .file_kinds import pickle_hint

    return pickle_hint(path) or str(exc).splitlines()[0]
