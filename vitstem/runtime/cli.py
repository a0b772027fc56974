"""CLI: `vitstem run model.onnx INPUT... -o z0.npy` (INPUT: .npy batches or image files)."""

from __future__ import annotations

import numpy as np

from ..cli_numbers import positive_int
from ..errors import InputError
from ..json_output import add_json_flag, emit
from ..spec.vocabulary import Layout

IMAGE_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
# Modes whose pixels are 8-bit (or a palette of 8-bit colours): converted to L/RGB/RGBA without loss of range.
FAITHFUL_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA")
MAX_IMAGE_PIXELS = 64 << 20  # refused from the header, before decoding (decompression bombs)


def _model_hw(stem) -> tuple[int, int]:
    return tuple(stem.sizes[0]) if stem.sizes else tuple(stem.spec.image_size)


def _check_size(path: str, hw: tuple[int, int], stem) -> None:
    model_hw = _model_hw(stem)
    if hw != model_hw and not (stem.sizes is None or hw in stem.sizes):
        raise InputError(f"{path}: the image is {hw[0]}x{hw[1]}, the model takes {model_hw[0]}x{model_hw[1]}; "
                         "pass --resize shortest-edge --crop center (timm's eval transform; see `vitstem import`'s "
                         "summary for the model's own flags) or --resize exact (transformers' ViTImageProcessor)")


def _samples_wider_than_8_bits(image) -> bool:
    """True when the file stores 16- or 32-bit samples that Pillow would narrow to 8 bits while keeping an
    8-bit mode (a 48-bit RGB PNG opens as "RGB" with raw mode "RGB;16B"; a PPM with maxval 65535)."""
    for tile in image.tile:
        args = tile[3] if isinstance(tile[3], tuple) else (tile[3],)
        raw = args[0] if args and isinstance(args[0], str) else ""
        if ";16" in raw or ";32" in raw or (tile[0] == "ppm" and len(args) > 1 and isinstance(args[1], int)
                                            and args[1] > 255):
            return True
    return False


def _refuse_hidden_transforms(path: str, image) -> None:
    """InputError for what Pillow would silently ignore: the frames after the first, the EXIF orientation."""
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        raise InputError(f"{path}: {frames} frames (an animation or a multi-page file); vitstem run reads one "
                         "image per file: save the frame you want as its own file")
    orientation = image.getexif().get(0x0112, 1)
    if orientation not in (0, 1):
        raise InputError(f"{path}: EXIF orientation {orientation}: the pixels are stored rotated or mirrored, and the "
                         "peers disagree on applying it (timm does not, transformers does); rotate the pixels first "
                         "(PIL.ImageOps.exif_transpose) and save without the tag")


def read_image(path: str, stem, fit: dict | None = None) -> np.ndarray:
    """(H, W, C) uint8 pixels of an image file, resized/cropped to the model's size as `fit` asks
    (vitstem.runtime.resize.fit_image keywords); without `fit` it must already be the model's size."""
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
    fitting = bool(fit) and (fit.get("resize", "none") != "none" or fit.get("crop", "none") != "none")
    try:
        with Image.open(path) as image:  # lazy: the header only, nothing decoded yet
            if image.mode not in FAITHFUL_MODES or _samples_wider_than_8_bits(image):
                wide = " with 16- or 32-bit samples" if _samples_wider_than_8_bits(image) else ""
                raise InputError(f"{path}: image mode {image.mode}{wide} does not convert to 8-bit pixels faithfully "
                                 "(16-bit, float, CMYK or another colour space); pass a .npy batch")
            w, h = image.size
            if w * h > MAX_IMAGE_PIXELS:
                raise InputError(f"{path}: {w}x{h} pixels, over the limit of {MAX_IMAGE_PIXELS} pixels")
            _refuse_hidden_transforms(path, image)
            if not fitting:  # the size is known from the header: refuse before decoding
                _check_size(path, (h, w), stem)
            image = image.convert(mode)
    except InputError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path}: not a readable image ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    if fitting:
        from .resize import fit_image

        image = fit_image(image, _model_hw(stem), **fit)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels.reshape(pixels.shape[0], pixels.shape[1], spec.in_channels)


