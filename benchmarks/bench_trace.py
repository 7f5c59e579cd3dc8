"""Time and memory of tracing Llama-2-7B prefill at 2,048 tokens (DESIGN: < 3 s, < 1 GB).

    python benchmarks/bench_trace.py [--seq 2048] [--repeat 3]

Imports of torch, transformers and the Llama modeling code are timed apart and
excluded. Each run builds the model on the meta device, traces its forward on
fake tensors, fuses and lowers it to a verified graph. The first run pays
one-off costs (fake-tensor caches, lazy imports inside transformers); later runs
are the steady state. Memory: the process's peak resident set (``ru_maxrss``,
imports included) and, in a separate run under ``tracemalloc``, the peak of
Python allocations made by the trace alone.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HAND_COUNT = 29_261_612_187_648  # matmul + attention FLOPs at 2,048 tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401
    import transformers.models.llama.modeling_llama  # noqa: F401

    import hwsim.trace.api  # noqa: F401
    from hwsim.trace import trace
    imports_s = time.perf_counter() - start
    print(f"imports (excluded)           {imports_s:6.2f} s")

    times = []
    for i in range(args.repeat):
        start = time.perf_counter()
        graph = trace("llama-2-7b", seq_len=args.seq, phase="prefill")
        times.append(time.perf_counter() - start)
        print(f"build + trace, run {i + 1}        {times[-1]:6.2f} s   ({len(graph.ops)} ops)")

    by_kind = graph.flops_by_kind()
    flops = by_kind.get("matmul", 0) + by_kind.get("attention", 0)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    trace("llama-2-7b", seq_len=args.seq, phase="prefill")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    print(f"first run                    {times[0]:6.2f} s   (target < 3 s)")
    print(f"best run                     {min(times):6.2f} s")
    print(f"peak RSS, process            {rss_mib:6.0f} MiB (target < 1024 MiB)")
    print(f"peak Python allocations      {peak / 2**20:6.1f} MiB (tracemalloc, one trace)")
    print(f"matmul + attention FLOPs     {flops:,}")
    if args.seq == 2048:
        print(f"hand count                   {HAND_COUNT:,}  "
              f"({'equal' if flops == HAND_COUNT else 'DIFFERENT'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
