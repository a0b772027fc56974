"""CLI: `vitstem export SPEC --weights W -o model.onnx [...]` and `vitstem check model.onnx`."""

from __future__ import annotations

import json


def _export(args) -> int:
    if args.tflite:
        from .tflite_cli import export_tflite

        print(f"wrote {export_tflite(args)}")
        return 0
    from ..spec import load_spec, load_weights
    from .api import export_onnx
    from .options import parse_sizes

    spec = load_spec(args.spec)
    weights = load_weights(args.weights, spec)
    image_size = args.image_size if args.image_size in ("fixed", "dynamic") else parse_sizes(args.image_size)
    calibration = None
    if args.calibration:
        from ..spec.cli import load_npy

        calibration = load_npy(args.calibration)
    path = export_onnx(spec, weights, args.output, opset=args.opset, precision=args.precision, profile=args.profile,
                       batch=args.batch, image_size=image_size, preprocess_in_graph=args.preprocess_in_graph,
                       ort_format=args.ort, io_dtype=args.io_dtype, calibration=calibration)
    if args.ort:
        from .edge import operator_config_path

        ort_path = path.with_suffix(".ort")
        print(f"wrote {path}, {ort_path} and {operator_config_path(ort_path)}")
    else:
        print(f"wrote {path}")
    return 0


def _check(args) -> int:
    from .checks import check_onnx

    report = check_onnx(args.model, weights=args.weights, mobile=not args.no_mobile)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    print(f"ok: {report['path']} ({report['spec']}, opset {report['opset']}, IR {report['ir_version']})")
    print(f"  checker: ok (full_check); graph digest: ok; spec round-trip: ok ({report['spec_digest']})")
    print(f"  weights digest: {report['weights_digest']}" + (" (matches --weights)" if "weights" in report else ""))
    if "mobile" in report:
        verdict = ("NNAPI/CoreML may help: compare them with the CPU EP" if report["mobile"]["nnapi_or_coreml_worth_trying"]
                   else "use the CPU EP")
        print(f"  mobile usability: {verdict}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export the stem as ONNX (no torch or TensorFlow needed)")
    p.add_argument("spec", help="spec file (YAML/JSON) or preset name")
    p.add_argument("--weights", required=True, help="canonical weights (.safetensors)")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset, 13 to the newest onnx knows (default 18)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32")
    p.add_argument("--profile", choices=("fast", "exact"), default="fast",
                   help="exact: float64 inside, z0 bit-identical to the reference")
    p.add_argument("--batch", default="dynamic", help="'dynamic' or a fixed batch size")
    p.add_argument("--image-size", default="fixed",
                   help="'fixed' (the spec's size), 'dynamic', or sizes such as 224,384 or 224x320,256x256")
    p.add_argument("--preprocess-in-graph", action="store_true", help="take uint8 NHWC frames; normalise in the graph")
    p.add_argument("--io-dtype", choices=("float32", "float16"), default=None,
                   help="input/output dtype (float16 only with --precision fp16)")
    p.add_argument("--calibration", help="int8: a .npy batch of calibration images (default: seeded synthetic)")
    p.add_argument("--ort", action="store_true", help="also write the .ort file for ONNX Runtime Mobile")
    p.add_argument("--tflite", action="store_true",
                   help="write a LiteRT (.tflite) file instead, through the TensorFlow backend (needs tensorflow; "
                        "fixed --batch, one --image-size, fp32/fp16/int8, spec in its metadata)")
    p.set_defaults(run=_export)

    c = subparsers.add_parser("check", help="check an exported model: checker, digests, spec, mobile usability")
    c.add_argument("model", help="the .onnx file")
    c.add_argument("--weights", help="also check the stored weights digest against this .safetensors file")
    c.add_argument("--no-mobile", action="store_true", help="skip onnxruntime's mobile usability analysis")
    c.add_argument("--json", action="store_true", help="print the full report as JSON")
    c.set_defaults(run=_check)
