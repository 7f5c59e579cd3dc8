"""The event loop in C (hwsim/engine/_cevents.c) gives the Python loop's schedule to the
last bit, and bad input is told as the Python loop tells it.

The compiled loop is optional (built by an install or ``python setup.py build_ext
--inplace``; docs/architecture.md): without it these tests skip, saying so, and
hwsim runs the Python loop, the reference these tests hold the C loop to.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from contextlib import contextmanager

import pytest
from conftest import ROOT

from hwsim.engine import Task, events, run_events

pytestmark = pytest.mark.skipif(
    events._cevents is None,
    reason="the compiled event loop is not built (python setup.py build_ext --inplace)")


@contextmanager
def loop(compiled: bool, arrival_order: bool = False):
    """The C loop or the Python one; without the arrival-order path in front of it
    (ops without pools would mostly not reach the loop)."""
    was = events.COMPILED, events.ARRIVAL_ORDER
    events.COMPILED, events.ARRIVAL_ORDER = compiled, arrival_order
    try:
        yield
    finally:
        events.COMPILED, events.ARRIVAL_ORDER = was


def both(tasks, pools, arrival_order: bool = False):
    with loop(True, arrival_order):
        c = run_events(tasks, pools)
    with loop(False, arrival_order):
        py = run_events(tasks, pools)
    return c, py


def random_op(rng: random.Random, n: int) -> tuple[list[Task], dict[str, int]]:
    """A random op with what the loop's rules are about: few units (tasks queue),
    pools of few slots, tasks of several copies holding as many slots (or one, when
    serial, holding their unit for all their turns), durations from a small grid with
    zeros and sums that round (events tie), repeated dependencies, and now and then an
    int duration or a pool the mapping does not name (one slot)."""
    units = [f"u{k}" for k in range(rng.randint(1, 6))]
    names = ["dram", "l2", "bus"][: rng.randint(0, 3)]
    pools = {p: rng.randint(1, 4) for p in names if rng.random() < 0.8}
    grid = [0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 0.1 + 0.2, 1 / 3, 1e-9, 3]
    tasks = []
    for i in range(n):
        deps = tuple(rng.randrange(i) for _ in range(rng.choice([0, 0, 1, 2, 3]))) if i else ()
        dur = rng.choice(grid) if rng.random() < 0.8 else rng.random()
        pool = rng.choice(names + [""] * 2) if names else ""
        serial = rng.random() < 0.15
        copies = rng.choice([1, 1, 1, 2, 3])
        if pool and not serial:
            copies = min(copies, pools.get(pool, 1))  # (more than the slots: an error)
        tasks.append(Task(rng.choice(units), dur, deps=deps, pool=pool, copies=copies,
                          serial=serial))
    return tasks, pools


def test_the_c_loop_gives_the_python_loops_schedule_to_the_last_bit():
    rng = random.Random(20261207)
    kinds = {"pools": 0, "no pools": 0, "copies in a pool": 0, "serial": 0}
    for trial in range(1500):
        tasks, pools = random_op(rng, rng.randint(1, 120))
        if trial % 3 == 0:
            tasks, pools = [t._replace(pool="") for t in tasks], {}
        kinds["pools" if any(t.pool for t in tasks) else "no pools"] += 1
        kinds["copies in a pool"] += any(t.pool and t.copies > 1 and not t.serial
                                         for t in tasks)
        kinds["serial"] += any(t.serial and t.copies > 1 for t in tasks)
        c, py = both(tasks, pools)
        assert (c.starts_s, c.ends_s, c.latency_s) == (py.starts_s, py.ends_s,
                                                       py.latency_s), trial
        assert all(type(s) is float for s in c.starts_s + c.ends_s), trial
    assert min(kinds.values()) > 150, kinds


def test_the_c_loop_gives_simpys_schedule_to_the_last_bit():
    """And so simpy's (the reference the Python loop is held to in test_engine.py),
    where simpy's model reaches: no copies holding several pool slots."""
    from hwsim.engine.simpy_events import run_events_simpy

    rng = random.Random(20261209)
    for trial in range(300):
        tasks, pools = random_op(rng, rng.randint(1, 60))
        tasks = [t._replace(copies=1) if t.pool and not t.serial else t for t in tasks]
        with loop(True):
            c = run_events(tasks, pools)
        ref = run_events_simpy(tasks, pools)
        assert (c.starts_s, c.ends_s) == (ref.starts_s, ref.ends_s), trial


