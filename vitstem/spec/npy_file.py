"""Reading .npy arrays (a file, or a member of an .npz) with bounded memory, never unpickling.

The header is read first: its dtype (object arrays need pickle: refused), its shape, and that the
bytes it declares are the bytes there are (a file or zip member declaring (10**12,) is refused
before anything is allocated); then exactly those bytes are read into the array, at most
MAX_ARRAY_BYTES per .npy file or per .npz file.
"""

from __future__ import annotations

import os
import stat
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

MAX_ARRAY_BYTES = 1 << 30  # array data read from one .npy or one .npz file (1 GiB)
MAX_NPZ_MEMBERS = 100_000
_CHUNK = 1 << 22


class NotNpy(ValueError):
    """Not a readable .npy array; the message says why."""


def read_npy(f: BinaryIO, size: int, budget: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """The array in the stream `f` of `size` bytes (a .npy file or .npz member), checked before reading."""
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(f)
        else:
            raise NotNpy(f".npy format version {version[0]}.{version[1]} is not read (1.0 and 2.0 are)")
    except NotNpy:
        raise
    except (ValueError, EOFError, SyntaxError) as exc:
        raise NotNpy(f"no valid NUMPY header ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if dtype.hasobject:
        raise NotNpy("it holds Python objects (an object array, stored as a pickle), which vitstem never loads; "
                     "save a uint8 or float32 array")
    count = int(np.prod(shape, dtype=object))
    nbytes = count * dtype.itemsize
    if int(np.prod([max(d, 1) for d in shape], dtype=object)) * dtype.itemsize >= 2**63:  # as NumPy's own limit
        raise NotNpy(f"shape {shape} is not a shape an array can have")
    header = f.tell() if f.seekable() else None
    if header is not None and nbytes != size - header:
        raise NotNpy(f"its header declares shape {shape} of {dtype} ({nbytes} bytes) but {size - header} bytes follow "
                     "(truncated, or a forged shape)")
    if nbytes > budget:
        raise NotNpy(f"shape {shape} of {dtype} is {nbytes} bytes, over the {MAX_ARRAY_BYTES}-byte limit for arrays "
                     "read from one file")
    array = np.empty(count, dtype)
    done = read_into(f, array)
    if done < nbytes:
        raise NotNpy(f"its header declares shape {shape} of {dtype} ({nbytes} bytes); only {done} bytes follow")
    if f.read(1):
        raise NotNpy(f"bytes follow the {nbytes} bytes of shape {shape} (a forged header?)")
    return array.reshape(shape, order="F" if fortran else "C")


def read_into(f: BinaryIO, array: np.ndarray) -> int:
    """Fill the contiguous `array` with the next bytes of `f`, in chunks; the count read (less at the end of the file)."""
    view, done = memoryview(array.reshape(-1).view(np.uint8)), 0
    while done < view.nbytes:
        got = f.readinto(view[done:done + _CHUNK])
        if not got:
            break
        done += got
    return done


def open_regular(path: str | os.PathLike, buffering: int = -1) -> BinaryIO:
    """`path` opened for reading; OSError (FileNotFoundError, IsADirectoryError, ...) otherwise, also for
    a device, FIFO or socket (checked before opening: a FIFO would block, /dev/zero never ends).
    `buffering=0`: every read asks the file itself (no copy of it kept in a buffer)."""
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(21, "Is a directory", str(path))
    if not stat.S_ISREG(mode):
        raise OSError("not a regular file (a device, FIFO or socket)")
    return open(path, "rb", buffering=buffering)


def read_capped(f: BinaryIO, limit: int) -> bytes:
    """At most `limit` + 1 bytes of an open file (more than `limit` means: too big), read into a buffer of the
    file's size rather than of the cap; past fstat's size only for files that say less than they hold (/proc)."""
    size = os.fstat(f.fileno()).st_size
    data = f.read(min(size, limit) + 1)
    if len(data) > size:
        data += f.read(limit + 1 - len(data))
    return data


def load_npy_file(path: str | os.PathLike) -> np.ndarray:
    """The array in a .npy file; NotNpy or OSError otherwise."""
    with open_regular(path) as f:
        return read_npy(f, os.fstat(f.fileno()).st_size)


class NpzArrays(Mapping):
    """The arrays of an .npz file by name (without '.npy'), each read when first asked for.

    Names come from the zip directory; a member is checked from the zip's declared sizes and its
    .npy header before it is read, and all members read from one file share MAX_ARRAY_BYTES.
    `error(message)` builds the exception raised for a file or member that is not readable.
    """

    def __init__(self, path: str | os.PathLike, error: Callable[[str], Exception]):
        self.path, self._error, self._cache = Path(path), error, {}
        try:
            with open_regular(self.path) as f, zipfile.ZipFile(f) as z:
                infos = z.infolist()
        except (OSError, NotNpy, zipfile.BadZipFile, EOFError, ValueError) as exc:
            from .file_kinds import sniff

            what = sniff(self.path)
            reason = f"it is {what}, which vitstem never loads" if what and "zip" not in what else \
                getattr(exc, "strerror", None) or exc
            raise error(f"{self.path} is not a readable .npz file: {reason}") from None
        if len(infos) > MAX_NPZ_MEMBERS:
            raise error(f"{self.path}: {len(infos)} members, over the limit of {MAX_NPZ_MEMBERS}")
        self._infos = {i.filename[:-4] if i.filename.endswith(".npy") else i.filename: i for i in infos}
        self._budget = MAX_ARRAY_BYTES

    def __iter__(self):
        return iter(self._infos)

    def __len__(self) -> int:
        return len(self._infos)

    def __contains__(self, name) -> bool:  # from the directory: a membership test reads nothing
        return name in self._infos

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._cache:
            return self._cache[name]
        info = self._infos[name]
        where = f"{self.path}: member {info.filename}"
        if not info.filename.endswith(".npy"):
            raise self._error(f"{where} is not a .npy array")
        if info.file_size > self._budget:
            raise self._error(f"{where} declares {info.file_size} bytes uncompressed, over the {MAX_ARRAY_BYTES}-byte "
                              "limit for arrays read from one file (a zip bomb, or not a stem checkpoint)")
        try:
            with open_regular(self.path) as f, zipfile.ZipFile(f) as z, z.open(info) as member:
                array = read_npy(_Seekable(member), info.file_size, self._budget)
        except NotNpy as exc:
            raise self._error(f"{where}: {exc}") from None
        except (OSError, zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, zlib.error) as exc:
            raise self._error(f"{where} cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        self._budget -= array.nbytes
        self._cache[name] = array
        return array


class _Seekable:
    """A zip member stream that counts what was read, so read_npy can compare it with the declared size."""

    def __init__(self, stream):
        self._stream, self._position = stream, 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._position += len(data)
        return data

    def readinto(self, buffer) -> int:
        got = self._stream.readinto(buffer)
        self._position += got
        return got

    def tell(self) -> int:
        return self._position

    def seekable(self) -> bool:
        return True
