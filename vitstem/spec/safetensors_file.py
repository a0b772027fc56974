"""Reading a safetensors file with bounded memory: the header is read and checked first (its length,
JSON, every tensor's dtype, shape and byte range against the file's size), then each tensor a
caller asks for is read, when asked, into an array of its declared size: memory is bounded by the
tensors asked for, whatever the file's size.

Reads are positional reads of the file opened once (no memory map): a file truncated by another
process after it was opened gives a WeightsError naming the file and the tensor, where reading a
memory map past the file's new end would kill the process (SIGBUS).

Limits: a header of at most MAX_HEADER_BYTES (safetensors' own limit); the file may be any size
(a whole peer checkpoint: only its stem tensors are ever read). The header's checks: safetensors_header.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from .npy_file import open_regular, read_into
from .safetensors_header import NUMPY_DTYPES, NotSafetensors, entries

MAX_HEADER_BYTES = 100_000_000


@contextmanager
def _collector_paused():
    """No cyclic garbage collection meanwhile: a header's hundreds of thousands of small dicts and lists
    would trigger it again and again (half the parse time at 200 000 tensors); none of them is a cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class SafetensorsFile:
    """A checked safetensors file, open until `close()` (or the end of a `with` block): `metadata`,
    `declared` (name -> (dtype name, shape)), `array(name)` and `tensors()`.

    widen_bf16: read BF16 tensors as float32 (exact: bfloat16 is float32's upper half), as an import
    does; otherwise they are named as a dtype NumPy cannot hold."""

    def __init__(self, path: str | os.PathLike, *, widen_bf16: bool = False):
        from .strict_text import loads_json

        self.path, self.widen_bf16 = Path(path), widen_bf16
        try:
            self._file = open_regular(self.path, buffering=0)  # a tensor's bytes are the file's now
        except OSError as exc:
            raise WeightsError(f"cannot read weights file {self.path}: {exc.strerror or exc}") from None
        try:
            f = self._file
            st = os.fstat(f.fileno())
            head = f.read(8)
            if len(head) < 8:
                raise NotSafetensors("truncated or not a safetensors file (under 8 bytes)")
            size = int.from_bytes(head, "little")
            if size > MAX_HEADER_BYTES or size > st.st_size - 8:
                raise NotSafetensors(f"truncated or not a safetensors file (a header of {size} bytes, in a file "
                                     f"of {st.st_size}; the limit is {MAX_HEADER_BYTES})")
            text = f.read(size).decode("utf-8")
            self._start = 8 + size
            with _collector_paused():
                header = loads_json(text)
                self.declared, self._begins = entries(header, st.st_size - self._start)
                self.metadata: dict[str, str] = dict(header.get("__metadata__", {}))
                del header  # freed by reference counting while the collector still sleeps
        except OSError as exc:
            self.close()
            raise WeightsError(f"cannot read weights file {self.path}: {exc.strerror or exc}") from None
        except (NotSafetensors, ValueError, UnicodeDecodeError, RecursionError) as exc:
            self.close()
            raise WeightsError(f"{self.path} is not a readable safetensors file: {_reason(self.path, exc)}") from None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "SafetensorsFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def array(self, name: str) -> np.ndarray:
        """Tensor `name` read into a new array of its declared size (KeyError for a name not declared);
        WeightsError naming a dtype NumPy cannot hold, or a file that no longer holds the tensor's bytes."""
        (dtype, shape), begin = self.declared[name], self._begins[name]
        if dtype == "BF16" and self.widen_bf16:
            halves = self._read(name, np.dtype("<u2"), shape, begin)
            return (halves.astype(np.uint32) << 16).view(np.float32)  # bfloat16 bits are float32's high half
        if dtype not in NUMPY_DTYPES:
            raise WeightsError(f"{self.path} is not a readable safetensors file: tensor {name!r} has dtype {dtype}, "
                               "which NumPy cannot hold (vitstem weights are F32)")
        return self._read(name, np.dtype(NUMPY_DTYPES[dtype]), shape, begin)

    def _read(self, name: str, dtype: np.dtype, shape: tuple[int, ...], begin: int) -> np.ndarray:
        out, where = np.empty(shape, dtype), self._start + begin
        try:
            self._file.seek(where)
            done = read_into(self._file, out)
            now = os.fstat(self._file.fileno()).st_size
        except (OSError, ValueError) as exc:  # ValueError: the file was closed
            raise WeightsError(f"{self.path}: tensor {name!r} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
        if done != out.nbytes:
            raise WeightsError(f"{self.path}: tensor {name!r} (bytes {where} to {where + out.nbytes}) cannot be read: "
                               f"the file now has {now} bytes (truncated since it was opened)")
        return out

    def tensors(self) -> "SafetensorsTensors":
        """All tensors by name, each read when first looked up (see SafetensorsTensors)."""
        return SafetensorsTensors(self)


class SafetensorsTensors(Mapping):
    """A safetensors file's tensors by name, each read (into read-only memory of its declared size) when
    first looked up and kept: iterating names, `in` and `len` read nothing; `.items()` reads every one."""

    def __init__(self, file: SafetensorsFile):
        self.file, self._read = file, {}

    def __iter__(self):
        return iter(self.file.declared)

    def __len__(self) -> int:
        return len(self.file.declared)

    def __contains__(self, name) -> bool:
        return name in self.file.declared

    def close(self) -> None:
        self.file.close()

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._read:
            array = self.file.array(name)
            array.flags.writeable = False  # shared by every lookup: copy what you change
            self._read[name] = array
        return self._read[name]


def _reason(path: Path, exc: Exception) -> str:
    from .file_kinds import pickle_hint

    return pickle_hint(path) or str(exc).splitlines()[0]