def read_inputs(paths: list[str], stem, fit: dict | None = None) -> np.ndarray:
    """One batch from .npy batches (concatenated) or image files (stacked, in the model's layout)."""
    from ..npy_files import load_npy

    if all(p.lower().endswith(".npy") for p in paths):
        arrays = [load_npy(p) for p in paths]
        try:
            return np.concatenate(arrays, axis=0) if len(arrays) > 1 else arrays[0]
        except ValueError as exc:
            raise InputError(f"the .npy batches do not concatenate: {exc}") from None
    if any(p.lower().endswith(".npy") for p in paths):
        raise InputError("pass either .npy batches or image files, not both")
    frames = [read_image(p, stem, fit) for p in paths]
    sizes = {f.shape[:2] for f in frames}
    if len(sizes) > 1:
        raise InputError(f"the images have different sizes {sorted(sizes)}; one batch needs one size")
    batch = np.stack(frames)  # (B, H, W, C)
    return batch if stem.layout == Layout.NHWC else batch.transpose(Layout.NHWC.to_nchw)


def _run(args) -> int:
    from ..npy_files import save_npy
    from . import load

    from ..outputs import check_distinct

    check_distinct([args.output], [args.model, *args.inputs])
    stem = load(args.model, threads=args.threads, providers=args.providers, verify=not args.no_verify)
    fit = {"resize": args.resize, "crop": args.crop, "crop_pct": args.crop_pct, "interpolation": args.interpolation}
    out = stem(read_inputs(args.inputs, stem, fit))
    if isinstance(out, dict):  # a whole model: its outputs by name
        return _save_outputs(args, out, args.output)
    path = save_npy(out, args.output)
    emit(args, {"output": str(path), "shape": list(out.shape), "dtype": str(out.dtype), "spec": stem.spec.name,
                "inputs": list(args.inputs)}, f"wrote {path}: z0 {out.shape} {out.dtype}")
    return 0


def _save_outputs(args, outputs: dict, path: str) -> int:
    """One output to a .npy, or every output by name to a .npz (written atomically, no pickle)."""
    import io

    from ..files import atomic_write_bytes
    from ..npy_files import save_npy

    if path.lower().endswith(".npz"):
        buffer = io.BytesIO()
        np.savez(buffer, **outputs)
        written = atomic_write_bytes(path, buffer.getvalue())
    elif len(outputs) == 1:
        written = save_npy(next(iter(outputs.values())), path)
    else:
        raise InputError(f"this model has {len(outputs)} outputs ({', '.join(outputs)}); write them to a .npz file")
    shown = ", ".join(f"{k} {v.shape} {v.dtype}" for k, v in outputs.items())
    emit(args, {"output": str(written), "outputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                                                    for k, v in outputs.items()}, "inputs": list(args.inputs)},
         f"wrote {written}: {shown}")
    return 0


def register(subparsers) -> None:
    from .resize import CROP_MODES, INTERPOLATIONS, RESIZE_MODES

    p = subparsers.add_parser(
        "run", help="run an exported model with onnxruntime only (the edge runtime)",
        description="Compute z0 with the edge runtime (numpy + onnxruntime) for .npy batches in the model's input "
                    "format, or for image files (Pillow), which are resized/cropped to the model's size only when "
                    "--resize/--crop say so. The spec and export options come from the model file.")
    p.add_argument("model", help="the .onnx (or .ort) file")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help=".npy batch(es), or image files (at the model's size unless --resize/--crop)")
    p.add_argument("-o", "--output", required=True,
                   help="where to write z0 (.npy); a whole model's outputs: .npy for one, .npz by name for several")
    p.add_argument("--threads", type=positive_int, default=None, help="ONNX Runtime intra-op threads")
    p.add_argument("--providers", nargs="+", default=None, metavar="PROVIDER",
                   help="execution providers in priority order (default CPUExecutionProvider); "
                        "one this onnxruntime build lacks is an error, not a silent CPU fallback")
    p.add_argument("--resize", choices=RESIZE_MODES, default="none",
                   help="image files: none (default: must be the model's size); shortest-edge: the short side to "
                        "size / crop-pct, keeping the aspect ratio (timm's eval transform); exact: stretch to "
                        "size / crop-pct (transformers' ViTImageProcessor)")
    p.add_argument("--crop", choices=CROP_MODES, default="none",
                   help="image files: center-crop to the model's size after resizing (timm)")
    p.add_argument("--crop-pct", type=float, default=1.0,
                   help="resize to the model's size / this before the crop (timm's pretrained_cfg crop_pct, e.g. 0.9)")
    p.add_argument("--interpolation", choices=INTERPOLATIONS, default="bicubic",
                   help="Pillow resampling for --resize: bicubic (default; timm ViTs) or bilinear (HF ViT)")
    add_json_flag(p)
    p.add_argument("--no-verify", action="store_true",
                   help="skip the whole-file digest check (vitstem.digest) at load (edited or older files)")
    p.set_defaults(run=_run)


