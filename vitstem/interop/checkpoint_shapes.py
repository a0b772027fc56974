"""What a state dict's keys and shapes say about the stem, without the peer library.

- D, C, Ph, Pw from the patch kernel (OIHW; HWIO for big_vision); the bias if it is there.
- prefix tokens from the tensors present: cls, dist (DeiT), registers (their count from reg_token).
- the table grid: `grid` if given; else the image grid (from `image_size` or the config) when the
  table's row count fits it; else square: rows - prefix a perfect square (table covers the prefix,
  timm's default), else rows a perfect square (timm no_embed_class / big_vision). When both are
  squares (only with 3+ prefix tokens and tiny grids) the covering reading wins; pass
  `no_embed_class=True` or `grid` to say otherwise.
- norms (timm `norm_pre.*`, `patch_embed.norm.*`): a LayerNorm when the checkpoint has its bias,
  else an RmsNorm (weight only).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import WeightsError
from .assemble import square_side


def pair(value) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    values = [int(v) for v in value]
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def table_grid(rows: int, prefix: int, patch: tuple[int, int], *, grid=None, image_size=None,
               no_embed_class: bool | None = None) -> tuple[tuple[int, int], bool]:
    """(table grid, covers_prefix) for a table of `rows` rows, by the rules in the module docstring."""
    nec = None if prefix == 0 else no_embed_class

    def readings(n: int) -> list[bool]:
        """The covers_prefix values under which the table holds n patch rows, preferred first."""
        options = [prefix > 0] if rows == prefix + n and nec is not True else []
        return options + ([False] if prefix and rows == n and nec is not False else [])

    if grid is not None:
        options = readings(grid[0] * grid[1])
        if not options:
            raise WeightsError(f"the position table has {rows} rows; a {grid[0]}x{grid[1]} grid with "
                               f"{prefix} prefix tokens needs {prefix + grid[0] * grid[1]}"
                               + (f" or {grid[0] * grid[1]}" if prefix else ""))
        return tuple(grid), options[0]
    if image_size is not None:
        image_grid = (image_size[0] // patch[0], image_size[1] // patch[1])
        options = readings(image_grid[0] * image_grid[1])
        if options:
            return image_grid, options[0]
    for n in (rows - prefix, rows):
        side = square_side(n)
        if side is not None and readings(n):
            return (side, side), readings(n)[0]
    raise WeightsError(f"the position table has {rows} rows with {prefix} prefix tokens and no square grid "
                       "fits; give the grid (--grid GH GW) or the image size")


class Renamed(Mapping):
    """`tensors` under other names (`names`: new -> old); a value is looked up in `tensors` only when asked
    for, so a mapping that reads tensors on demand (vitstem.spec.safetensors_file) stays unread."""

    def __init__(self, tensors: Mapping, names: dict[str, str]):
        self._tensors, self._names = tensors, names

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name) -> bool:
        return name in self._names

    def __getitem__(self, name: str):
        return self._tensors[self._names[name]]


def stripped(tensors: Mapping, prefix: str) -> Renamed:
    """The tensors whose names start with `prefix`, under their names without it (nothing read)."""
    return Renamed(tensors, {k[len(prefix):]: k for k in tensors if k.startswith(prefix)})


def find_prefix(tensors: Mapping, suffix: str, fmt: str) -> str:
    hits = [k[: -len(suffix)] for k in tensors if k.endswith(suffix)]
    if len(hits) != 1:
        found = "none" if not hits else ", ".join(h + suffix for h in hits)
        raise WeightsError(f"a {fmt} state dict needs exactly one '*{suffix}' tensor; found {found}")
    return hits[0]


def norm_facts(w: Mapping[str, np.ndarray], prefix: str, eps: float) -> tuple | None:
    """(kind, weight, bias, eps) of the norm PREFIX.*: LayerNorm with a bias, RmsNorm without; None if absent."""
    if f"{prefix}.weight" not in w:
        return None
    bias = w.get(f"{prefix}.bias")
    return ("layer_norm" if bias is not None else "rms_norm"), w[f"{prefix}.weight"], bias, eps