def test_the_c_loop_on_lowered_ops_of_every_target():
    """Ops as the targets lower them (pipelines, cores, DRAM pools, ARMv8's threads with
    copies in a pool), the C loop against the Python loop, with the arrival-order path
    in front as hwsim runs them."""
    from hwsim import targets
    from hwsim.workload import build_graph, workload_from_dict

    wl = workload_from_dict({"name": "t", "model": "bert-base", "phase": "prefill",
                             "seq_len": 96, "dtype": "fp16"}, "test")
    g = build_graph(wl)
    checked: dict[str, int] = {}
    for name in ("ascend", "volta", "armv8", "spatten"):
        r = targets.resolve(name)
        pools = r.target.pools(r.spec)
        for op in g.ops:
            if op.layer not in (None, 0):
                continue
            try:
                tasks = r.target.lower(op, g, r.spec, wl.tiling)
            except Exception:  # an op this target does not cost
                continue
            for arrival_order in (False, True):
                c, py = both(tasks, pools, arrival_order)
                assert (c.starts_s, c.ends_s) == (py.starts_s, py.ends_s), (name, op.name)
            checked[name] = checked.get(name, 0) + 1
    assert all(checked.get(t, 0) >= 5 for t in ("ascend", "volta", "armv8", "spatten")), checked


def test_bad_input_is_told_as_the_python_loop_tells_it():
    """Checked before the C loop runs, or (a dependency that is not an earlier task)
    found by it and told by the same function: the same first faulty task."""
    nan = float("nan")
    cases = [
        ([Task("a", 1.0), Task("a", 1.0, deps=(1,)), Task("a", -2.0)], {}),
        ([Task("a", 1.0, pool="p"), Task("a", 1.0, deps=(5,))], {"p": 1}),
        ([Task("a", 1.0, pool="p"), Task("a", 1.0, deps=(-1,))], {"p": 1}),
        ([Task("a", 1.0, pool="p"), Task("a", 1.0, deps=(2**70,))], {"p": 1}),
        ([Task("a", 1.0, pool="p"), Task("a", nan, deps=(0,))], {"p": 1}),
        ([Task("a", 1.0), Task("b", 1.0, pool="p", copies=3)], {"p": 2}),
        ([Task("a", 1.0, pool="p", copies=0)], {"p": 2}),
    ]
    for tasks, pools in cases:
        told = []
        for compiled in (True, False):
            with loop(compiled), pytest.raises(ValueError) as e:
                run_events(tasks, pools)
            told.append(str(e.value))
        assert told[0] == told[1], told


def test_other_number_types_run_in_the_python_loop():
    """A duration or dependency that is not a plain float or int (a numpy scalar, whose
    sums are numpy's) is left to the Python loop: the same schedule, the same types."""
    np = pytest.importorskip("numpy")
    tasks = [Task("a", np.float64(0.5), pool="p"), Task("b", 1.0, deps=(np.int64(0),),
                                                        pool="p"), Task("a", 2, deps=(0,))]
    c, py = both(tasks, {"p": 1})
    assert (c.starts_s, c.ends_s) == (py.starts_s, py.ends_s) == ((0.0, 0.5, 0.5),
                                                                  (0.5, 1.5, 2.5))
    assert [type(x) for x in c.ends_s] == [type(x) for x in py.ends_s]


def test_the_environment_switches_the_c_loop_off():
    code = "from hwsim.engine import events; print(events.COMPILED)"
    got = {}
    for value in ("1", "0"):
        env = dict(os.environ, HWSIM_PURE_PYTHON=value, PYTHONPATH=str(ROOT))
        got[value] = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                                    capture_output=True, text=True, check=True).stdout.strip()
    assert got == {"1": "False", "0": "True"}


def summary_op(rng: random.Random, n: int) -> tuple[list[Task], dict[str, int]]:
    """A random op with what the summary sums: bytes (ints, some beyond 64 bits),
    actions (floats and ints), copies, serial copies, pools, bounds, levels and
    actions in varying order (the dicts' order is the first met)."""
    tasks, pools = random_op(rng, n)
    levels = ["dram_read", "dram_write", "l2_read", "ub_write"]
    names = ["mac", "vec", "load"]
    out = []
    for t in tasks:
        nb = {lv: rng.choice([1, 64, 2**70, rng.randint(0, 10**6)])
              for lv in rng.sample(levels, rng.randint(0, 3))}
        na = {a: rng.choice([1.5, 0.1, 3, rng.random()])
              for a in rng.sample(names, rng.randint(0, 2))}
        out.append(t._replace(bytes=nb if nb or rng.random() < 0.5 else t.bytes,
                              actions=na or t.actions,
                              bound=rng.choice(["compute", "memory", "latency"])))
    return out, pools


