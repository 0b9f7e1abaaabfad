"""The run's CPU threads: `--torch_num_threads` as given, and what `auto` resolves to on this machine."""

import os
from typing import Optional


def parse_num_threads(value):
    """`torch_num_threads` as given: a positive integer (also as text) or 'auto'."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`torch_num_threads` must be a positive integer or 'auto', got {value!r}.")
    return value


def resolve_num_threads(value) -> Optional[int]:
    """The thread count `torch_num_threads` asks for: 'auto' is OMP_NUM_THREADS when set, else the cores idle right
    now (Linux: measured over 0.3 s from /proc/stat; elsewhere: the CPU count minus the 1-minute load average), at
    least 1; None leaves torch's own choice."""
    if value != "auto":
        return value
    if os.environ.get("OMP_NUM_THREADS", "").strip().isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    idle = _idle_cores(cores)
    return max(1, min(cores, round(idle)))


def _idle_cores(cores: int, seconds: float = 0.3) -> float:
    import time

    def idle_and_total():
        with open("/proc/stat") as handle:
            ticks = [int(field) for field in handle.readline().split()[1:]]
        return ticks[3] + ticks[4], sum(ticks[:8])  # idle + iowait; user..steal

    try:
        idle_before, total_before = idle_and_total()
        time.sleep(seconds)
        idle_after, total_after = idle_and_total()
        return (os.cpu_count() or cores) * (idle_after - idle_before) / max(1, total_after - total_before)
    except (OSError, ValueError, IndexError):
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        return cores - load


__all__ = ["parse_num_threads", "resolve_num_threads"]
