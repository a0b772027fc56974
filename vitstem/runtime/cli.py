"""CLI: `vitstem run model.onnx INPUT... -o z0.npy` (INPUT: .npy batches or image files)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError

IMAGE_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
# Modes whose pixels are 8-bit (or a palette of 8-bit colours): converted to L/RGB/RGBA without loss of range.
FAITHFUL_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA")
MAX_IMAGE_PIXELS = 64 << 20  # refused from the header, before decoding (decompression bombs)


def read_image(path: str, stem) -> np.ndarray:
    """(H, W, C) uint8 pixels of an image file, which must already be one of the model's sizes."""
    try:
        from PIL import Image
    except ImportError:
        raise InputError(f"{path}: reading image files needs Pillow (pip install pillow); pass a .npy batch") from None
    spec = stem.spec
    if spec.input.preprocess is None:
        raise InputError(f"{path}: this model takes normalised float images (its spec has no preprocess); "
                         "pass a .npy batch")
    mode = IMAGE_MODES.get(spec.in_channels)
    if mode is None:
        raise InputError(f"{path}: image files have 1, 3 or 4 channels; the model takes {spec.in_channels}")
    try:
        with Image.open(path) as image:  # lazy: the header only, nothing decoded yet
            if image.mode not in FAITHFUL_MODES:
                raise InputError(f"{path}: image mode {image.mode} (e.g. 16-bit or float pixels) does not convert "
                                 "to 8-bit pixels faithfully; pass a .npy batch")
            w, h = image.size
            if stem.sizes is not None and (h, w) not in stem.sizes:
                accepted = ", ".join(f"{a}x{b}" for a, b in stem.sizes)
                raise InputError(f"{path}: image is {h}x{w}; this model takes {accepted} (resize it first)")
            if w * h > MAX_IMAGE_PIXELS:
                raise InputError(f"{path}: {w}x{h} pixels, over the limit of {MAX_IMAGE_PIXELS} pixels")
            pixels = np.asarray(image.convert(mode), dtype=np.uint8)
    except InputError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path}: not a readable image ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    return pixels.reshape(pixels.shape[0], pixels.shape[1], spec.in_channels)


def read_inputs(paths: list[str], stem) -> np.ndarray:
    """One batch from .npy batches (concatenated) or image files (stacked, in the model's layout)."""
    from ..spec.cli import load_npy

    if all(p.lower().endswith(".npy") for p in paths):
        arrays = [load_npy(p) for p in paths]
        try:
            return np.concatenate(arrays, axis=0) if len(arrays) > 1 else arrays[0]
        except ValueError as exc:
            raise InputError(f"the .npy batches do not concatenate: {exc}") from None
    if any(p.lower().endswith(".npy") for p in paths):
        raise InputError("pass either .npy batches or image files, not both")
    frames = [read_image(p, stem) for p in paths]
    sizes = {f.shape[:2] for f in frames}
    if len(sizes) > 1:
        raise InputError(f"the images have different sizes {sorted(sizes)}; one batch needs one size")
    batch = np.stack(frames)  # (B, H, W, C)
    return batch if stem.layout == "NHWC" else batch.transpose(0, 3, 1, 2)


def _run(args) -> int:
    from ..spec.cli import save_npy
    from . import load

    from ..outputs import check_distinct

    check_distinct([args.output], [args.model, *args.inputs])
    stem = load(args.model, threads=args.threads, verify=not args.no_verify)
    z0 = stem(read_inputs(args.inputs, stem))
    path = save_npy(z0, args.output)
    print(f"wrote {path}: z0 {z0.shape} {z0.dtype}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="run an exported model with onnxruntime only (the edge runtime)")
    p.add_argument("model", help="the .onnx (or .ort) file")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".npy batch(es) or image files at the model's size")
    p.add_argument("-o", "--output", required=True, help="where to write z0 (.npy)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the whole-file digest check (vitstem.digest) at load (edited or older files)")
    p.set_defaults(run=_run)