def test_the_c_summary_gives_the_python_summarys_figures_to_the_last_bit():
    from hwsim.engine import summarize

    rng = random.Random(20261210)
    for trial in range(600):
        tasks, pools = summary_op(rng, rng.randint(1, 80))
        kw = {"critical_path": trial % 3 != 0, "tails": trial % 2 == 0}
        with loop(True):
            c = summarize(tasks, pools, **kw)
        with loop(False):
            py = summarize(tasks, pools, **kw)
        assert repr(c) == repr(py), trial  # floats by repr, dicts in order
        assert [type(v) for v in c.bytes.values()] == [type(v) for v in py.bytes.values()]
    # tasks that are not ten-field tuples: the Python loop (the same answer)
    with loop(True):
        assert summarize([list(t) for t in tasks], pools) == summarize(tasks, pools)


def test_a_bad_dependency_in_the_summary_raises_as_in_python():
    from hwsim.engine import summarize

    for tasks in ([Task("a", 1.0), Task("a", 1.0, deps=(3,))],
                  [Task("a", 1.0), Task("a", 1.0, deps=("x",))]):
        told = []
        for compiled in (True, False):
            with loop(compiled), pytest.raises((IndexError, TypeError)) as e:
                summarize(tasks)
            told.append((type(e.value), str(e.value)))
        assert told[0] == told[1], told
    # a negative index reads what Python's list reads (the tasks before)
    tasks = [Task("a", 1.0), Task("a", 2.0, deps=(-1,)), Task("b", 0.5, deps=(-1,))]
    with loop(True):
        c = summarize(tasks)
    with loop(False):
        assert repr(summarize(tasks)) == repr(c)


def random_busy(rng: random.Random) -> tuple[dict, dict, dict | None, dict | None, float]:
    """A random summary's resources as the accumulators and _sums leave them: units and
    ("pool", name) keys, busy seconds from a grid with zeros and ties (the first of the
    largest is the busiest), bounds with and without a latency part, heads and tails
    for some keys (0.0 ones too: read as none), pools of 1 to 5 slots or none named, and
    now and then a NaN path or head."""
    grid = [0.0, 0.0, 0.5, 1.0, 1.5, 0.1 + 0.2, 1 / 3, 1e-9, 2.0]
    busy: dict = {}
    for k in range(rng.randint(1, 40)):
        key = ("pool", rng.choice(["dram", "l2", "bus"])) if rng.random() < 0.2 else f"u{k}"
        total = rng.choice(grid) if rng.random() < 0.7 else rng.random()
        by = {"compute": total}
        if rng.random() < 0.5:
            by["latency"] = total * rng.choice([0.0, 0.5, 1.0])
        busy[key] = [total, by] + ([0.0] if rng.random() < 0.3 else [])
    pools = {p: rng.randint(1, 5) for p in ("dram", "l2", "bus") if rng.random() < 0.7}
    keys = list(busy)
    head = {k: rng.choice([0.0, 0.25, rng.random()]) for k in keys if rng.random() < 0.5}
    tail = {k: rng.choice([0.0, 1.0, rng.random()]) for k in keys if rng.random() < 0.3}
    if head and rng.random() < 0.05:
        head[keys[0]] = float("nan")
    path = rng.choice([0.0, 0.5, 2.0, rng.random() * 3])
    if rng.random() < 0.05:
        path = float("nan")
    return (busy, pools, head if rng.random() < 0.8 else None,
            tail if rng.random() < 0.6 else None, path)


