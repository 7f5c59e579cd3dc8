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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import print_hand_count, print_trace_run, time_trace  # noqa: E402

HAND_COUNT = 29_261_612_187_648  # matmul + attention FLOPs at 2,048 tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    run = time_trace("llama-2-7b", args.seq, args.repeat,
                     "transformers.models.llama.modeling_llama")
    by_kind = run.graph.flops_by_kind()
    flops = by_kind.get("matmul", 0) + by_kind.get("attention", 0)
    print_trace_run(run, first_goal_s=3, rss_goal_mib=1024)
    print(f"matmul + attention FLOPs     {flops:,}")
    if args.seq == 2048:
        print_hand_count(flops, HAND_COUNT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
