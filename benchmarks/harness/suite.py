"""One benchmark run: every candidate for each batch size, interleaved, with each figure's ratio to
the bare-MatMul floor and each z0 checked against the exact NumPy reference before it is timed.

Each thread count is measured in a fresh `python -m vitstem bench --in-process` child: ORT's
global pool and TensorFlow's pools are sized once per process, and once ORT has a global pool
every later session in that process must use it (quantization's calibration sessions fail), so
the caller's process is never touched.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from vitstem.errors import VitstemError
from vitstem.spec import Spec
from .quiet import ForeignLoad, wait_for_quiet
from .timing import against_floor, interleaved_times

# Targets of issue 6 (ViT-B/16 at 224, float32, CPU, 2 threads): graph time / bare MatMul time.
TARGET_SPEC, TARGET_THREADS = "vit_base_patch16_224", 2
GRAPH_TARGETS = {1: 1.10, 8: 1.20}
# Backends must be no slower than the peer doing the same math in their framework.
PEER_TARGETS = {"torch_vitstem": "torch_timm", "tf_vitstem": "tf_handwritten"}
SETTLE_S = 0.005  # pause between framework groups, longer than ORT's and OpenMP's spin-waits


def machine() -> dict:
    """CPU model, core count, OS, Python and load average: what a figure depends on."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    info = {"cpu": model, "logical_cpus": os.cpu_count(), "os": platform.platform(), "python": platform.python_version()}
    if hasattr(os, "getloadavg"):
        info["load_average_1m"] = round(os.getloadavg()[0], 2)
    return info


def sample_images(spec: Spec, batch: int, seed: int = 0) -> np.ndarray:
    """Seeded float32 pixels in the spec's layout: 0..255 integers with preprocessing, N(0, 1) without."""
    rng = np.random.default_rng(seed)
    shape = spec.input_shape(batch)
    if spec.input.preprocess is not None:
        return rng.integers(0, 256, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def _check(candidate, output, exact: np.ndarray, bound) -> dict:
    from .candidates import to_numpy

    z = to_numpy(output)
    if z.shape != exact.shape:
        raise AssertionError(f"{candidate.name} returned shape {z.shape}, expected {exact.shape}")
    err = np.abs(z.astype(np.float64) - exact)
    out = {"max_abs_diff_vs_exact": float(err.max())}
    if bound is not None:  # two fast engines may differ by 2x the bound; one fast engine by 1x
        out["within_fast_bound"] = bool((err <= bound).all())
    return out


def _fast_bound(spec: Spec, weights, images):
    try:
        from vitstem.backends.numpy.bound import fast_error_bound
    except ModuleNotFoundError:
        return None
    return fast_error_bound(spec, weights, images)


def run_cases(spec: Spec, weights: Mapping[str, np.ndarray], batches: Sequence[int], threads: int, runs: int,
              warmup: int = 5, only: Sequence[str] | None = None, log=print, wait_quiet_s: float = 0.0) -> dict:
    """All candidates at `threads` threads for each batch size, in this process.

    `wait_quiet_s`: before timing each batch size, wait up to this long for other processes to
    leave the CPUs idle. Each case records the CPUs other processes kept busy while it was timed.
    """
    from vitstem.backends.numpy.stem import forward as reference
    from .candidates import CANDIDATES, FLOOR, Context, Unavailable, configure_threads, import_frameworks

    versions = import_frameworks()
    thread_setting = configure_threads(threads)
    chosen = [c for c in CANDIDATES if only is None or c.name in only or c.name == FLOOR]
    cache: dict = {}
    cases = []
    for batch in batches:
        images = sample_images(spec, batch)
        ctx = Context(spec, weights, images, threads, cache)
        exact = reference(spec, weights, images, profile="exact").astype(np.float64)
        bound = _fast_bound(spec, weights, images)
        calls, checks, unavailable = {}, {}, {}
        for c in chosen:
            try:
                call = c.build(ctx)
            except (Unavailable, VitstemError) as exc:  # e.g. an export option the spec cannot take
                unavailable[c.name] = str(exc)
                continue
            result = call()
            checks[c.name] = _check(c, result, exact, bound) if c.computes_z0 else {}
            calls[c.name] = call
        if wait_quiet_s:
            wait_for_quiet(wait_quiet_s, log=log)
        log(f"timing {len(calls)} candidates at batch {batch}, {threads} threads, {runs} interleaved runs ...")
        probe, cpu = ForeignLoad().start(), {}
        times = interleaved_times(calls, runs, warmup, groups={c.name: c.group for c in chosen}, settle_s=SETTLE_S,
                                  cpu=cpu)
        foreign = probe.stop()
        figures = against_floor(times, cpu, FLOOR)
        figures = {c.name: {**figures[c.name], "what": c.what, **checks[c.name]} for c in chosen if c.name in times}
        cases.append({"batch": batch, "threads": threads, "figures": figures, "unavailable": unavailable,
                      "foreign_cpu_load": None if foreign is None else round(foreign, 3)})
    return {"versions": versions, "thread_setting": {str(threads): thread_setting}, "cases": cases,
            "graph_ops": cache.get("graph_ops", {})}


def targets(spec: Spec, cases: list[dict]) -> list[dict]:
    """Every target of issue 6 that these cases measure: value, limit and whether it is met."""
    out = []
    for case in cases:
        figs, b, t = case["figures"], case["batch"], case["threads"]
        if spec.name == TARGET_SPEC and t == TARGET_THREADS and b in GRAPH_TARGETS and "ort_vitstem" in figs:
            ratio = figs["ort_vitstem"]["ratio_to_floor"]
            out.append({"target": f"ort_vitstem / floor at batch {b}, {t} threads", "value": ratio,
                        "limit": GRAPH_TARGETS[b], "met": ratio <= GRAPH_TARGETS[b],
                        "min_ratio": figs["ort_vitstem"]["min_ratio_to_floor"]})
        for ours, peer in PEER_TARGETS.items():
            if ours in figs and peer in figs:
                ratio = figs[ours]["median_ms"] / figs[peer]["median_ms"]
                out.append({"target": f"{ours} / {peer} at batch {b}, {t} threads", "value": ratio,
                            "limit": 1.0, "met": ratio <= 1.0})
    return out


def _child(spec: Spec, weights_path: str, batches, threads: int, runs: int, warmup: int, only,
           wait_quiet_s: float) -> dict:
    """`run_cases` for one thread count in a fresh interpreter."""
    with tempfile.TemporaryDirectory(prefix="vitstem-bench-") as tmp:
        spec_path, out = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(spec.to_json())
        cmd = [sys.executable, "-m", "vitstem", "bench", str(spec_path), "--weights", weights_path,
               "--batch", *map(str, batches), "--threads", str(threads), "--runs", str(runs),
               "--warmup", str(warmup), "--wait-quiet", str(wait_quiet_s), "--json", str(out), "--in-process"]
        if only:
            cmd += ["--only", *only]
        _run_child(cmd)
        return json.loads(out.read_text())


def _run_child(cmd) -> None:
    """Run a benchmark child, passing its progress through; its one-line user error (exit 2, e.g. a missing
    extra) becomes this process's VitstemError instead of a CalledProcessError traceback."""
    from vitstem.errors import VitstemError

    prefix, error = "vitstem: error: ", None
    with subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}) as child:
        for line in child.stderr:
            if line.startswith(prefix):
                error = line[len(prefix):].rstrip("\n")
            else:
                sys.stderr.write(line)
    if child.returncode == 2 and error is not None:
        raise VitstemError(error)
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, cmd)


