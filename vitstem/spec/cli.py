"""CLI: `vitstem spec list|show|validate|schema`, `vitstem init`, `vitstem forward`."""

from __future__ import annotations

import json
import sys

from ..cli_numbers import non_negative_int
from ..json_output import add_json_flag, emit
from ..native_stderr import add_verbose_flag
from .vocabulary import Profile


def _spec_list(args) -> int:
    from .presets import PRESETS, preset_names

    for name in preset_names():
        doc = PRESETS[name]
        print(f"{name:34s} image {doc['image_size'][0]}x{doc['image_size'][1]}  patch {doc['patch_size'][0]}"
              f"  D={doc['embed_dim']}")
    return 0


def _spec_show(args) -> int:
    from .loading import load_spec

    print(json.dumps(load_spec(args.spec).to_dict(), indent=2))
    return 0


def _spec_validate(args) -> int:
    from .loading import load_spec

    results = []
    for source in args.specs:
        spec = load_spec(source)
        results.append({"source": source, "name": spec.name, "digest": spec.digest()})
    emit(args, {"ok": results}, "\n".join(f"ok: {r['source']} ({r['name']}, {r['digest']})" for r in results))
    return 0


def _spec_schema(args) -> int:
    from .schema import schema_text

    sys.stdout.write(schema_text())
    return 0


def _init(args) -> int:
    from .loading import load_spec
    from .store import save_weights
    from .weights import init_weights

    spec = load_spec(args.spec)
    path = save_weights(init_weights(spec, seed=args.seed), args.output, spec)
    emit(args, {"output": str(path), "spec": spec.name, "spec_digest": spec.digest(), "seed": args.seed},
         f"wrote {path} ({spec.name}, seed {args.seed})")
    return 0


def _forward(args) -> int:
    from ..backends import forward
    from ..cli import checksum
    from ..npy_files import load_npy, save_npy
    from .loading import load_spec
    from .store import load_weights

    from ..outputs import check_distinct

    check_distinct([args.output], [args.spec, args.weights, args.input])
    spec = load_spec(args.spec)
    weights = load_weights(args.weights, spec)
    z0 = forward(spec, weights, load_npy(args.input), backend=args.backend, profile=args.profile)
    save_npy(z0, args.output)
    emit(args, {"output": str(args.output), "shape": list(z0.shape), "dtype": str(z0.dtype), "sha256": checksum(z0),
                "backend": args.backend, "profile": args.profile},
         f"z0 {tuple(z0.shape)} float32 sha256:{checksum(z0)} -> {args.output}")
    return 0


def register(sub) -> None:
    spec = sub.add_parser("spec", help="list, show, validate presets and spec files; print the JSON Schema",
                          description="A SPEC is a preset name (`vitstem spec list`) or a YAML/JSON file. A preset "
                                      "name always means the preset: write ./NAME for a file named like one.")
    spec_sub = spec.add_subparsers(dest="spec_command", required=True, metavar="ACTION")
    spec_sub.add_parser("list", help="list the presets").set_defaults(run=_spec_list)
    show = spec_sub.add_parser("show", help="print a spec (file or preset) with every field explicit")
    show.add_argument("spec", metavar="SPEC", help="spec file or preset name")
    show.set_defaults(run=_spec_show)
    validate = spec_sub.add_parser("validate", help="validate spec files or presets")
    validate.add_argument("specs", nargs="+", metavar="SPEC", help="spec files or preset names")
    add_json_flag(validate)
    validate.set_defaults(run=_spec_validate)
    spec_sub.add_parser("schema", help="print the spec's JSON Schema").set_defaults(run=_spec_schema)

    init = sub.add_parser("init", help="write seeded canonical weights for a spec",
                          description="Write deterministic, framework-free canonical weights for SPEC as "
                                      "safetensors (the same bytes on every machine for a seed).")
    init.add_argument("spec", metavar="SPEC", help="spec file or preset name")
    init.add_argument("-o", "--output", required=True, help="weights.safetensors to write")
    init.add_argument("--seed", type=non_negative_int, default=0, help="the seed (default 0)")
    add_json_flag(init)
    init.set_defaults(run=_init)

    fwd = sub.add_parser("forward", help="compute z0 for a .npy batch",
                         description="Compute z0 for a .npy batch (the spec's layout; uint8 pixels or floats) with "
                                     "one backend, and write it as .npy. Image files go to `vitstem run`.")
    fwd.add_argument("spec", metavar="SPEC", help="spec file or preset name")
    fwd.add_argument("input", metavar="INPUT.npy", help="a batch in the spec's layout")
    fwd.add_argument("--weights", required=True, help="canonical weights (.safetensors; peer checkpoints: `vitstem import`)")
    fwd.add_argument("-o", "--output", required=True, help="z0.npy to write")
    fwd.add_argument("--backend", default="numpy", choices=("numpy", "torch", "tensorflow"),
                     help="numpy (default, the reference), torch or tensorflow")
    fwd.add_argument("--profile", default=Profile.FAST.value, choices=Profile.choices(),
                     help="fast (default): float32; exact: float64, bit-identical to the reference")
    add_json_flag(fwd)
    add_verbose_flag(fwd)
    fwd.set_defaults(run=_forward)
