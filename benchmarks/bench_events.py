"""The event core's two exact paths on the same ops: arrival order, then the event loop.

    python benchmarks/bench_events.py [workload.yaml] [--target ascend] [--repeat 3]

Lowers every distinct op of a workload (default: the Llama-2-7B prefill at 4K with 32
distinct layers that ``bench_speed.py`` writes, made here in a temporary folder) on a
target at the event fidelity, keeps their task lists, then times
:func:`hwsim.engine.run_events` over all of them in one process, CPU seconds, the
best of ``--repeat``: with the arrival-order path (``events.ARRIVAL_ORDER``, the
default) and with the event loop alone, and checks that both give every start and
end to the last bit. Lowering and pricing are not timed: this is the engine's share
of an event run, measured apart from the noise of a whole first ``simulate()``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def task_lists(workload: str, target: str) -> list[tuple[list, dict]]:
    """The task lists (and pools) of the distinct ops of ``workload`` on ``target``."""
    import importlib

    from hwsim.engine import events

    # (the module, not the function hwsim.simulate that the package binds to its name)
    simulate_module = importlib.import_module("hwsim.simulate")
    kept = []
    run = events.run_events

    def keep(tasks, pools=None):
        kept.append((list(tasks), pools))
        return run(tasks, pools)

    simulate_module.engine.run_events = keep
    try:
        import hwsim

        hwsim.simulate(workload, target, fidelity="event")
    finally:
        simulate_module.engine.run_events = run
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", nargs="?")
    parser.add_argument("--target", default="ascend")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from hwsim.engine import events

    with tempfile.TemporaryDirectory() as tmp:
        workload = args.workload
        if workload is None:
            from bench_speed import distinct_workload

            workload = str(Path(tmp) / "llama-2-7b-distinct.yaml")
            distinct_workload(Path(workload), "llama-2-7b", 4096, 32, 1)
        lists = task_lists(workload, args.target)
    n_tasks = sum(len(t) for t, _ in lists)
    print(f"{len(lists)} distinct ops, {n_tasks} tasks ({args.target})")
    best = {}
    schedules = {}
    for _ in range(args.repeat):
        for arrival in (True, False):
            events.ARRIVAL_ORDER = arrival
            events._DECLINED.clear()
            t0 = time.process_time()
            got = [events.run_events(t, p) for t, p in lists]
            cpu = time.process_time() - t0
            best[arrival] = min(best.get(arrival, cpu), cpu)
            schedules[arrival] = got
    events.ARRIVAL_ORDER = True
    same = all((a.starts_s, a.ends_s, a.latency_s) == (b.starts_s, b.ends_s, b.latency_s)
               for a, b in zip(schedules[True], schedules[False]))
    print(f"event loop alone          {best[False]:6.3f} s CPU (best of {args.repeat})")
    print(f"arrival order first       {best[True]:6.3f} s CPU "
          f"({best[False] / best[True]:.2f}x)")
    print(f"the same schedules        {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
