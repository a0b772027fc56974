"""Whole-file integrity of an exported model, checkable with nothing but the standard library.

A model file (.onnx or .ort) carries `vitstem.digest = "sha256:<64 hex>"` in its metadata, where
the hex digits are the SHA-256 of the file's own bytes with those 64 digits replaced by zeros.
The exporter writes the placeholder, serialises deterministically, hashes and fills the digits in
(same length, so no protobuf or flatbuffer length changes). A reader needs no parser: it finds the
stored value (exactly once) in the bytes, zeroes it and hashes. Everything the runtime relies on
is in the file, so the digest covers it: the spec, the export options, the I/O contract, the graph.

A digest detects corruption and accidental edits; it is not a signature (anyone can recompute it).

A .ort file also carries `vitstem.onnx_digest`, the digest of the .onnx it was converted from, so
a .onnx/.ort pair left mismatched (a write interrupted between the two files) is detected.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ..errors import ExportError
from ..spec.npy_file import read_capped

DIGEST_KEY = "digest"  # under the vitstem. prefix
ONNX_DIGEST_KEY = "onnx_digest"
PLACEHOLDER = "sha256:" + "0" * 64
MAX_MODEL_BYTES = 1 << 30  # 1 GiB: a stem is kilobytes to a few hundred MB; refuse larger files before reading
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seal(data: bytes) -> bytes:
    """`data` (holding PLACEHOLDER exactly once) with the placeholder replaced by the file digest."""
    marker = PLACEHOLDER.encode()
    if data.count(marker) != 1:
        raise ExportError("cannot seal the model: the digest placeholder does not occur exactly once")
    return data.replace(marker, ("sha256:" + _hex(data)).encode())


def sealed_digest(data: bytes) -> str:
    """The vitstem.digest of sealed bytes (the only digest they hold that hashes to itself)."""
    # Last first: vitstem.digest is the last metadata entry the exporter writes, near the end of the file.
    for match in reversed(list(re.finditer(rb"sha256:[0-9a-f]{64}", data))):
        value = match.group().decode()
        if data.count(match.group()) == 1 and _hex(data.replace(match.group(), PLACEHOLDER.encode())) == value[7:]:
            return value
    raise ExportError("the model bytes are not sealed (no vitstem.digest that matches)")


# The metadata entry as protobuf writes it in a .onnx file: the key, then field 2 (0x12) of 71 (0x47) bytes.
_KEYED = re.compile(rb"vitstem\.digest\x12\x47(sha256:[0-9a-f]{64})")


def verify_raw(data: bytes, source) -> str:
    """The file's vitstem.digest, verified on the raw bytes before any parser reads them; ExportError
    otherwise. In a .onnx file the entry is found by its key; in a .ort file (a flatbuffer, which
    stores strings apart from their keys) as the one sha256 value in the file that hashes to itself.
    The caller then checks that the parsed metadata names this same digest."""
    keyed = _KEYED.findall(data)
    if len(keyed) == 1:
        return verify(data, keyed[0].decode(), source)
    if len(keyed) > 1:
        raise ExportError(f"{source}: vitstem.digest occurs {len(keyed)} times in the metadata (edited or corrupt)")
    try:
        return sealed_digest(data)
    except ExportError:
        raise ExportError(f"{source}: metadata has no vitstem.digest that matches the file (exported by an older "
                          "vitstem or not by vitstem export, or changed after export); re-export it, or load with "
                          "verify=False / run --no-verify") from None


def verify(data: bytes, stored: str | None, source) -> str:
    """The stored digest if `data` matches it; ExportError naming `source` otherwise."""
    if stored is None:
        raise ExportError(f"{source}: metadata has no vitstem.digest (exported by an older vitstem, or not by "
                          "vitstem export); re-export it, or load with verify=False / run --no-verify")
    if not _DIGEST.fullmatch(stored):
        raise ExportError(f"{source}: vitstem.digest {stored[:80]!r} is not 'sha256:' and 64 hex digits")
    marker = stored.encode()
    if data.count(marker) != 1:
        raise ExportError(f"{source}: vitstem.digest does not occur exactly once in the file (edited or corrupt)")
    actual = "sha256:" + _hex(data.replace(marker, PLACEHOLDER.encode()))
    if actual != stored:
        raise ExportError(f"{source}: vitstem.digest mismatch: stored {stored}, the file hashes to {actual} "
                          "(changed after export: corrupt or edited)")
    return stored


def read_bounded(path: str | os.PathLike, limit: int = MAX_MODEL_BYTES, what: str = "model file") -> bytes:
    """The bytes of a regular file no larger than `limit`; ExportError (checked before reading) otherwise.
    Opened non-blocking and checked with fstat before any read: a FIFO would block, /dev/zero never ends."""
    import stat

    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except IsADirectoryError:
        raise ExportError(f"Is a directory: {path}") from None
    except FileNotFoundError:
        raise ExportError(f"{path}: cannot read: no such {what}") from None
    except OSError as exc:
        raise ExportError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ExportError(f"Is a directory: {path}")
        if not stat.S_ISREG(st.st_mode):
            raise ExportError(f"{path}: not a regular file (a device, FIFO or socket)")
        if st.st_size > limit:
            raise ExportError(f"{path}: {st.st_size} bytes, over the {limit}-byte limit for a {what}")
        with open(fd, "rb", closefd=False) as f:
            data = read_capped(f, limit)
    except OSError as exc:
        raise ExportError(f"{path}: cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ExportError(f"{path}: over the {limit}-byte limit for a {what}")
    return data


def check_pair(ort_path: Path, onnx_digest: str) -> None:
    """ExportError unless the .onnx beside `ort_path` (if any) is the one the .ort was converted from."""
    onnx_path = Path(ort_path).with_suffix(".onnx")
    if not onnx_path.is_file():
        return
    data = read_bounded(onnx_path)
    if onnx_digest.encode() not in data:
        raise ExportError(f"{ort_path}: converted from another {onnx_path.name} than the one beside it "
                          "(a mismatched .onnx/.ort pair: re-export both)")
    verify(data, onnx_digest, onnx_path)
