"""The timing helpers the benchmark scripts share.

Benchmarks are scripts (``python benchmarks/bench_x.py``), never timed tests:
their figures are read by people against DESIGN.md's speed goals.

- :func:`timed`: the median wall time of a repeated call.
- :func:`time_trace` and :func:`print_trace_run`: the time and memory of tracing a
  zoo model (``bench_trace*.py``), printed in one form for every model.
"""

from __future__ import annotations

import importlib
import resource
import statistics
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def timed(fn: Callable[[], T], repeat: int = 3) -> tuple[float, T]:
    """Median wall time of ``repeat`` calls of ``fn`` (seconds), and its last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


@dataclass
class TraceRun:
    """What :func:`time_trace` measured: the last run's graph, each run's wall time
    (seconds; the first pays the one-off costs), the process's peak resident set
    (MiB, ``ru_maxrss``, imports included) and the peak of Python allocations made by
    one more trace alone (bytes, ``tracemalloc``)."""

    graph: Any
    times_s: list[float]
    rss_mib: float
    peak_alloc_bytes: int


def time_trace(model: str, seq_len: int, repeat: int, modeling: str) -> TraceRun:
    """Trace ``model``'s prefill of ``seq_len`` tokens ``repeat`` times, printing each run.

    The imports of torch, transformers, the model's ``modeling`` module (e.g.
    ``transformers.models.llama.modeling_llama``) and hwsim's tracer are timed apart,
    printed as excluded, and not counted in any run."""
    start = time.perf_counter()
    importlib.import_module("torch")
    importlib.import_module("transformers")
    importlib.import_module(modeling)
    importlib.import_module("hwsim.trace.api")
    from hwsim.trace import trace
    imports_s = time.perf_counter() - start
    print(f"imports (excluded)           {imports_s:6.2f} s")

    times = []
    for i in range(repeat):
        start = time.perf_counter()
        graph = trace(model, seq_len=seq_len, phase="prefill")
        times.append(time.perf_counter() - start)
        print(f"build + trace, run {i + 1}        {times[-1]:6.2f} s   ({len(graph.ops)} ops)")

    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    tracemalloc.start()
    trace(model, seq_len=seq_len, phase="prefill")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return TraceRun(graph, times, rss_mib, peak)


def print_trace_run(run: TraceRun, first_goal_s: float | None = None,
                    rss_goal_mib: float | None = None) -> None:
    """The summary lines of a :class:`TraceRun`, with the speed goals where given."""
    first_goal = f"   (target < {first_goal_s:g} s)" if first_goal_s is not None else ""
    rss_goal = f" (target < {rss_goal_mib:g} MiB)" if rss_goal_mib is not None else ""
    print(f"first run                    {run.times_s[0]:6.2f} s{first_goal}")
    print(f"best run                     {min(run.times_s):6.2f} s")
    print(f"peak RSS, process            {run.rss_mib:6.0f} MiB{rss_goal}")
    print(f"peak Python allocations      {run.peak_alloc_bytes / 2**20:6.1f} MiB "
          "(tracemalloc, one trace)")


def print_hand_count(flops: int, expected: int) -> None:
    """The hand count of the traced FLOPs and whether the graph's count equals it."""
    print(f"hand count                   {expected:,}  "
          f"({'equal' if flops == expected else 'DIFFERENT'})")
