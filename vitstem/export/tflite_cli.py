"""`vitstem export --tflite`: the stem as a LiteRT flatbuffer, through the TensorFlow backend (imported
here, inside the command: vitstem.export itself never imports TensorFlow)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ExportError
from ..files import atomic_write_bytes
from ..spec.vocabulary import Precision, Profile
from .options import parse_sizes

# ONNX-only options and the value that means "not given"
ONNX_ONLY = {"opset": None, "profile": Profile.FAST, "preprocess_in_graph": False, "io_dtype": None, "ort": False}


def export_tflite(args) -> Path:
    for name, unset in ONNX_ONLY.items():
        if getattr(args, name) != unset:
            raise ExportError(f"--{name.replace('_', '-')} applies to ONNX export only, not --tflite")
    if args.batch == "dynamic":
        raise ExportError("--tflite needs a fixed --batch (LiteRT models here have a fixed batch size)")
    try:
        batch = int(args.batch)
    except ValueError:
        raise ExportError(f"--batch {args.batch!r} is not a number") from None
    size = None
    if args.image_size != "fixed":
        sizes = [] if args.image_size == "dynamic" else parse_sizes(args.image_size)
        if len(sizes) != 1:
            raise ExportError(f"--image-size {args.image_size!r}: a LiteRT model takes one size (e.g. 224x320)")
        size = sizes[0]
    from ..conformance.matrix import sample_images
    from ..spec import load_spec, load_weights
    from ..npy_files import load_npy

    spec = load_spec(args.spec)
    weights = load_weights(args.weights, spec)
    representative = None
    if args.precision == Precision.INT8:
        representative = (load_npy(args.calibration) if args.calibration
                          else sample_images(spec, 8, size or spec.image_size, seed=12345))
    elif args.calibration:
        raise ExportError("calibration images are only used with precision 'int8'")
    from ..backends.tensorflow.tflite import convert

    data = convert(spec, weights, precision=args.precision, batch=batch, image_size=size,
                   representative=representative)
    return atomic_write_bytes(args.output, data)
