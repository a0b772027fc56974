"""CLI: `vitstem deploy` (a whole model from a timm checkpoint or a transformers directory) and
`vitstem compose STEM ENCODER -o MODEL`."""

from __future__ import annotations

from ..errors import ExportError
from ..json_output import add_json_flag, emit
from ..spec.vocabulary import Precision


def _deploy(args) -> int:
    from ..export.options import parse_sizes
    from .api import export_model
    from .checkpoints import hf_model, timm_model

    if (args.timm is None) == (args.hf is None):
        raise ExportError("give either --timm ARCH --weights CKPT.safetensors or --hf DIR")
    if args.timm is not None:
        if args.weights is None:
            raise ExportError("--timm needs --weights CKPT.safetensors (a timm state dict)")
        model, preprocess = timm_model(args.timm, args.weights, dynamic_img_size=args.dynamic_img_size), "auto"
    else:
        model, preprocess = hf_model(args.hf)
        preprocess = "auto" if preprocess is None else preprocess
    image_size = args.image_size if args.image_size in ("fixed", "dynamic") else parse_sizes(args.image_size)
    calibration = None
    if args.calibration:
        from ..npy_files import load_npy

        calibration = load_npy(args.calibration)
    path = export_model(model, args.output, image_size=image_size, precision=args.precision, batch=args.batch,
                        preprocess_in_graph=args.preprocess_in_graph, opset=args.opset, preprocess=preprocess,
                        calibration=calibration)
    rows, passed = None, True
    if args.verify is not None:
        from .verification import table, verify

        rows = verify(model, path, parse_sizes(args.verify) if args.verify else None)
        passed = all(r["passed"] for r in rows)
        verdict = "ok" if passed else "FAIL (an output is further from the peer's forward than the bound)"
    text = f"wrote {path}" + ("" if rows is None else f"\n{table(rows)}\nverify: {verdict}")
    emit(args, {"output": str(path), "verify": rows, "passed": passed}, text)
    return 0 if passed else 1


def _compose(args) -> int:
    from .join import compose

    path = compose(args.stem, args.encoder, args.output, encoder_input=args.encoder_input)
    emit(args, {"output": str(path)}, f"wrote {path}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("deploy", help="export a whole timm / transformers ViT as one ONNX file (vitstem stem "
                                             "+ the peer's encoder)")
    p.add_argument("--timm", metavar="ARCH", help="a timm architecture name, e.g. vit_base_patch16_224")
    p.add_argument("--weights", help="with --timm: the model's state dict (.safetensors)")
    p.add_argument("--hf", metavar="DIR", help="a local transformers model directory (config.json + model.safetensors)")
    p.add_argument("--dynamic-img-size", action="store_true", help="with --timm: build the model with "
                   "dynamic_img_size=True (needed for --image-size other than fixed)")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--image-size", default="fixed",
                   help="'fixed', 'dynamic', or sizes such as 224,384 or 224x320,256x256")
    p.add_argument("--precision", choices=Precision.choices(), default=Precision.FP32.value,
                   help="fp32 (default); fp16 weights and compute; int8: the stem's projection and the encoder's "
                        "weight MatMuls quantized (QDQ)")
    p.add_argument("--batch", default="dynamic", help="'dynamic' or a fixed batch size")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    p.add_argument("--preprocess-in-graph", action="store_true", help="take uint8 NHWC frames; normalise in the graph")
    p.add_argument("--calibration", help="int8: a .npy batch of calibration images (default: seeded synthetic)")
    p.add_argument("--verify", nargs="?", const="", default=None, metavar="SIZES",
                   help="then compare the file in ONNX Runtime with the peer's forward (at SIZES, e.g. 224,160x288; "
                        "default: the native size and, if the file takes others, two more); exit 1 if off")
    add_json_flag(p)
    p.set_defaults(run=_deploy)

    c = subparsers.add_parser("compose", help="join a vitstem stem and an encoder ONNX file into one model")
    c.add_argument("stem", help="the stem (.onnx from vitstem export)")
    c.add_argument("encoder", help="the encoder (.onnx taking z0 as (batch, tokens, D))")
    c.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    c.add_argument("--encoder-input", help="the encoder input z0 feeds (default: its only input)")
    add_json_flag(c)
    c.set_defaults(run=_compose)
