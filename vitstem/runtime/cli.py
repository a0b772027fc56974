"""CLI: `vitstem run model.onnx INPUT... -o z0.npy` (INPUT: .npy batches or image files)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError

IMAGE_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


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
        with Image.open(path) as image:
            pixels = np.asarray(image.convert(mode), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None
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

    stem = load(args.model, threads=args.threads, providers=args.providers)
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
    p.add_argument("--providers", nargs="+", default=None, metavar="PROVIDER",
                   help="execution providers in priority order (default CPUExecutionProvider); "
                        "one this onnxruntime build lacks is an error, not a silent CPU fallback")
    p.set_defaults(run=_run)


