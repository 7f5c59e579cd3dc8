"""Time and memory of tracing Mixtral-8x7B prefill from its config (issue 12), and of
fitting its template.

    python benchmarks/bench_trace_mixtral.py [--seq 2048] [--repeat 2] [--template]

The model is built from its shipped config (hwsim/trace/configs/mixtral-8x7b.yaml,
the model card's config.json) with transformers' AutoModelForCausalLM on the
meta device; its forward runs on fake tensors, each layer's router as ordinary
ops and its experts module as one ``moe_experts`` node (hwsim/trace/moe.py: the
experts' own loop is not run), and the record is fused and lowered to a
verified graph. Imports of torch, transformers and the Mixtral modeling code
are timed apart and excluded; the first run pays one-off costs (fake-tensor
caches, lazy imports inside transformers). Memory: the process's peak resident
set (``ru_maxrss``, imports included) and, under ``tracemalloc``, the peak of
Python allocations made by one trace. ``--template`` also times the 2x2 grid,
fit and check that ``python -m hwsim.trace.ship`` runs.
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

# Mixtral-8x7B (config.json): d=4096, 32 layers, 32 heads over 8 KV heads of 128,
# 8 SwiGLU experts of width 14336 per layer, top-2, vocabulary 32000; the trace
# computes logits at every position.
D, LAYERS, KV_DIM, FFN, EXPERTS, TOP_K, VOCAB = 4096, 32, 8 * 128, 14336, 8, 2, 32000


def hand_count(s: int) -> int:
    """matmul + attention + moe_experts FLOPs of a prefill of ``s`` tokens."""
    layer = (2 * s * D * D + 2 * 2 * s * D * KV_DIM + 2 * s * D * D  # q, k, v, o
             + 4 * s * s * D                                         # Q·Kᵀ and P·V
             + 2 * s * D * EXPERTS                                   # router
             + s * TOP_K * (2 * D * 2 * FFN + 2 * FFN * D + 3 * FFN))  # 2 SwiGLU experts
    return LAYERS * layer + 2 * s * D * VOCAB                        # LM head, all positions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--template", action="store_true", help="also fit the prefill template")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # transformers' deprecation notices

    start = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401
    import transformers.models.mixtral.modeling_mixtral  # noqa: F401

    import hwsim.trace.api  # noqa: F401
    from hwsim.trace import trace
    imports_s = time.perf_counter() - start
    print(f"imports (excluded)           {imports_s:6.2f} s")

    times = []
    for i in range(args.repeat):
        start = time.perf_counter()
        graph = trace("mixtral-8x7b", seq_len=args.seq, phase="prefill")
        times.append(time.perf_counter() - start)
        print(f"build + trace, run {i + 1}        {times[-1]:6.2f} s   ({len(graph.ops)} ops)")

    by_kind = graph.flops_by_kind()
    flops = sum(by_kind.get(k, 0) for k in ("matmul", "attention", "moe_experts"))
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    trace("mixtral-8x7b", seq_len=args.seq, phase="prefill")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    print(f"first run                    {times[0]:6.2f} s")
    print(f"best run                     {min(times):6.2f} s")
    print(f"peak RSS, process            {rss_mib:6.0f} MiB")
    print(f"peak Python allocations      {peak / 2**20:6.1f} MiB (tracemalloc, one trace)")
    print(f"moe_experts ops              {sum(op.kind == 'moe_experts' for op in graph.ops)}")
    print(f"matmul + attention + moe     {flops:,}")
    expected = hand_count(args.seq)
    print(f"hand count                   {expected:,}  "
          f"({'equal' if flops == expected else 'DIFFERENT'})")
    if args.template:
        from hwsim.trace import trace_template

        start = time.perf_counter()
        tmpl = trace_template("mixtral-8x7b", "prefill")
        print(f"template (5 traces, fit)     {time.perf_counter() - start:6.2f} s   "
              f"({len(tmpl.ops)} ops)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
