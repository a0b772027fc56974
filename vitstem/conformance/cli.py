"""CLI: `vitstem conform`, `vitstem golden` and `vitstem demo` (heavy imports inside the commands)."""

from __future__ import annotations

from ..cli_numbers import non_negative_int, positive_int

def _conform(args) -> int:
    from ..outputs import check_distinct, target
    from .runner import run

    check_distinct([args.json, args.markdown], [args.weights])
    for out in (args.json, args.markdown):
        if out:
            target(out)  # refused before the matrix runs, not after

    from ..process_clock import process_seconds

    report = run(args.spec, args.weights, engines=args.engines, profiles=args.profiles, precisions=args.precisions,
                 full=args.full, seed=args.seed, progress=not args.quiet)
    report.command_seconds = process_seconds()
    print(report.table())
    if args.whole_models:
        from .whole import table, whole_model_rows

        report.whole_models = whole_model_rows(precisions=args.precisions, seed=args.seed)
        print("\n".join(table(report.whole_models)))
    if args.json:
        print(f"json: {report.write_json(args.json)}")
    if args.markdown:
        print(f"markdown: {report.write_markdown(args.markdown)}")
    return 0 if report.verdict == "pass" else 1


def _golden(args) -> int:
    from ..errors import SpecError
    from .golden import write_golden, write_golden_suite

    if args.suite:
        outs = write_golden_suite(args.output)
    elif args.spec is None:
        raise SpecError("give a SPEC (file or preset name), or --suite for the committed set")
    else:
        outs = [write_golden(args.spec, args.output, weights=args.weights, seed=args.seed, batch=args.batch,
                             opset=args.opset, preprocess_in_graph=args.preprocess_in_graph)]
    for out in outs:
        print(f"wrote {out}/model.onnx and {out}/test_data_set_0/{{input_0,output_0}}.pb")
    return 0


def _demo(args) -> int:
    from ..demo import demo

    return demo(args.output, full=args.full)


def register(sub) -> None:
    from ..native_stderr import add_verbose_flag
    from .engines import ENGINES
    from .matrix import PRECISIONS, PROFILES

    conform = sub.add_parser("conform", help="run every engine over the conformance matrix and give one verdict")
    conform.add_argument("spec", metavar="SPEC", help="spec file or preset name")
    conform.add_argument("--weights", help="canonical weights (.safetensors) every engine loads (default: seeded)")
    conform.add_argument("--engines", nargs="+", choices=list(ENGINES), metavar="ENGINE",
                         help=f"engines to run (default: all of {', '.join(ENGINES)})")
    conform.add_argument("--profiles", nargs="+", choices=PROFILES, default=list(PROFILES),
                         help="profiles to run (default: all)")
    conform.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                         help="precisions to run (default: all; fp16 and int8 on the ONNX engines only)")
    conform.add_argument("--full", action="store_true", help="the release matrix (every combination)")
    conform.add_argument("--json", metavar="OUT", help="write the JSON report here")
    conform.add_argument("--markdown", metavar="OUT", help="write the Markdown report here (plots beside it)")
    conform.add_argument("--seed", type=non_negative_int, default=0, help="seed of the weights (when not given) and images")
    conform.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_verbose_flag(conform)
    conform.add_argument("--whole-models", action="store_true",
                         help="also verify whole-model files (vitstem deploy) of small timm / transformers peers "
                              "against their own forward, at three sizes, in the chosen precisions")
    conform.set_defaults(run=_conform)

    golden = sub.add_parser("golden", help="write golden vectors (model.onnx + test_data_set_0) in the ONNX test layout")
    golden.add_argument("spec", metavar="SPEC", nargs="?", help="spec file or preset name")
    golden.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write")
    golden.add_argument("--weights", help="canonical weights (.safetensors) (default: seeded)")
    golden.add_argument("--seed", type=non_negative_int, default=0, help="seed of the weights (when not given) and the images")
    golden.add_argument("--batch", type=positive_int, default=2, help="images in the test batch (default 2)")
    golden.add_argument("--opset", type=int, default=None, help="default: the exporter's")
    golden.add_argument("--preprocess-in-graph", action="store_true", help="uint8 NHWC frames in (specs with preprocess)")
    golden.add_argument("--suite", action="store_true",
                        help="write the committed set (vitstem.conformance.golden.GOLDEN_SPECS), one directory each")
    golden.set_defaults(run=_golden)

    demo = sub.add_parser("demo", help="export the default preset, run its conformance matrix, write a report")
    demo.add_argument("-o", "--output", default="demo-output", metavar="DIR", help="where to write (default demo-output)")
    demo.add_argument("--full", action="store_true", help="the release matrix")
    add_verbose_flag(demo)
    demo.set_defaults(run=_demo)
