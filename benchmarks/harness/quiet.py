"""How busy the machine is with OTHER processes, from /proc/stat (Linux; None elsewhere).

A 2-thread timing on a 2-core machine is only meaningful when nothing else runs: the figures
record the foreign CPU load during each measurement, and `wait_for_quiet` can hold a run back
until the machine is idle.
"""

from __future__ import annotations

import os
import time


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies summed over all CPUs since boot."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


class ForeignLoad:
    """Measures, between start() and stop(), the CPUs' busy time not spent by this process."""

    def start(self) -> "ForeignLoad":
        self._jiffies, self._own = _cpu_jiffies(), os.times()
        return self

    def stop(self) -> float | None:
        """Foreign busy CPUs on average (0 = idle machine, 1 = one core fully used by others)."""
        end, own = _cpu_jiffies(), os.times()
        if self._jiffies is None or end is None or end[1] == self._jiffies[1]:
            return None
        hz = os.sysconf("SC_CLK_TCK")
        busy_s = (end[0] - self._jiffies[0]) / hz
        own_s = (own.user - self._own.user) + (own.system - self._own.system)
        wall_s = (end[1] - self._jiffies[1]) / hz / (os.cpu_count() or 1)
        return max(0.0, (busy_s - own_s) / wall_s) if wall_s > 0 else None


def foreign_load(seconds: float = 1.0) -> float | None:
    """Average CPUs kept busy by other processes over the next `seconds`."""
    probe = ForeignLoad().start()
    time.sleep(seconds)
    return probe.stop()


def wait_for_quiet(max_wait_s: float, threshold: float = 0.15, log=print) -> float | None:
    """Sample the foreign load each second until it is below `threshold` CPUs or time runs out;
    returns the last sample."""
    deadline = time.monotonic() + max_wait_s
    load = foreign_load()
    while load is not None and load > threshold and time.monotonic() < deadline:
        log(f"waiting for a quiet machine: other processes use {load:.2f} CPUs")
        load = foreign_load()
    return load
