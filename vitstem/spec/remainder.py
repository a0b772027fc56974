"""`input.remainder`: what happens to the pixels past the last whole patch.

A strided conv (timm's and transformers' patch projection) silently ignores the trailing
H mod Ph rows and W mod Pw columns: SigLIP so400m/14 at 384 px uses 27 x 14 = 378 of them.
`refuse` (the default, and the only behaviour of spec v1) rejects such sizes; `drop` crops the
image to the whole patches, exactly as the strided conv does. One rule for the spec's own
image_size, the run-time input checks of every engine and the export options.
"""

from __future__ import annotations

from ..errors import InputError

REMAINDER_CHOICES = ("refuse", "drop")
_LINES = ("rows", "columns")


def peers_note(size: int, patch: int, axis: int) -> str:
    """What the peers do with the pixels of one axis that no whole patch covers, and the field that allows it."""
    extra = size % patch
    return (f"timm and transformers silently drop the trailing {extra} pixel {_LINES[axis]} (a strided conv "
            f"ignores them); set input.remainder: drop to do the same")


def size_problems(image: tuple[int, int], patch: tuple[int, int], remainder: str, show=str) -> list[tuple[str, str]]:
    """(field path, reason) for a spec's image_size against its patch_size under `remainder`."""
    problems = []
    for i in (0, 1):
        if remainder == "drop":
            if image[i] < patch[i]:
                problems.append((f"image_size[{i}]", f"{show(image[i])} is smaller than patch_size[{i}] = "
                                 f"{show(patch[i])}: not one whole patch (input.remainder: drop)"))
        elif image[i] % patch[i]:
            problems.append((f"image_size[{i}]", f"{show(image[i])} is not divisible by patch_size[{i}] = "
                             f"{show(patch[i])}; {peers_note(image[i], patch[i], i)}"))
    return problems


def whole_patches(h: int, w: int, patch: tuple[int, int], remainder: str) -> tuple[int, int]:
    """(gh, gw) whole patches of an h x w image; InputError naming the size, the patch and the rule otherwise."""
    ph, pw = patch
    if remainder == "drop":
        if h < ph or w < pw:
            raise InputError(f"image size {h}x{w} is smaller than the patch size {ph}x{pw} (no whole patch)")
    elif h <= 0 or w <= 0 or h % ph or w % pw:
        note = next((peers_note(s, p, i) for i, (s, p) in enumerate(((h, ph), (w, pw))) if s > 0 and s % p), None)
        raise InputError(f"image size {h}x{w} is not a positive multiple of the patch size {ph}x{pw}"
                         + (f"; {note}" if note else ""))
    return h // ph, w // pw


def cropped_size(h: int, w: int, patch: tuple[int, int]) -> tuple[int, int]:
    """The pixels a strided conv reads: (gh * Ph, gw * Pw)."""
    return h // patch[0] * patch[0], w // patch[1] * patch[1]
