"""Timing of the Volta target: Llama-2-7B prefill at 4,096 tokens in event fidelity.

Run: ``python benchmarks/bench_volta.py``. DESIGN.md's goal is under 2 s per target
(template already on disk); the figures are for people to compare, not asserted by
tests. Also times one decode step and each attention strategy.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import timed  # noqa: E402

import hwsim  # noqa: E402
from hwsim import zoo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]




def main() -> None:
    if zoo.shipped_path("llama-2-7b", "prefill") is None:
        print("no shipped llama-2-7b template in traces/; nothing to time")
        return
    zoo.template("llama-2-7b", "prefill")  # the trace already on disk and loaded
    cases = [("llama-2-7b prefill 4096", "volta-llama2-7b-prefill.yaml", [])]
    cases += [(f"llama-2-7b prefill 4096, {s}", "volta-llama2-7b-prefill.yaml",
               [f"tiling.attention={s}"]) for s in ("standard", "flash")]
    cases += [("llama-2-7b decode, 4096 context", "volta-llama2-7b-decode.yaml", [])]
    for name, wl, sets in cases:
        for fidelity in ("event", "analytical"):
            def run(wl=wl, sets=sets, fidelity=fidelity):
                return hwsim.simulate(ROOT / "workloads" / wl, "volta", sets=sets,
                                      fidelity=fidelity)

            t, rep = timed(run)
            ms = rep.totals["latency_s"] * 1e3
            print(f"simulate {name} on volta ({fidelity}): {t:.3f} s "
                  f"({len(rep.ops)} ops, simulated latency {ms:.1f} ms)")


if __name__ == "__main__":
    main()
