"""CPU threads for torch on shared machines.

LDG nodes and CI runners are shared. torch's default pool takes every core
and its OpenMP workers spin while they wait, so next to one other
CPU-bound process two training threads on two cores ran at 36 % of their
quiet speed here, and one thread at 77 % (``benchmarks/train.py``). So
the commands take the cores this process may use (CPU affinity and the
cgroup's CPU quota) minus those other processes keep busy right now, and
run torch on that many threads unless told otherwise (an option, or
``$DEEPCLEAN_THREADS``, which tasks forward into containers).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
LOADAVG = Path("/proc/loadavg")


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by the
    cgroup (v2) CPU quota."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        return cores
    if quota == "max":
        return cores
    return max(1, min(cores, math.ceil(int(quota) / int(period))))


def busy_cores(samples: int = 5, interval: float = 0.02) -> int:
    """Runnable tasks besides this one, median of a few looks at
    ``/proc/loadavg`` (0 where it cannot be read)."""
    counts = []
    for index in range(samples):
        try:
            running = LOADAVG.read_text().split()[3].split("/")[0]
        except (OSError, IndexError):
            return 0
        counts.append(max(0, int(running) - 1))
        if index + 1 < samples:
            time.sleep(interval)
    return round(statistics.median(counts))


THREADS_VARIABLE = "DEEPCLEAN_THREADS"


def choose_threads(requested: int | None = None) -> int:
    """``requested``, else ``$DEEPCLEAN_THREADS``, else the available cores
    that other processes leave free (at least 1)."""
    if requested is None and os.environ.get(THREADS_VARIABLE):
        requested = int(os.environ[THREADS_VARIABLE])
    if requested is not None:
        if requested < 1:
            raise ValueError(f"threads must be at least 1, got {requested}")
        return requested
    return max(1, available_cores() - busy_cores())


def configure_threads(requested: int | None = None) -> int:
    """Set torch's intra-op threads to :func:`choose_threads`; returns the
    number."""
    import torch

    threads = choose_threads(requested)
    torch.set_num_threads(threads)
    return threads
