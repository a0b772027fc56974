"""CLI: `vitstem bench SPEC`: time every engine against the bare-MatMul floor (heavy imports inside)."""

from __future__ import annotations

import sys

from vitstem.cli_numbers import non_negative_int, positive_int


def _bench(args) -> int:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from vitstem.cli import write_json
    from vitstem.errors import VitstemError
    from vitstem.spec import init_weights, load_spec, load_weights
    from .suite import format_report, run_benchmark, run_cases

    if args.json not in (None, "-") and not args.in_process:  # refused before minutes of timing, not after
        from vitstem.outputs import check_distinct, target

        check_distinct([args.json], [args.weights])
        target(args.json)
    spec = load_spec(args.spec)
    weights = load_weights(args.weights, spec) if args.weights else init_weights(spec, seed=0)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    if args.in_process:  # the child of run_benchmark: one thread count, raw cases only
        if len(args.threads) != 1:
            raise VitstemError("--in-process measures exactly one thread count")
        write_json(run_cases(spec, weights, args.batch, args.threads[0], args.runs, args.warmup, args.only,
                             log, args.wait_quiet), args.json)
        return 0
    result = run_benchmark(spec, weights, args.batch, args.threads, runs=args.runs, warmup=args.warmup,
                           only=args.only, log=log, wait_quiet_s=args.wait_quiet)
    if not args.quiet:
        print(format_report(result))
    if args.json:
        write_json(result, args.json)
    return 0


def register(subparsers) -> None:
    import argparse

    from .candidates import CANDIDATES  # light: frameworks are imported by the builders only

    names = [c.name for c in CANDIDATES]

    p = subparsers.add_parser(
        "bench", help="time ORT/PyTorch/TensorFlow stems against a bare MatMul",
        description="Interleaved medians of every engine on SPEC (a file or preset name), each with its "
                    "ratio to ONNX Runtime running a bare (B*N, K) x (K, D) MatMul: the floor.")
    p.add_argument("spec", help="spec file or preset name")
    p.add_argument("--weights", help="safetensors weights (default: init_weights(spec, seed=0))")
    p.add_argument("--batch", type=positive_int, nargs="+", default=[1, 8], help="batch sizes (default: 1 8)")
    p.add_argument("--threads", type=positive_int, nargs="+", default=[1, 2],
                   help="intra-op thread counts, each measured in a fresh process (default: 1 2)")
    p.add_argument("--runs", type=positive_int, default=30, help="timed rounds (default: 30)")
    p.add_argument("--warmup", type=non_negative_int, default=5, help="untimed rounds first (default: 5)")
    p.add_argument("--only", nargs="+", choices=names, metavar="NAME",
                   help=f"time only these candidates (and the floor): {', '.join(names)}")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before each batch size, wait up to SECONDS for other processes to leave the CPUs idle")
    p.add_argument("--json", metavar="OUT", help="write the full result as JSON (atomically; - for stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress or table (with --json)")
    p.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # run_benchmark's children
    p.set_defaults(run=_bench)