def test_the_c_busy_bound_gives_the_python_loops_figures_to_the_last_bit():
    """summary._busy_bound in C (_cevents.busy_bound): the same latency, work and busiest
    resource (repr) as the Python loop on 3,000 random summaries, ties, NaN and pools
    included; and a lowered op's whole summary the same either way. A perturbed entry
    shows."""
    from hwsim.engine import summary

    if summary._BUSY_BOUND is None:
        pytest.skip("this build has no busy_bound (python setup.py build_ext --inplace)")
    rng = random.Random(5)
    for trial in range(3000):
        busy, pools, head, tail, path = random_busy(rng)
        want = summary._busy_bound(busy, pools, head, tail, path)
        got = summary._BUSY_BOUND(busy, pools, head or None, tail or None, path)
        assert repr(got) == repr(want), trial
    # a resource's busy time made the largest: another answer (the test can fail)
    busy, pools, head, tail, path = random_busy(random.Random(1))
    want = summary._busy_bound(busy, pools, head, tail, path)
    key = list(busy)[-1]
    busy[key] = [busy[key][0] + 1e3, busy[key][1]]
    assert summary._BUSY_BOUND(busy, pools, head, tail, path) != want
    # other number types are left to the Python loop
    assert summary._BUSY_BOUND({"u": [1, {}]}, {}, None, None, 0.0) is None
    assert summary._BUSY_BOUND({("pool", "p"): [1.0, {}]}, {"p": 0}, None, None, 0.0) is None
    # a whole summary, compiled and not
    from hwsim.engine import summarize

    tasks, pools = random_op(random.Random(3), 300)
    with loop(True):
        c = summarize(tasks, pools)
    with loop(False):
        py = summarize(tasks, pools)
    assert repr(c) == repr(py)


def test_the_c_deal_gives_the_python_loops_bins_and_heap():
    """engine.deal in C (_cevents.deal): the same items in the same bins, in the same
    order, and the same heap left (repr) as the Python loop (heapq), on 2,000 random
    deals: costs from a grid with ties and zeros, loads that tie, None items (no bin),
    repeats 0 to 5, 1 to 30 workers. NaN, ints and a bad worker are left to Python."""
    from hwsim.engine import deal as deal_mod

    if deal_mod._DEAL is None:
        pytest.skip("this build has no deal (python setup.py build_ext --inplace)")
    rng = random.Random(9)
    grid = [0.0, 0.5, 1.0, 1.5, 0.1 + 0.2, 1 / 3, 2.0]
    for trial in range(2000):
        n = rng.randint(1, 30)
        free = [(rng.choice([0.0, 0.0, 0.5, rng.random()]), w) for w in range(n)]
        rng.shuffle(free)
        free.sort()
        m = rng.randint(0, 40)
        costs = [rng.choice(grid) if rng.random() < 0.7 else rng.random() for _ in range(m)]
        items = [None if rng.random() < 0.1 else (trial, j) for j in range(m)]
        repeat = rng.randint(0, 5)
        out = {}
        for compiled in (True, False):
            f, bins = list(free), [[] for _ in range(n)]
            with loop(compiled):
                deal_mod.deal(f, costs, items, repeat, bins)
            out[compiled] = (repr(f), repr(bins))
        assert out[True] == out[False], trial
        if m and repeat:  # (a cost changed: another heap)
            f = list(free)
            deal_mod._DEAL(f, [costs[0] + 0.25, *costs[1:]], items, repeat, [[] for _ in range(n)])
            assert repr(f) != out[False][0]
    for free, costs in (([(float("nan"), 0)], [1.0]), ([(0.0, 0)], [float("nan")]),
                        ([(0, 0)], [1.0]), ([(0.0, 0)], [1]), ([(0.0, 3)], [1.0])):
        assert deal_mod._DEAL(list(free), costs, [None], 1, [[]]) is None


def test_the_c_latest_is_max():
    """summary.latest in C (_cevents.latest) returns the very item max() returns (the
    first of the largest, a NaN first item kept, -0.0 before 0.0 kept), on 3,000 random
    lists of floats with ties; an int in the list, or an empty one, is left to max()."""
    from hwsim.engine import summary

    if summary._LATEST is None:
        pytest.skip("this build has no latest (python setup.py build_ext --inplace)")
    rng = random.Random(13)
    grid = [0.0, -0.0, 0.5, 1.0, 0.1 + 0.2, 1 / 3, float("inf"), float("nan")]
    for trial in range(3000):
        xs = [rng.choice(grid) if rng.random() < 0.5 else float(rng.random())
              for _ in range(rng.randint(1, 60))]
        xs = [float(repr(x)) for x in xs]  # (new objects: the identity tells which is kept)
        got, want = summary._LATEST(xs), max(xs)
        assert got is want, (trial, xs)
    assert summary._LATEST([1.0, 2]) is None and summary._LATEST([]) is None
    with loop(True):
        assert summary.latest([0.5, 2.0, 1.0]) == 2.0
    with pytest.raises(ValueError):
        summary.latest([])
