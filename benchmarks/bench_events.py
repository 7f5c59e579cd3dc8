"""The event core's exact paths on the same ops: arrival order, the event loop, the C loop.

    python benchmarks/bench_events.py [workload.yaml] [--target ascend] [--repeat 3]

Lowers every distinct op of a workload (default: the Llama-2-7B prefill at 4K with 32
distinct layers that ``bench_speed.py`` writes, made here in a temporary folder) on a
target at the event fidelity, keeps their task lists, then times
:func:`hwsim.engine.run_events` over all of them in one process, CPU seconds, the
best of ``--repeat``: with the arrival-order path (``events.ARRIVAL_ORDER``, the
default in Python), with the event loop alone, and with the compiled event loop where it
is built (``events.COMPILED``), and checks that all give every start and end to the
last bit. Lowering and pricing are not timed: this is the engine's share
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
    # (name, ARRIVAL_ORDER, COMPILED): the Python paths, then the C loop where built
    ways = [("event loop alone", False, False), ("arrival order first", True, False)]
    if events._cevents is not None:
        ways.append(("compiled event loop", True, True))
    best = {}
    schedules = {}
    was = events.ARRIVAL_ORDER, events.COMPILED
    try:
        for _ in range(args.repeat):
            for name, arrival, compiled in ways:
                events.ARRIVAL_ORDER, events.COMPILED = arrival, compiled
                events._DECLINED.clear()
                t0 = time.process_time()
                got = [events.run_events(t, p) for t, p in lists]
                cpu = time.process_time() - t0
                best[name] = min(best.get(name, cpu), cpu)
                schedules[name] = got
    finally:
        events.ARRIVAL_ORDER, events.COMPILED = was
    ref = schedules["event loop alone"]
    same = all((a.starts_s, a.ends_s, a.latency_s) == (b.starts_s, b.ends_s, b.latency_s)
               for got in schedules.values() for a, b in zip(got, ref))
    for name, _, _ in ways:
        print(f"{name:26s}{best[name]:6.3f} s CPU (best of {args.repeat}; "
              f"{best['event loop alone'] / best[name]:.2f}x the loop alone)")
    if events._cevents is None:
        print("compiled event loop       not built (python setup.py build_ext --inplace)")
    print(f"the same schedules        {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