def run_benchmark(spec: Spec, weights: Mapping[str, np.ndarray], batches: Sequence[int], threads: Sequence[int],
                  runs: int = 30, warmup: int = 5, only: Sequence[str] | None = None, log=print,
                  wait_quiet_s: float = 0.0) -> dict:
    """The full result document: machine, versions, every case and the targets (one child per thread count)."""
    from vitstem.spec import save_weights

    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    info = machine()
    cases, thread_setting, versions, graph_ops = [], {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="vitstem-bench-") as tmp:
        weights_path = str(save_weights(weights, Path(tmp) / "weights.safetensors", spec))
        for t in threads:
            log(f"measuring {t} thread(s) in a fresh process ...")
            child = _child(spec, weights_path, batches, t, runs, warmup, only, wait_quiet_s)
            cases += child["cases"]
            thread_setting.update(child["thread_setting"])
            versions, graph_ops = child["versions"], child.get("graph_ops", {})
    info["load_average_1m_after"] = machine().get("load_average_1m")
    return {
        "spec": spec.name, "spec_digest": spec.digest(), "date": started, "machine": info,
        "versions": versions, "thread_setting": thread_setting, "runs": runs, "warmup": warmup,
        "statistic": "median of interleaved runs; ratio_to_floor = median / floor median; min_ratio_to_floor = "
                     "min / floor min (robust when foreign_cpu_load > 0: other processes shared the CPUs); "
                     "cpu_ratio_to_floor = median process CPU time / the floor's (the work itself at 1 thread)",
        "graph_ops": graph_ops, "cases": cases, "targets": targets(spec, cases),
    }


def format_report(result: dict) -> str:
    """The human-readable table: every figure, its ratio to the floor, and the targets."""
    m = result["machine"]
    lines = [f"vitstem bench {result['spec']}  {result['date']}  {m['cpu']} ({m['logical_cpus']} CPUs), "
             f"load {m.get('load_average_1m', '?')}", f"median of {result['runs']} interleaved runs after "
             f"{result['warmup']} warm-up rounds; x = median / floor median; min x = fastest / fastest floor; "
             "cpu x = median CPU time / the floor's"]
    for name, ops in result.get("graph_ops", {}).items():
        lines.append(f"{name} graph: {' -> '.join(ops)}")
    for case in result["cases"]:
        foreign = case.get("foreign_cpu_load")
        lines.append(f"\nbatch {case['batch']}, {case['threads']} threads"
                     + ("" if foreign is None else f"  (other processes kept {foreign:.2f} CPUs busy meanwhile)"))
        for name, f in sorted(case["figures"].items(), key=lambda kv: kv[1]["median_ms"]):
            check = ""
            if "max_abs_diff_vs_exact" in f:
                check = f"  max|z - exact| {f['max_abs_diff_vs_exact']:.1e}"
                if "within_fast_bound" in f:
                    check += " (within bound)" if f["within_fast_bound"] else " (OUTSIDE bound)"
            lines.append(f"  {name:20s} {f['median_ms']:9.3f} ms  x{f['ratio_to_floor']:5.2f} "
                         f"(min x{f['min_ratio_to_floor']:.2f}, cpu x{f['cpu_ratio_to_floor']:.2f})  {f['what']}{check}")
        for name, why in case["unavailable"].items():
            lines.append(f"  {name:20s} unavailable: {why}")
    if result["targets"]:
        lines.append("\ntargets")
        for t in result["targets"]:
            lines.append(f"  {'met    ' if t['met'] else 'MISSED '} {t['target']}: {t['value']:.3f} (limit {t['limit']})")
    return "\n".join(lines)
