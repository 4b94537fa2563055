"""Timing and memory helpers shared by the benchmark scripts."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def median_time_ms(function: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``function()`` in milliseconds over ``repeats`` runs."""
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return 1e3 * statistics.median(samples)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_extra_memory_mb(function: Callable[[], object]) -> float:
    """Peak resident memory ``function()`` adds beyond what was resident before, in MB.

    Resets the kernel's peak-RSS mark (``/proc/self/clear_refs``, Linux) so earlier peaks
    (imports, JIT compilation) do not count.
    """
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    function()
    return (_status_kib("VmHWM") - before) / 1024


def machine_line() -> str:
    import os

    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"python {platform.python_version()}, torch {torch.__version__}, "
            f"torch threads {torch.get_num_threads()}")
