"""Where every microsecond above the floor goes: vitstem's exported stems vs a bare ORT product of the
projection's shape, per node (ORT's own profiler), beside the traffic no stem can avoid (read the
image once, write z0 once) priced at this host's measured memcpy bandwidth.

    PYTHONPATH=. .venv/bin/python benchmarks/overhead_accounting.py --out docs/performance.md

Cases per batch: fp32 (dynamic and static batch) vs a float32 MatMul (B*N, K) x (K, D); fp16 vs an fp16
MatMul; int8 vs a u8*u8 MatMulInteger (vitstem's int8 exports use uint8 weights); the NHWC uint8 graph
with the preprocessing in the graph vs the float32 floor. One child process per thread count (ORT's
global pool: idle spinners of one session must not steal the cores of the next); timings are
interleaved rounds (every case once per round, order rotating), medians. Writes the whole markdown
file (method, tables, what changed); nothing in it is typed by hand.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vitstem.spec.vocabulary import Layout

HERE = Path(__file__).resolve().parent
ONNX_TYPES = {"float32": 1, "uint8": 2, "float16": 10}
# (name, its floor, build_onnx arguments; "B" = the batch measured)
GRAPHS = [("vitstem fp32, dynamic batch", "floor fp32", {}),
          ("vitstem fp32, static batch", "floor fp32", {"batch": "B"}),
          ("vitstem fp16", "floor fp16", {"precision": "fp16"}),
          ("vitstem int8", "floor int8", {"precision": "int8"}),
          ("vitstem uint8 NHWC, preprocessing in graph", "floor fp32", {"preprocess_in_graph": True}),
          # NHWC float input: its Gather moves runs of Pw * C values
          ("vitstem fp32, NHWC float input", "floor fp32", {"layout": Layout.NHWC.value}),
          # the same NCHW input as the first row through the exporter's other projections (benchmark only):
          # the Conv (what graphs for several sizes take) and the 6-D Transpose patchify
          ("vitstem fp32, NCHW input, Conv", "floor fp32", {"projection": "conv"}),
          ("vitstem fp32, NCHW input, Transpose patchify", "floor fp32", {"projection": "transpose"})]


@contextlib.contextmanager
def forced_projection(choice: str | None):
    """Force the exporter's patchify + projection ("gather", "transpose" or "conv") for fast graphs (None: its own)."""
    from vitstem.export import build

    own = build._projection
    if choice is not None:
        build._projection = lambda opts, layout: own(opts, layout) if opts.profile == "exact" else choice
    try:
        yield
    finally:
        build._projection = own


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                        platform.processor())
    except OSError:
        return platform.processor() or "unknown"


def floor_model(rows: int, k: int, d: int, kind: str):
    """The one product every stem must do, x (rows, K) @ E (K, D), E a constant: float32, float16, or
    u8*u8 MatMulInteger (int32 out) with the weight type vitstem's int8 exports use."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    if kind == "int8":
        kernel = rng.integers(0, 256, (k, d)).astype(np.uint8)
        node = helper.make_node("MatMulInteger", ["x", "E", "", "E_zero"], ["y"])
        inits = [numpy_helper.from_array(kernel, "E"), numpy_helper.from_array(np.uint8(128), "E_zero")]
        in_type, out_type = ONNX_TYPES["uint8"], 6  # int32
    else:
        dtype = np.float16 if kind == "fp16" else np.float32
        kernel = (rng.standard_normal((k, d)) / np.sqrt(k)).astype(dtype)
        node, inits = helper.make_node("MatMul", ["x", "E"], ["y"]), [numpy_helper.from_array(kernel, "E")]
        in_type = out_type = ONNX_TYPES[np.dtype(dtype).name]
    graph = helper.make_graph([node], "floor", [helper.make_tensor_value_info("x", in_type, [rows, k])],
                              [helper.make_tensor_value_info("y", out_type, [rows, d])], inits)
    opsets = [helper.make_opsetid("", 17)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))


def floor_input(rows: int, k: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(1)
    if kind == "int8":
        return rng.integers(0, 256, (rows, k)).astype(np.uint8)
    return rng.standard_normal((rows, k)).astype(np.float16 if kind == "fp16" else np.float32)


def graph_input(model: bytes, pixels: np.ndarray) -> np.ndarray:
    """`pixels` (B, C, H, W, values 0..255) in the exported graph's input layout and dtype."""
    import onnx

    graph_in = onnx.load_from_string(model).graph.input[0].type.tensor_type
    nchw = graph_in.shape.dim[1].dim_value == pixels.shape[1]
    dtype = {v: k for k, v in ONNX_TYPES.items()}[graph_in.elem_type]
    return np.ascontiguousarray(pixels if nchw else pixels.transpose(0, 2, 3, 1)).astype(dtype)


