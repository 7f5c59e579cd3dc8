"""Timing of the simulator's spine: load a shipped template, instantiate, simulate.

Run: ``python benchmarks/bench_spine.py``. Prints one line per measurement; the
figures are compared by people with DESIGN.md's speed goals (Llama-2-7B prefill
at 4,096 tokens under 2 s per target; one decode step at 4,096 tokens of context
under 0.5 s), not asserted by tests.
"""

from __future__ import annotations

import sys
import time
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
    zoo.template.cache_clear()
    t, tmpl = timed(lambda: (zoo.template.cache_clear(), zoo.template("llama-2-7b", "prefill"))[1])
    print(f"load llama-2-7b prefill template: {t * 1e3:.1f} ms ({len(tmpl.ops)} ops)")
    t, g = timed(lambda: tmpl.instantiate(batch=1, seq_len=4096, kv_len=0))
    print(f"instantiate at 4,096 tokens: {t * 1e3:.1f} ms")
    for name, path, sets in [
        ("llama-2-7b prefill 4096", ROOT / "workloads/llama2-7b-prefill.yaml", []),
        ("llama-2-7b decode, 4096 context", ROOT / "workloads/llama2-7b-decode.yaml", []),
        ("bert-base 512", ROOT / "workloads/bert-base.yaml", []),
    ]:
        for fidelity in ("event", "analytical"):
            t, rep = timed(lambda path=path, sets=sets, fidelity=fidelity: hwsim.simulate(
                path, "roofline", sets=sets, fidelity=fidelity))
            print(f"simulate {name} on roofline ({fidelity}): {t * 1e3:.1f} ms "
                  f"({len(rep.ops)} ops, simulated latency {rep.totals['latency_s'] * 1e3:.2f} ms)")
    n = 50
    t0 = time.perf_counter()
    for i in range(n):
        hwsim.simulate(ROOT / "workloads/bert-base.yaml", "roofline",
                       sets=[f"seq_len={128 + 8 * i}"], fidelity="analytical")
    rate = n / (time.perf_counter() - t0)
    print(f"bert-base sweep points, analytical, one core: {rate:.1f} points/s")


if __name__ == "__main__":
    main()
