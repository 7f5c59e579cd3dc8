"""Time and memory of tracing Llama-3.1-70B prefill at 8,192 tokens (issue 12: < 10 s, < 2 GB).

    python benchmarks/bench_trace_70b.py [--seq 8192] [--repeat 2]

The model is built from its shipped config (hwsim/trace/configs/llama-3.1-70b.yaml,
the model card's config.json) with transformers' AutoModelForCausalLM on the
meta device, its forward runs on fake tensors while the recorder writes it
down, and the record is fused and lowered to a verified graph: the same path
as ``hwsim trace llama-3.1-70b`` and as any ``model: config.json``. Imports of
torch, transformers and the Llama modeling code are timed apart and excluded.
The first run pays one-off costs (fake-tensor caches, lazy imports inside
transformers); later runs are the steady state. Memory: the process's peak
resident set (``ru_maxrss``, imports included) and, in a separate run under
``tracemalloc``, the peak of Python allocations made by the trace alone.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Llama-3.1-70B (config.json): d=8192, 80 layers, 64 heads over 8 KV heads of 128,
# SwiGLU FFN 28672, vocabulary 128256; the trace computes logits at every position.
D, LAYERS, KV_DIM, FFN, VOCAB = 8192, 80, 8 * 128, 28672, 128256


def hand_count(s: int) -> int:
    layer = (2 * s * D * D + 2 * 2 * s * D * KV_DIM + 2 * s * D * D  # q, k, v, o
             + 3 * 2 * s * D * FFN                                   # gate, up, down
             + 4 * s * s * D)                                        # Q·Kᵀ and P·V
    return LAYERS * layer + 2 * s * D * VOCAB                        # LM head, all positions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # transformers' deprecation notices

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
        graph = trace("llama-3.1-70b", seq_len=args.seq, phase="prefill")
        times.append(time.perf_counter() - start)
        print(f"build + trace, run {i + 1}        {times[-1]:6.2f} s   ({len(graph.ops)} ops)")

    by_kind = graph.flops_by_kind()
    flops = by_kind.get("matmul", 0) + by_kind.get("attention", 0)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    trace("llama-3.1-70b", seq_len=args.seq, phase="prefill")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    print(f"first run                    {times[0]:6.2f} s   (target < 10 s)")
    print(f"best run                     {min(times):6.2f} s")
    print(f"peak RSS, process            {rss_mib:6.0f} MiB (target < 2048 MiB)")
    print(f"peak Python allocations      {peak / 2**20:6.1f} MiB (tracemalloc, one trace)")
    print(f"matmul + attention FLOPs     {flops:,}")
    expected = hand_count(args.seq)
    print(f"hand count                   {expected:,}  "
          f"({'equal' if flops == expected else 'DIFFERENT'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