def build_cases(spec_name: str, batch: int) -> list[dict]:
    """[{name, floor, model (bytes), feed, traffic (bytes: image in + z0 out)}], floors first."""
    import vitstem
    from vitstem.errors import VitstemError
    from vitstem.export.api import build_onnx, model_bytes

    spec = vitstem.load_spec(spec_name)
    weights = vitstem.init_weights(spec, seed=0)
    (gh, gw), (ph, pw) = spec.patch_grid(spec.image_size), spec.patch_size
    rows, k, d = batch * gh * gw, spec.in_channels * ph * pw, spec.embed_dim
    h, w, c = *spec.image_size, spec.in_channels
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (batch, c, h, w)).astype(np.float32)
    z_bytes = batch * spec.num_tokens(spec.image_size) * d * 4
    cases = [dict(name=f"floor {kind}", floor=None, model=floor_model(rows, k, d, kind).SerializeToString(),
                  feed={"x": floor_input(rows, k, kind)}, traffic=None) for kind in ("fp32", "fp16", "int8")]
    for name, floor, kwargs in GRAPHS:
        kwargs = {key: batch if value == "B" else value for key, value in kwargs.items()}
        graph_spec = spec
        if "layout" in kwargs:
            data = json.loads(spec.to_json())
            data["input"]["layout"] = kwargs.pop("layout")
            graph_spec = vitstem.load_spec(data)
        try:
            with forced_projection(kwargs.pop("projection", None)):
                model = model_bytes(build_onnx(graph_spec, weights, **kwargs))
        except VitstemError as exc:  # e.g. no preprocessing to put in the graph
            print(f"{name}: not exported ({exc})", file=sys.stderr)
            continue
        images = graph_input(model, pixels)
        cases.append(dict(name=name, floor=floor, model=model, feed={"images": images},
                          traffic=images.nbytes + z_bytes))
    return cases


def session(model: bytes, profile_dir: str | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.use_per_session_threads = False
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    if profile_dir:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(profile_dir, "profile")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


PRODUCTS = {"Conv", "MatMul", "Gemm", "FusedConv", "FusedMatMul", "FusedGemm", "QLinearConv", "QLinearMatMul",
            "MatMulInteger", "ConvInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul"}
ALIASES = {"Reshape", "Shape", "Squeeze", "Unsqueeze", "Flatten"}  # views or metadata: no bytes moved


def node_profile(model: bytes, feed: dict, runs: int) -> dict:
    """Per node (ORT's profiler, in execution order): median µs and bytes in + out; per run, the sum of
    its nodes and the whole session run, as medians (the first fifth of the runs dropped as warm-up)."""
    with tempfile.TemporaryDirectory() as tmp:
        sess = session(model, tmp)
        for _ in range(runs):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    windows = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                     if e.get("cat") == "Session" and e["name"] == "model_run")
    times, nbytes, sums = collections.defaultdict(list), {}, [0.0] * len(windows)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"].get("op_name", "?")
            key = f"{e['name'][:-len('_kernel_time')]} ({op})"
            times[key].append(e["dur"])
            moved = int(e["args"].get("activation_size", 0)) + int(e["args"].get("output_size", 0))
            nbytes[key] = 0 if op in ALIASES else moved
            run = next(i for i, (a, b) in enumerate(windows) if a <= e["ts"] <= b)
            sums[run] += e["dur"]
    skip = runs // 5
    return {"nodes": [[key, float(np.median(v[skip:])), nbytes[key]] for key, v in times.items()],
            "node_sum_us": float(np.median(sums[skip:])),
            "run_us": float(np.median([b - a for a, b in windows][skip:]))}


