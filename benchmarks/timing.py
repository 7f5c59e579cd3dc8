"""The one timing helper the benchmark scripts share.

Benchmarks are scripts (``python benchmarks/bench_x.py``), never timed tests:
their figures are read by people against DESIGN.md's speed goals.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, TypeVar

T = TypeVar("T")


def timed(fn: Callable[[], T], repeat: int = 3) -> tuple[float, T]:
    """Median wall time of ``repeat`` calls of ``fn`` (seconds), and its last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out
