"""Interleaved timing: every candidate runs once per round, round-robin, so drift (thermal,
other processes, frequency changes) hits all of them equally; the figure is the median round."""

from __future__ import annotations

import statistics
import time
from typing import Callable, Mapping


def _rotated(items: list, by: int) -> list:
    by %= max(len(items), 1)
    return items[by:] + items[:by]


def interleaved_times(candidates: Mapping[str, Callable[[], object]], runs: int, warmup: int = 3,
                      groups: Mapping[str, str] | None = None, settle_s: float = 0.0,
                      cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Wall-clock seconds of each of `runs` calls per candidate, after `warmup` untimed rounds.

    `cpu`, if given, receives this process's CPU seconds per call too: with one thread that is
    the work itself, unaffected by other processes taking the core (with more threads it also
    counts workers spinning while they wait).

    Candidates of one group (one framework's thread pool) run back to back and `settle_s` is
    slept between groups, so one framework's spinning workers do not steal the cores of the
    next; the order of groups and of candidates within a group rotates every round.
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    groups = groups or {}
    order: dict[str, list[str]] = {}
    for name in candidates:
        order.setdefault(groups.get(name, name), []).append(name)
    blocks = list(order.values())
    times: dict[str, list[float]] = {name: [] for name in candidates}
    if cpu is not None:
        cpu.update({name: [] for name in candidates})
    for round_ in range(-warmup, runs):
        for block in _rotated(blocks, round_):
            if settle_s:
                time.sleep(settle_s)
            for name in _rotated(block, round_):
                cpu_start, start = time.process_time(), time.perf_counter()
                candidates[name]()
                elapsed, cpu_elapsed = time.perf_counter() - start, time.process_time() - cpu_start
                if round_ >= 0:
                    times[name].append(elapsed)
                    if cpu is not None:
                        cpu[name].append(cpu_elapsed)
    return times


def summarize(seconds: list[float]) -> dict[str, float]:
    """Median, min and the quartiles of a list of run times, in milliseconds."""
    ms = sorted(s * 1e3 for s in seconds)
    q = statistics.quantiles(ms, n=4) if len(ms) > 1 else [ms[0]] * 3
    return {"median_ms": statistics.median(ms), "min_ms": ms[0], "q1_ms": q[0], "q3_ms": q[2], "runs": len(ms)}


def against_floor(times: Mapping[str, list[float]], cpu: Mapping[str, list[float]], floor: str) -> dict[str, dict]:
    """Each candidate's `summarize` figures with its ratios to the floor's: median, fastest, and median CPU time."""
    base, base_cpu = summarize(times[floor]), statistics.median(cpu[floor]) * 1e3
    figures = {}
    for name, seconds in times.items():
        fig, cpu_ms = summarize(seconds), statistics.median(cpu[name]) * 1e3
        fig.update(ratio_to_floor=fig["median_ms"] / base["median_ms"], min_ratio_to_floor=fig["min_ms"] / base["min_ms"],
                   cpu_median_ms=cpu_ms, cpu_ratio_to_floor=cpu_ms / base_cpu)
        figures[name] = fig
    return figures
