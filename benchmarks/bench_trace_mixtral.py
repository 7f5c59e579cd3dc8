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
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import print_hand_count, print_trace_run, time_trace  # noqa: E402

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

    run = time_trace("mixtral-8x7b", args.seq, args.repeat,
                     "transformers.models.mixtral.modeling_mixtral")
    graph = run.graph
    by_kind = graph.flops_by_kind()
    flops = sum(by_kind.get(k, 0) for k in ("matmul", "attention", "moe_experts"))
    print_trace_run(run)
    print(f"moe_experts ops              {sum(op.kind == 'moe_experts' for op in graph.ops)}")
    print(f"matmul + attention + moe     {flops:,}")
    print_hand_count(flops, hand_count(args.seq))
    if args.template:
        from hwsim.trace import trace_template

        start = time.perf_counter()
        tmpl = trace_template("mixtral-8x7b", "prefill")
        print(f"template (5 traces, fit)     {time.perf_counter() - start:6.2f} s   "
              f"({len(tmpl.ops)} ops)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
