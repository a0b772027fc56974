"""CLI: `vitstem import CHECKPOINT --format timm|hf|big_vision -o DIR` (no peer library needed)."""

from __future__ import annotations


def _import(args) -> int:
    from .checkpoint import import_checkpoint, write_import

    if args.no_preprocess:
        preprocess = None
    elif args.mean is not None or args.std is not None:
        if args.mean is None or args.std is None:
            from ..errors import SpecError

            raise SpecError("--mean and --std go together")
        preprocess = {"scale": args.scale, "mean": args.mean, "std": args.std}
    else:
        preprocess = "auto"
    spec, weights = import_checkpoint(
        args.checkpoint, args.format, image_size=args.image_size, grid=args.grid,
        no_embed_class=True if args.no_embed_class else None, config=args.config, preprocess=preprocess,
        pre_norm_eps=args.pre_norm_eps, dynamic_image_size=args.dynamic_image_size, name=args.name,
        patch_norm_eps=args.patch_norm_eps)
    spec_path, weights_path = write_import(spec, weights, args.output, args.spec_format)
    gh, gw = spec.pos_grid
    print(f"wrote {spec_path} and {weights_path}: {spec.name}, image {spec.image_size[0]}x{spec.image_size[1]}, "
          f"patch {spec.patch_size[0]}x{spec.patch_size[1]}, D={spec.embed_dim}, prefix {list(spec.prefix_tokens)}, "
          f"position {spec.position_embedding.kind} grid {gh}x{gw} covers_prefix={spec.position_embedding.covers_prefix}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("import", help="convert a timm/transformers safetensors or big_vision npz checkpoint",
                       description="Write DIR/spec.yaml and DIR/weights.safetensors from a peer checkpoint. "
                       "Architecture facts come from the tensor shapes, plus config.json / "
                       "preprocessor_config.json beside the checkpoint when present.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help=".safetensors (timm, hf), a model directory holding model.safetensors, or .npz (big_vision)")
    p.add_argument("--format", required=True, choices=("timm", "hf", "big_vision"))
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write (created if missing)")
    p.add_argument("--image-size", type=int, nargs="+", metavar="N", help="H [W] the model runs at")
    p.add_argument("--grid", type=int, nargs=2, metavar=("GH", "GW"), help="the position table's patch grid")
    p.add_argument("--no-embed-class", action="store_true",
                   help="timm: the table has no rows for the prefix tokens (when the shapes are ambiguous)")
    p.add_argument("--config", help="config.json (default: the one beside CHECKPOINT, if any)")
    p.add_argument("--mean", type=float, nargs="+", help="preprocess mean per channel (with --std)")
    p.add_argument("--std", type=float, nargs="+", help="preprocess std per channel (with --mean)")
    p.add_argument("--scale", type=float, default=1 / 255, help="preprocess pixel scale (default 1/255)")
    p.add_argument("--no-preprocess", action="store_true", help="the spec takes normalised floats")
    p.add_argument("--pre-norm-eps", type=float, default=1e-5, help="eps of timm's norm_pre (default 1e-5)")
    p.add_argument("--patch-norm-eps", type=float, default=1e-6,
                   help="eps of timm's patch_embed.norm (default 1e-6); with a bias it is a LayerNorm, else an RmsNorm")
    p.add_argument("--dynamic-image-size", action="store_true", help="accept other image sizes at run time")
    p.add_argument("--name", help="the spec's name")
    p.add_argument("--spec-format", choices=("yaml", "json"), default="yaml")
    p.set_defaults(run=_import)
