"""The one rule for every file vitstem writes (each command, each Python API that takes a path).

- The target's directory must exist (never created implicitly): OutputError otherwise. A command that
  writes a directory of files (`import -o DIR`, `golden -o DIR`, `demo -o DIR`) creates DIR itself,
  never its parents (`output_directory`).
- An existing target must be a regular file, or a symlink to one (then the file it points to is
  replaced, the link kept). Directories ("Is a directory: PATH"), device nodes, FIFOs and sockets,
  and symlinks to them, are refused: nothing but a regular file is ever replaced.
- A command's outputs must differ from its inputs and from each other (`check_distinct`: paths
  compared after resolving symlinks, and by inode where both exist).
- Writes go to a temp file beside the target, fsync'd, renamed over it, then the directory is
  fsync'd: a reader sees the old file or the new one, never a part. A replaced file keeps its
  permission bits; a new one gets 0666 & ~umask.

Messages name the path as the user typed it, on one line whatever it contains.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import OutputError  # noqa: F401 (re-exported for callers)


def shown(path) -> str:
    """`path` for a one-line message: as typed, with control characters (newlines...) escaped."""
    text = os.fspath(path)
    return text if text.isprintable() else repr(text)[1:-1]


def target(path) -> tuple[Path, int | None]:
    """(the file to replace or create, the permission bits to keep or None); OutputError if refused."""
    path = Path(path)
    try:
        st = os.stat(path)  # follows symlinks: what a write would replace
    except FileNotFoundError:
        if path.is_symlink():  # a dangling link: the file it names would be created somewhere unexpected
            raise OutputError(f"{shown(path)}: a symlink to a missing file; refusing to write through it") from None
        parent = path.parent
        if not parent.is_dir():
            raise OutputError(f"cannot write {shown(path)}: directory {shown(parent)} does not exist")
        return path, None
    except NotADirectoryError:
        raise OutputError(f"cannot write {shown(path)}: a part of the path is not a directory") from None
    except OSError as exc:  # too long, permission denied, a loop of links...
        raise OutputError(f"{exc.strerror or exc}: {shown(path)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"Is a directory: {shown(path)}")
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{shown(path)}: not a regular file (a device, FIFO or socket); refusing to replace it")
    real = Path(os.path.realpath(path)) if path.is_symlink() else path
    return real, stat.S_IMODE(st.st_mode)


def check_distinct(outputs, inputs=()) -> None:
    """OutputError if an output is one of the inputs or two outputs are the same file."""
    seen: list[tuple[Path, str]] = []
    for path in inputs:
        if path is not None:
            seen.append((Path(path), "an input"))
    for path in outputs:
        if path is None:
            continue
        path = Path(path)
        for other, role in seen:
            if _same(path, other):
                if role == "an input":
                    raise OutputError(f"output {shown(path)} is an input of this command; refusing to overwrite it")
                raise OutputError(f"outputs {shown(other)} and {shown(path)} are the same file; "
                                  "refusing to write one over the other")
        seen.append((path, "an output"))


def output_directory(path, files=(), inputs=()) -> Path:
    """The directory a command writes `files` (names inside it) into, created if missing (its parent must
    exist: never created); OutputError if it is something else or one of those files is an input."""
    out = Path(path)
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise OutputError(f"{shown(out)}: not a directory")
    elif not out.parent.is_dir():
        raise OutputError(f"cannot write into {shown(out)}: directory {shown(out.parent)} does not exist")
    check_distinct([out / name for name in files], inputs)
    out.mkdir(exist_ok=True)
    return out


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def write_bytes(path, data: bytes) -> Path:
    """Write `data` to `path` by the rule above; returns `path` as given."""
    given = Path(path)
    real, mode = target(given)
    directory = real.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:  # name the target, not the temp file the user never asked for
        raise OutputError(f"{exc.strerror or exc}: {shown(given)}") from None
    try:
        if mode is None:
            umask = os.umask(0o077)  # reading the umask means setting it: briefly set a strict one, never 0
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, real)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"{exc.strerror or exc}: {shown(given)}") from None
        raise
    _fsync_dir(directory)
    return given


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (a no-op where directories cannot be opened, e.g. on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