def memcpy_bandwidth(nbytes: int, rounds: int) -> float:
    """Bytes moved (read + written) per second by one memcpy of `nbytes`, median of `rounds`."""
    src, dst = np.ones(max(nbytes // 4, 1), np.float32), np.empty(max(nbytes // 4, 1), np.float32)
    times = []
    for _ in range(max(rounds, 3)):
        t = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t)
    return 2 * src.nbytes / statistics.median(times)


def measure(spec_name: str, batches: list[int], threads: int, rounds: int, profile_runs: int) -> dict:
    """One thread count, in this process: interleaved timings and profiles of every case."""
    import onnxruntime as ort

    built = {batch: build_cases(spec_name, batch) for batch in batches}  # int8's export makes sessions of its own
    ort.set_global_thread_pool_sizes(threads, 1)
    out = []
    for batch, cases in built.items():
        sessions = [session(c["model"]) for c in cases]
        for sess, c in zip(sessions, cases):
            for _ in range(3):
                sess.run(None, c["feed"])
        times = [[] for _ in cases]
        for r in range(rounds):
            order = list(range(len(cases)))
            order = order[r % len(order):] + order[:r % len(order)]
            for i in order:
                t = time.perf_counter()
                sessions[i].run(None, cases[i]["feed"])
                times[i].append(time.perf_counter() - t)
        traffic = max(c["traffic"] or 0 for c in cases)
        bandwidth = memcpy_bandwidth(traffic, rounds)
        for c, t in zip(cases, times):
            out.append(dict(name=c["name"], floor=c["floor"], batch=batch, threads=threads,
                            median_us=statistics.median(t) * 1e6, traffic_bytes=c["traffic"],
                            bandwidth=bandwidth, profile=node_profile(c["model"], c["feed"], profile_runs)))
    return {"threads": threads, "cases": out}


def run_child(args, threads: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(threads), "--spec", args.spec,
           "--rounds", str(args.rounds), "--profile-runs", str(args.profile_runs), "--batch", *map(str, args.batch)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode != 0:
        raise SystemExit(f"child for {threads} thread(s) failed:\n{done.stderr}")
    sys.stderr.write(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the markdown ---------------------------------------------------------------------------------
METHOD = """\
## Method

- **Floor**: a bare ONNX Runtime product of the projection's shape, `(B*N, K) x (K, D)` with the kernel a
  constant: float32 MatMul for the float32 graphs (and for the uint8 NHWC graph, which starts from camera
  bytes), float16 MatMul for fp16, u8*u8 MatMulInteger for int8 (vitstem's int8 exports use uint8 weights).
  The floor's input is already patchified; a stem is not.
- **Timing**: one process per thread count, ORT's global intra-op pool, every case once per round with the
  order rotating, medians over the rounds (`× floor` = median / the floor's median, same batch and threads).
- **Per node**: ORT's profiler (`SessionOptions.enable_profiling`) on a separate session, median µs of each
  kernel over the runs (first fifth dropped). Profiling costs a little per node, so the table also shows the
  profiled session run and the sum of its nodes; shares are the robust part, absolute µs less so.
- **Bytes** per node: ORT's own `activation_size + output_size` (inputs that are not weights, plus outputs).
  **µs at memcpy**: those bytes at the bandwidth one `memcpy` of the image + z0 size reaches on this host
  (bytes read + written per second, single thread). **Unavoidable traffic**: read the image once, write z0
  once, at that bandwidth: what any stem pays beyond the product.
"""

CHANGES = """\
## What changed in the graphs, and why

Judged by per-node shares (ORT profiler, 1 thread) and by callgrind instruction counts of single-threaded
runs while the host was loaded (wall-clock figures were not trustworthy then), and checked bit-identical
against the previous graphs (same outputs to the last bit; no exact-profile graph changed):

- **Graphs of one size (the default export) gather their patches** instead of running a Conv (NCHW) or a
  6-D Transpose (NHWC): one Gather of the image's contiguous pixel runs (16 pixels of one channel from NCHW,
  16 x 3 values from NHWC; the index stored as first runs + offsets, a constant Add ORT folds at load), then
  MatMul, the patch-table Add and the prefix Concat. ORT runs Gather multi-threaded; the Conv's channels-last
  reorder and a Transpose run on one thread, and a parallel MatMul right after such a node starts late
  (`benchmarks/late_start.py`). int8 graphs quantize the gathered patches and scale the MatMul's int32 sums
  straight to float (no Q/DQ after it): as fast as the QLinearConv graph, half its error. Outputs stay within
  the same bounds (a MatMul sums in another order than the Conv); `benchmarks/projections.py` times every
  graph kind with every projection.
- **uint8 NHWC frames (preprocessing in the graph)**: the graph used to cast the whole frame to float32
  first and then patchify (Transpose) and pad (prefix rows) float32 values. It now patchifies and pads the
  *bytes* and casts the padded patches right before the MatMul: the Transpose and the Pad move a quarter of
  the bytes, and the Cast writes the MatMul's input directly (`export/build.py`: cast late when the graph's
  input is narrower than its compute dtype on the MatMul path; `export/graph.py: embed(cast_to=...)`).
- **int8**: the batch size for the prefix rows' Expand came from `Shape(images)`. After quantization the
  images' consumers read a dequantized copy, and ORT kept one full float32 DequantizeLinear of the images
  alive only to feed that Shape. Fast graphs now take the batch from the projected rows
  (`graph.prepend_rows(batch_of=z)`), so that pass is gone (fp32/fp16 graphs: no change in work; the
  Shape of a computed tensor costs what the Shape of the input did).

Tried and left out (see the per-node tables for what remains):

- Adding the table to the Conv's NCHW output before the channels-last Transpose (hoping ORT would fuse it
  into its NCHWc Conv as a Sum): ORT does not fuse an Add with a constant there; it reorders to NCHW,
  adds, and transposes again: one more full pass.
- ORT session options: `vitstem.runtime.load` keeps ORT's defaults (graph optimization level all, which
  the NCHWc Conv needs; intra-op spinning on, which lowers latency of back-to-back calls and costs idle CPU).
  A saved optimized model (`optimized_model_filepath`) only saves session-creation time, and NCHWc models
  are tied to the host's instruction set, so it is not the default either.
"""

LIMITS = """\
## What is left above the floor, and why

- **Patchify**: graphs of one size gather the image's pixel runs into patch rows with one Gather
  (`vitstem/export/build.py`, `_projection`), which ORT runs on all its threads: the bytes any patchify must
  move, in parallel. The rows "NCHW input, Conv" and "NCHW input, Transpose patchify" are the alternatives,
  which pay them on one thread (the Conv's `ReorderOutput`, NCHWc -> NHWC, after the product; the 6-D
  Transpose before it), and the parallel MatMul after a long single-threaded node starts late, so their timed
  medians sit further above their kernel sums. Graphs for several sizes keep the Conv or the Transpose (the
  Gather's index is bound to one size).
- **Table Add**: one read-modify-write of z0 (multi-threaded). Folding it into the product needs a Gemm with
  C = table (a copy of C into the output first in MLAS: the same pass) or ORT's Conv+Sum fusion (needs the
  table as an NCHWc tensor at run time: a copy per call).
- **Prefix rows** (`Concat`): a memcpy of z0. Padding zero rows before the product puts them in the product's
  output instead (graphs for several sizes on the Transpose path do), at the price of a Pad of the patches and a
  MatMul of P + N rows, measured slower than the Concat at batch 8 (`benchmarks/graph_variants.py`).
- Whole-model files (`vitstem deploy`): `benchmarks/whole_model.py` times them against torch.onnx's export;
  the stem is the same graph as here, and the encoder's blocks dwarf it, so they are not repeated here.
- fp16 on an x86 host without fp16 arithmetic: ORT inserts Casts around every float16 node it cannot run and
  computes in float32 (the fp16 floor does the same), so fp16 adds cast passes on both sides.
"""


def _fmt_us(us: float) -> str:
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def format_markdown(result: dict) -> str:
    head = result["host"]
    lines = ["# Performance: where the stem's time goes", "",
             f"Host: **{head['cpu']}**, {head['logical_cpus']} logical CPUs, {head['os']}; onnxruntime "
             f"{head['onnxruntime']}, Python {head['python']}. Spec `{head['spec']}`; {head['rounds']} interleaved "
             f"rounds, {head['profile_runs']} profiled runs per case; measured {head['date']} "
             f"(load average at start: {head['loadavg']}).", "",
             "Generated by `benchmarks/overhead_accounting.py` (every figure below; rerun it to update).", "",
             METHOD, "## Summary", "",
             "| graph | batch | threads | median | floor | × floor | above floor | unavoidable traffic |",
             "|---|---|---|---|---|---|---|---|"]
    cases = [c for part in result["parts"] for c in part["cases"]]
    by_key = {(c["name"], c["batch"], c["threads"]): c for c in cases}
    for c in cases:
        if c["floor"] is None:
            continue
        f = by_key[(c["floor"], c["batch"], c["threads"])]
        lines.append(f"| {c['name']} | {c['batch']} | {c['threads']} | {_fmt_us(c['median_us'])} | "
                     f"{_fmt_us(f['median_us'])} ({c['floor']}) | {c['median_us'] / f['median_us']:.2f} | "
                     f"{_fmt_us(c['median_us'] - f['median_us'])} | {_fmt_us(c['traffic_bytes'] / c['bandwidth'] * 1e6)} "
                     f"({c['traffic_bytes'] / 1e3:,.0f} kB) |")
    lines += ["", "## Per node", "",
              "Profiled per node; `product` marks the projection (Conv, MatMul, Gemm or their quantized forms).", ""]
    for c in cases:
        p = c["profile"]
        lines += [f"### {c['name']}, batch {c['batch']}, {c['threads']} thread(s)", "",
                  "| node (op) | µs | share | bytes in + out | µs at memcpy |", "|---|---|---|---|---|"]
        for key, us, nbytes in p["nodes"]:
            product = key.rsplit("(", 1)[-1].rstrip(")") in PRODUCTS
            lines.append(f"| {key}{' (product)' if product else ''} | {us:.1f} | {us / sum(t for _, t, _ in p['nodes']):.1%} | "
                         f"{nbytes} | {nbytes / c['bandwidth'] * 1e6:.1f} |")
        total = sum(us for _, us, _ in p["nodes"])
        lines += [f"| sum of the rows above | {total:.1f} | 100% | | |",
                  f"| nodes of one run (median over runs) | {p['node_sum_us']:.1f} | | | |",
                  f"| profiled session run (median) | {p['run_us']:.1f} | | | |", ""]
    return "\n".join(lines + [CHANGES, LIMITS])


PENDING = "*(idle run)*"


def template_markdown(args) -> str:
    """The same document before the idle run: prose and table layout, every figure a placeholder."""
    lines = ["# Performance: where the stem's time goes", "",
             f"Host: {PENDING}. Spec `{args.spec}`. Every figure in this file is written by "
             f"`PYTHONPATH=. .venv/bin/python benchmarks/overhead_accounting.py --out docs/performance.md` "
             "on an idle host; until then the cells say " + PENDING + ".", "", METHOD, "## Summary", "",
             "| graph | batch | threads | median | floor | × floor | above floor | unavoidable traffic |",
             "|---|---|---|---|---|---|---|---|"]
    for threads in args.threads:
        for batch in args.batch:
            lines += [f"| {name} | {batch} | {threads} | {PENDING} | {PENDING} ({floor}) | {PENDING} | {PENDING} | "
                      f"{PENDING} |" for name, floor, _ in GRAPHS]
    lines += ["", "## Per node", "", f"One table per graph, batch and thread count: {PENDING}.", ""]
    return "\n".join(lines + [CHANGES, LIMITS])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="vit_base_patch16_224")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--profile-runs", type=int, default=20)
    ap.add_argument("--out", help="write the markdown here (default: print it)")
    ap.add_argument("--json", help="also write the raw figures here")
    ap.add_argument("--template", action="store_true", help="write the document with placeholders, measure nothing")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.template:
        Path(args.out).write_text(template_markdown(args) + "\n") if args.out else print(template_markdown(args))
        return 0
    if args.child:
        print(json.dumps(measure(args.spec, args.batch, args.child, args.rounds, args.profile_runs)))
        return 0
    import onnxruntime as ort

    host = {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "os": platform.platform(),
            "python": platform.python_version(), "onnxruntime": ort.__version__, "spec": args.spec,
            "rounds": args.rounds, "profile_runs": args.profile_runs,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    result = {"host": host, "parts": [run_child(args, t) for t in args.threads]}
    text = format_markdown(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
