"""Timing of the ARMv8 target: BERT-base at 512 tokens on 64 Kunpeng 920 cores.

Run: ``python benchmarks/bench_armv8.py``. The issue's goal is under 1 s in event
fidelity (template already on disk), for each GEMM strategy; also times GPT-2 and
TinyLlama-1.1B decode steps and an analytical BERT sweep point. The figures are
for people to compare, not asserted by tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import timed  # noqa: E402

import hwsim  # noqa: E402
from hwsim import zoo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("openblas", "iaat", "autotsmm", "auto")




def main() -> None:
    cases = []
    if zoo.shipped_path("bert-base", "prefill") is not None:
        zoo.template("bert-base", "prefill")  # the trace on disk and loaded
        cases += [(f"bert-base 512, gemm={s}", "armv8-bert-base.yaml", [f"tiling.gemm={s}"],
                   "event") for s in STRATEGIES]
        cases += [("bert-base 512, gemm=auto", "armv8-bert-base.yaml", [], "analytical")]
    else:
        print("no shipped bert-base template in traces/; skipping BERT")
    if zoo.shipped_path("gpt2", "decode") is not None:
        cases += [("gpt2 decode, 1024 context", "gpt2-small-generation.yaml",
                   ["dtype=fp32"], "event")]
    cases += [("tinyllama-1.1b decode, 1024 context", "armv8-tinyllama-decode.yaml", [],
               "event")]
    for name, wl, sets, fidelity in cases:
        def run(wl=wl, sets=sets, fidelity=fidelity):
            return hwsim.simulate(ROOT / "workloads" / wl, "armv8", sets=sets,
                                  fidelity=fidelity)

        t, rep = timed(run)
        ms = rep.totals["latency_s"] * 1e3
        print(f"simulate {name} on armv8-kunpeng920 ({fidelity}): {t:.3f} s "
              f"({len(rep.ops)} ops, simulated latency {ms:.2f} ms)")


if __name__ == "__main__":
    main()
