"""CLI: `vitstem export SPEC --weights W -o model.onnx [...]` and `vitstem check model.onnx`."""

from __future__ import annotations

from pathlib import Path

from ..json_output import add_json_flag, emit
from ..spec.vocabulary import CAMERA_DTYPE, CAMERA_LAYOUT, IO_DTYPES, Precision, Profile


def describe_options(options: dict, spec_size=None) -> str:
    """One line of export options as `vitstem check` shows them (precision, sizes, batch, input)."""
    if options.get("dynamic_size"):
        sizes = "dynamic (any multiple of the patch)"
    else:
        sizes = ", ".join(f"{h}x{w}" for h, w in options.get("sizes") or [])
        sizes += " (fixed)" if len(options.get("sizes") or []) == 1 else " (one table per size)"
    batch = "dynamic" if options.get("batch") is None else str(options["batch"])
    frames = f"{CAMERA_DTYPE} {CAMERA_LAYOUT} frames, preprocessing in the graph" if options.get("preprocess_in_graph") \
        else f"{options.get('io_dtype', 'float32')} images"
    return (f"precision {options.get('precision')}, profile {options.get('profile')}, image size {sizes}, "
            f"batch {batch}, input {frames}, opset {options.get('opset')}")


def _export(args) -> int:
    if args.tflite:
        from .tflite_cli import export_tflite

        path = export_tflite(args)
        emit(args, {"files": [str(path)]}, f"wrote {path}")
        return 0
    from ..spec import load_spec, load_weights
    from .api import export_onnx
    from .options import parse_sizes

    from ..outputs import check_distinct

    ort_path = Path(args.output).with_suffix(".ort") if args.ort else None
    check_distinct([args.output, ort_path], [args.spec if Path(args.spec).exists() else None, args.weights,
                                               args.calibration])
    spec = load_spec(args.spec)
    weights = load_weights(args.weights, spec)
    if args.dynamic_image_size and not spec.dynamic_image_size:
        spec = spec.replace(dynamic_image_size=True)
    image_size = args.image_size if args.image_size in ("fixed", "dynamic") else parse_sizes(args.image_size)
    calibration = None
    if args.calibration:
        from ..npy_files import load_npy

        calibration = load_npy(args.calibration)
    path = export_onnx(spec, weights, args.output, opset=args.opset, precision=args.precision, profile=args.profile,
                       batch=args.batch, image_size=image_size, preprocess_in_graph=args.preprocess_in_graph,
                       ort_format=args.ort, io_dtype=args.io_dtype, calibration=calibration)
    files = [str(path)]
    if args.ort:
        from .edge import operator_config_path

        ort_path = path.with_suffix(".ort")
        files += [str(ort_path), str(operator_config_path(ort_path))]
    emit(args, {"files": files, "spec": spec.name, "spec_digest": spec.digest(),
                "dynamic_image_size": spec.dynamic_image_size},
         f"wrote {', '.join(files[:-1])} and {files[-1]}" if len(files) > 1 else f"wrote {files[0]}")
    return 0


def _check(args) -> int:
    from .checks import check_onnx

    report = check_onnx(args.model, weights=args.weights, mobile=not args.no_mobile, calibration=args.calibration)
    if args.json:
        emit(args, report, "")
        return 0
    if report["graph_digest"] is None:  # an .ort file, or an edge install without onnx
        print(f"ok: {report['path']} ({report['spec']}, {report['format'].upper()} format, opset {report['opset']})")
        print(f"  {report['checker']}; spec round-trip: ok ({report['spec_digest']})")
    else:
        print(f"ok: {report['path']} ({report['spec']}, opset {report['opset']}, IR {report['ir_version']})")
        print(f"  checker: ok (full_check); file digest: ok; graph digest: ok; spec round-trip: ok ({report['spec_digest']})")
    print(f"  export: {describe_options(report['options'])}")
    proven = "the stem part of this graph" if "encoder" in report else "this file byte for byte"
    print(f"  weights digest: {report['weights_digest']}" + (f" (proven: exporting --weights again gives {proven})" if "weights" in report else ""))
    if "encoder" in report:
        e = report["encoder"]
        print(f"  whole model: stem + {e['peer']} {e['class']} ({e['version']}), encoder digest {e['digest']}; "
              f"outputs {', '.join(e['outputs'])}")
    if "mobile" in report:
        verdict = ("NNAPI/CoreML may help: compare them with the CPU EP" if report["mobile"]["nnapi_or_coreml_worth_trying"]
                   else "use the CPU EP")
        print(f"  mobile usability: {verdict}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export the stem as ONNX (no torch or TensorFlow needed)",
        description="Write a self-describing ONNX file (spec, digests and export options in its metadata) computing "
                    "z0 for SPEC with the canonical weights W. Peer checkpoints go through `vitstem import` first.")
    p.add_argument("spec", help="spec file (YAML/JSON) or preset name")
    p.add_argument("--weights", required=True, help="canonical weights (.safetensors, from `vitstem init` or `import`)")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset, 13 to the newest onnx knows (default 18)")
    p.add_argument("--precision", choices=Precision.choices(), default=Precision.FP32.value,
                   help="fp32 (default); fp16 weights and compute; int8 static QDQ quantization")
    p.add_argument("--profile", choices=Profile.choices(), default=Profile.FAST.value,
                   help="fast (default): float32, within the fast error bound; exact: float64 inside, "
                        "z0 bit-identical to the reference")
    p.add_argument("--batch", default="dynamic", help="'dynamic' (default) or a fixed batch size")
    p.add_argument("--image-size", default="fixed",
                   help="'fixed' (the spec's size, default), 'dynamic', or sizes such as 224,384 or 224x320,256x256; "
                        "other sizes than the spec's need --dynamic-image-size")
    p.add_argument("--dynamic-image-size", action="store_true",
                   help="export the spec with dynamic_image_size: true, so the model (and `vitstem run`) accepts "
                        "the other sizes of --image-size")
    p.add_argument("--preprocess-in-graph", action="store_true", help="take uint8 NHWC frames; normalise in the graph")
    p.add_argument("--io-dtype", choices=IO_DTYPES, default=None,
                   help="input/output dtype (float16 only with --precision fp16)")
    p.add_argument("--calibration", help="int8: a .npy batch of calibration images (default: seeded synthetic)")
    p.add_argument("--ort", action="store_true", help="also write the .ort file for ONNX Runtime Mobile")
    p.add_argument("--tflite", action="store_true",
                   help="write a LiteRT (.tflite) file instead, through the TensorFlow backend (needs tensorflow; "
                        "fixed --batch, one --image-size, fp32/fp16/int8, spec in its metadata)")
    add_json_flag(p)
    p.set_defaults(run=_export)

    c = subparsers.add_parser(
        "check", help="check an exported model: checker, digests, spec, export options, mobile usability",
        description="Check a file written by `vitstem export` (.onnx, or .ort): the onnx checker, the graph and "
                    "whole-file digests (integrity), the stored spec against the graph, the export options, "
                    "optionally provenance (re-export from --weights), and onnxruntime's mobile usability verdict. "
                    "Exit 2 naming the first failure.")
    c.add_argument("model", help="the .onnx or .ort file")
    c.add_argument("--weights", help="prove provenance: export this .safetensors file again with the stored spec and "
                                     "options and compare the bytes")
    c.add_argument("--calibration", help="int8 calibrated on user images: the same .npy batch (with --weights)")
    c.add_argument("--no-mobile", action="store_true", help="skip onnxruntime's mobile usability analysis")
    c.add_argument("--json", action="store_true", help="print the full report as one JSON object on stdout")
    c.set_defaults(run=_check)
