"""big_vision / google-research vision_transformer parameters -> (spec, weights).

Both are flax models taking NHWC images: `embedding` is an HWIO conv with kernel = stride =
patch. Where the position table lives says how it covers the class token:
- big_vision `models/vit.py`: top-level `pos_embedding` (1, N, D), added BEFORE `cls` is
  prepended (covers_prefix false); no table at all with posemb="sincos2d" (fixed big_vision table).
- vision_transformer `models_vit.py`: `Transformer/posembed_input/pos_embedding` (1, N + 1, D),
  added after `cls` is prepended (covers_prefix true). Older big_vision checkpoints kept it in
  `Transformer/pos_embedding`, with the class slot when its row count is a square plus one.
Neither has a norm before the encoder. The input pipeline's normalisation is not in the
parameters: pass `preprocess` (e.g. vision_transformer's (x - 127.5) / 127.5 is
{"scale": 1/127.5, "mean": [1, 1, 1], "std": [1, 1, 1]}).
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from ..errors import SpecError, WeightsError
from ..spec import Spec
from ..spec.safetensors_file import SafetensorsTensors
from ..spec.vocabulary import Layout
from .assemble import as_float32, assemble, checked_preprocess, square_side
from .checkpoint_shapes import stripped

TABLE_KEYS = ("pos_embedding", "Transformer/posembed_input/pos_embedding", "Transformer/pos_embedding")


def flatten_params(tree: Mapping, prefix: str = "") -> Mapping[str, object]:
    """Nested dicts (flax params) -> {"a/b/c": array}; a leading "params/" level is dropped. A safetensors
    file's tensors are flat already: renamed, still unread (only the stem's are read)."""
    if isinstance(tree, SafetensorsTensors):
        names = list(tree)
        return stripped(tree, "params/" if names and all(k.startswith("params/") for k in names) else "")
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, path + "/"))
        else:
            flat[path] = value
    if not prefix and flat and all(k.startswith("params/") for k in flat):
        flat = {k[len("params/"):]: v for k, v in flat.items()}
    return flat


def read_npz(path: str | os.PathLike) -> Mapping[str, np.ndarray]:
    """The arrays of an .npz checkpoint by name, each read (bounded, never unpickled) when first used:
    the stem's few tensors are read, not the whole model (see vitstem.spec.npy_file)."""
    from ..spec.npy_file import NpzArrays

    return NpzArrays(path, WeightsError)


def _table(flat: Mapping, has_cls: bool, image_grid, posemb: str):
    """(table or None, covers_prefix, grid) from wherever the checkpoint keeps its table."""
    found = [k for k in TABLE_KEYS if k in flat]
    if posemb == "sincos2d" or (posemb == "auto" and not found):
        return None, False, image_grid
    if posemb == "none":
        return None, False, image_grid
    if not found:
        raise SpecError(f"posemb={posemb!r} but the parameters hold no position table (looked for {', '.join(TABLE_KEYS)})")
    if len(found) > 1:
        raise SpecError(f"the parameters hold more than one position table: {', '.join(found)}")
    key = found[0]
    table = as_float32(flat[key], key)
    if table.ndim != 3 or table.shape[0] != 1:
        raise WeightsError(f"{key} has shape {table.shape}; expected (1, rows, D)")
    rows = table.shape[1]
    if image_grid is not None:
        n = image_grid[0] * image_grid[1]
        if rows == n:
            return table, False, image_grid
        if has_cls and rows == n + 1:
            return table, True, image_grid
    # Otherwise the table's own grid, square (big_vision and vision_transformer only build square
    # ones); the spec then resamples it to the image grid like big_vision's resample_posemb.
    if key == "Transformer/posembed_input/pos_embedding" and has_cls:
        side, covers = square_side(rows - 1), True
    elif has_cls and square_side(rows) is None:
        side, covers = square_side(rows - 1), True
    else:
        side, covers = square_side(rows), False
    if side is None:
        raise WeightsError(f"{key} has {rows} rows, which is no square grid (plus the class slot)"
                           + ("" if image_grid is None else f" and does not fit the {image_grid[0]}x{image_grid[1]} image grid"))
    return table, covers, (side, side)


def from_big_vision(params, *, image_size: int | tuple[int, int] | None = None, posemb: str = "auto",
                    preprocess: Mapping | None = None, name: str = "big_vision_vit") -> tuple[Spec, dict[str, np.ndarray]]:
    """(spec, canonical weights) from a big_vision / vision_transformer parameter tree or .npz path.

    image_size: (H, W) the model runs at; default: the table's square grid x patch (required with
    a sin-cos table). A table that does not fit image_size is resampled as big_vision does.
    posemb: "auto" (the table if there is one, else big_vision's fixed sincos2d), "learn",
    "sincos2d" or "none". A hybrid (ResNet root) is refused.
    """
    flat = read_npz(params) if isinstance(params, (str, os.PathLike)) else flatten_params(params)
    if posemb not in ("auto", "learn", "sincos2d", "none"):
        raise SpecError(f"posemb must be auto, learn, sincos2d or none, got {posemb!r}")
    if "embedding/kernel" not in flat:
        raise WeightsError("no 'embedding/kernel' in the parameters: not a big_vision / vision_transformer ViT "
                           f"(keys start with {sorted(flat)[:5]})")
    if any(k.startswith(("conv_root", "block1/", "gn_root")) for k in flat):
        raise SpecError("a hybrid ViT (ResNet root before the patch conv) cannot be expressed as a vitstem spec")
    kernel = as_float32(flat["embedding/kernel"], "embedding/kernel")
    if kernel.ndim != 4:
        raise WeightsError(f"embedding/kernel has shape {kernel.shape}; expected HWIO (Ph, Pw, C, D)")
    ph, pw = kernel.shape[:2]
    has_cls = "cls" in flat
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    image_grid = None if image_size is None else (image_size[0] // ph, image_size[1] // pw)
    if image_size is not None and (image_size[0] % ph or image_size[1] % pw):
        raise SpecError([("image_size", f"{image_size} is not a multiple of the patch size {ph}x{pw}")])
    table, covers, grid = _table(flat, has_cls, image_grid, posemb)
    sincos = "big_vision" if table is None and posemb != "none" else None
    if grid is None:
        raise SpecError([("image_size", "is required without a learned position table (the grid cannot be inferred)")])
    return assemble(
        name=name, kernel=kernel.transpose(3, 2, 0, 1), bias=flat.get("embedding/bias"),
        image_size=image_size or (grid[0] * ph, grid[1] * pw),
        cls=flat.get("cls"), pos=table, covers_prefix=covers, pos_grid=grid, sincos=sincos, layout=Layout.NHWC,
        preprocess=checked_preprocess(preprocess, kernel.shape[2]), resample="big_vision")
