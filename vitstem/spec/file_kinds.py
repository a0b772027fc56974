"""What a file the user gave really is, when it is not what was expected: one line saying what to run instead.

A new user's first tries hand vitstem a whole timm or transformers checkpoint where canonical
weights are expected, a PNG where a .npy batch is expected, or a PyTorch pickle where safetensors
are expected. These functions recognise such files from their names or first bytes (never by
unpickling anything) and word the fix as a command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

# Leading bytes of the files users pass by mistake.
MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"RIFF", "a RIFF (WebP?) image"),
    (b"PK\x03\x04", "a zip archive (a torch.save file or an .npz?)"),
    (b"\x80", "a Python pickle"),
)
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pkl")
CONVERT = ("python -c \"import torch, safetensors.torch as s; "
           "s.save_file(torch.load('{path}', weights_only=True), 'model.safetensors')\"")


def first_bytes(path: str | os.PathLike, count: int = 8) -> bytes:
    """The first `count` bytes of a regular file; b"" for anything else (a FIFO would block)."""
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return b""
        with open(path, "rb") as f:
            return f.read(count)
    except OSError:
        return b""


def non_regular_kind(path: str | os.PathLike) -> str | None:
    """'a directory', 'a FIFO', 'a character device', ... for a path that exists but is not a regular file
    (reading one would fail, block or never end); None for a regular file or nothing there."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((what for is_kind, what in kinds if is_kind(mode)), "not a regular file")


def sniff(path: str | os.PathLike) -> str | None:
    """'a PNG image', 'a Python pickle', ... for a file whose first bytes say so; None otherwise."""
    head = first_bytes(path)
    return next((what for magic, what in MAGIC if head.startswith(magic)), None)


def pickle_hint(path: str | os.PathLike) -> str | None:
    """For a PyTorch checkpoint (.pth/.bin/... or a pickle or torch.save zip): what it is and how to
    turn it into safetensors, as a clause to follow "not a readable safetensors file: "."""
    path = Path(path)
    head = first_bytes(path)
    if path.suffix.lower() in PICKLE_SUFFIXES or head.startswith(b"\x80") or (
            head.startswith(b"PK\x03\x04") and path.suffix.lower() != ".npz"):
        return (f"it looks like a PyTorch checkpoint (torch.save pickle or zip), which vitstem never unpickles; "
                f"convert it once with torch: {CONVERT.format(path=path)} (take ['model'] or ['state_dict'] first "
                "if the file wraps the state dict), then `vitstem import model.safetensors --format timm|hf -o DIR`")
    return None


def peer_format(names: Iterable[str]) -> str | None:
    """'timm' or 'hf' when tensor names are a peer library's state dict rather than canonical weights."""
    names = list(names)
    if any(n.endswith("patch_embed.proj.weight") for n in names):
        return "timm"
    if any(n.endswith("patch_embeddings.projection.weight") for n in names):
        return "hf"
    return None


def peer_checkpoint_message(path: str | os.PathLike, names: Iterable[str]) -> str | None:
    """One line telling the user to run `vitstem import` on a peer checkpoint; None for other files."""
    names = list(names)
    fmt = peer_format(names)
    if fmt is None:
        return None
    library = {"timm": "timm", "hf": "transformers"}[fmt]
    return (f"{path} is a {library} checkpoint ({len(names)} tensors), not canonical vitstem weights; convert it "
            f"first: `vitstem import {path} --format {fmt} -o DIR`, then use DIR/spec.yaml with "
            "--weights DIR/weights.safetensors")
