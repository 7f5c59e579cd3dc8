"""Timing of the SpAtten target on the released GPT-2 traces and the graph workloads.

Run: ``python benchmarks/bench_spatten.py``. Issue 5's goal: the full released
GPT-2 small trace (4,608 head-steps) simulates in under 5 s in event fidelity,
CSV parsing and graph building included. The traces are read from
``../shared/data/spatten/``; without them only the graph workloads are timed.
The figures are for people to compare, not asserted by tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import timed  # noqa: E402

import hwsim  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "spatten"




def main() -> None:
    cases = []
    if (DATA / "gpt2-small-wikitext2-pruned.csv").exists():
        cases += [("GPT-2 small trace, pruned (4,608 rows)",
                   "spatten-gpt2-small-trace-pruned.yaml"),
                  ("GPT-2 small trace, dense (4,608 rows)", "spatten-gpt2-small-trace-dense.yaml"),
                  ("GPT-2 medium trace, pruned", "spatten-gpt2-medium-trace-pruned.yaml")]
    else:
        print(f"no traces in {DATA}; timing the graph workloads only")
    cases += [("BERT-base 512 pruned", "spatten-bert-base-pruned.yaml"),
              ("GPT-2 small generation pruned", "spatten-gpt2-small-pruned.yaml")]
    for name, wl in cases:
        for target in ("spatten", "spatten-eighth"):
            for fidelity in ("event", "analytical"):
                def run(wl=wl, target=target, fidelity=fidelity):
                    return hwsim.simulate(ROOT / "workloads" / wl, target, fidelity=fidelity)

                t, rep = timed(run)
                us = rep.totals["latency_s"] * 1e6
                print(f"simulate {name} on {target} ({fidelity}): {t:.3f} s "
                      f"({len(rep.ops)} ops, simulated latency {us:,.0f} us)")


if __name__ == "__main__":
    main()
