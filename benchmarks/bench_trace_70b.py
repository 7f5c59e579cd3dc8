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
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import print_hand_count, print_trace_run, time_trace  # noqa: E402

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

    run = time_trace("llama-3.1-70b", args.seq, args.repeat,
                     "transformers.models.llama.modeling_llama")
    by_kind = run.graph.flops_by_kind()
    flops = by_kind.get("matmul", 0) + by_kind.get("attention", 0)
    print_trace_run(run, first_goal_s=10, rss_goal_mib=2048)
    print(f"matmul + attention FLOPs     {flops:,}")
    print_hand_count(flops, hand_count(args.seq))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
