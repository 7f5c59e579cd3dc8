"""The event engine and the analytical schedule on small task graphs with known answers."""

import math
from typing import Mapping, Sequence

import pytest

from hwsim.engine import Task, analytical_latency, run_events


def double_buffered(n: int, load_s: float, compute_s: float, buffers: int = 2) -> list[Task]:
    """Load tile i on mte2, compute it on the cube; a buffer is reused every `buffers` tiles."""
    tasks = []
    for i in range(n):
        deps = (2 * (i - buffers) + 1,) if i >= buffers else ()
        tasks.append(Task("mte2", load_s, deps=deps, bound="memory"))
        tasks.append(Task("cube", compute_s, deps=(2 * i,)))
    return tasks


def test_double_buffering_overlaps_load_and_compute():
    # compute-bound: one load to fill the pipe, then the cube back to back
    tasks = double_buffered(8, 1.0, 1.5)
    assert run_events(tasks).latency_s == pytest.approx(1.0 + 8 * 1.5)
    # memory-bound: the loads back to back, then the last compute
    tasks = double_buffered(8, 2.0, 0.5)
    assert run_events(tasks).latency_s == pytest.approx(8 * 2.0 + 0.5)


def test_single_buffer_serializes():
    tasks = double_buffered(4, 1.0, 1.0, buffers=1)
    assert run_events(tasks).latency_s == pytest.approx(8.0)


def test_analytical_is_a_lower_bound_within_the_pipeline_fill():
    for load, compute in [(1.0, 1.5), (2.0, 0.5), (1.0, 1.0)]:
        tasks = double_buffered(16, load, compute)
        event = run_events(tasks).latency_s
        analytical = analytical_latency(tasks)
        assert analytical <= event + 1e-12
        assert event - analytical <= min(load, compute) + 1e-12  # the pipeline fill


def test_pool_contention_comes_out_of_the_run():
    # four cores each move one tile through DRAM with two channels: two rounds
    tasks = [Task(f"core{i}.mte2", 1.0, pool="dram") for i in range(4)]
    assert run_events(tasks, {"dram": 2}).latency_s == pytest.approx(2.0)
    assert run_events(tasks, {"dram": 4}).latency_s == pytest.approx(1.0)
    assert analytical_latency(tasks, {"dram": 2}) == pytest.approx(2.0)


def test_a_resource_counts_from_its_first_possible_start():
    """A unit's (a pool's) busy time counts from the earliest critical-path start of its
    tasks (its head), not from 0: four loads after a launch of 3 s on a shared unit end
    no earlier than 3 + 4 x 1 s, which the event run gives; a pool of 2 slots, 3 + 2 x 1.
    Today's bound (4 s, the unit's busy time alone) was 43 % below."""
    launch = [Task("launch", 3.0, bound="latency")]
    shared = launch + [Task("hbm", 1.0, deps=(0,), bound="memory") for _ in range(4)]
    assert run_events(shared).latency_s == analytical_latency(shared) == 7.0
    pooled = launch + [Task(f"core{i}", 1.0, deps=(0,), pool="dram") for i in range(4)]
    assert run_events(pooled, {"dram": 2}).latency_s == 5.0
    assert analytical_latency(pooled, {"dram": 2}) == 5.0


def test_the_analytical_latency_never_exceeds_the_event_schedule():
    """On random task graphs (queues on few units and pools, groups of copies, serial
    copies, zero durations): the analytical bound, heads included, is never above the
    event schedule (a float's rounding allowed)."""
    import random

    from hwsim.engine import summarize

    rng = random.Random(424242)
    for trial in range(600):
        tasks, pools = random_tasks(rng, rng.randint(1, 50))
        if trial % 2:  # groups of copies, some serial (a pool's slots fit the copies)
            tasks = [t._replace(copies=k, serial=rng.random() < 0.5) if t.pool == "" or
                     k <= pools.get(t.pool, 1) else t
                     for t in tasks for k in [rng.choice([1, 1, 2, 3])]]
        event = run_events(tasks, pools).latency_s
        assert summarize(tasks, pools).analytical_latency_s <= event * (1 + 1e-12), trial


def test_the_bound_with_tails_never_exceeds_the_event_schedule():
    """The same random graphs with each resource's tail (the least critical path after
    any of its tasks, summarize(tails=True)) and with parts of a resource's tasks, each
    with its own head, busy seconds and least tail (Accumulator.add_part, random
    disjoint subsets of the resource's tasks): never above the event schedule, and never below
    the bound without them. The tail counts: on a memory lane whose last transfer is
    followed by a tile and a join, the bound is the event schedule, where head + busy
    alone (6 s) and the critical path (7 s) were short of it."""
    import random

    from hwsim.engine import Accumulator, summarize
    from hwsim.engine.summary import task_tails

    rng = random.Random(20261207)
    raised = 0
    for trial in range(600):
        tasks, pools = random_tasks(rng, rng.randint(1, 50))
        if trial % 2:
            tasks = [t._replace(copies=k, serial=rng.random() < 0.5) if t.pool == "" or
                     k <= pools.get(t.pool, 1) else t
                     for t in tasks for k in [rng.choice([1, 1, 2, 3])]]
        event = run_events(tasks, pools).latency_s
        plain = summarize(tasks, pools).analytical_latency_s
        tailed = summarize(tasks, pools, tails=True).analytical_latency_s
        assert plain <= tailed <= event * (1 + 1e-12), trial
        raised += tailed > plain
        # parts: random subsets of each resource's tasks, from the tasks' own figures
        acc = Accumulator()
        for t in tasks:
            acc.add_task(t)
        tail = task_tails(tasks)
        start = [acc.finish[i] - t.duration_s for i, t in enumerate(tasks)]
        part = [rng.randrange(4) for _ in tasks]  # disjoint parts (3: in none)
        for p in range(3):
            pick = [i for i in range(len(tasks)) if part[i] == p]
            for key in {tasks[i].unit for i in pick} | {("pool", tasks[i].pool)
                                                         for i in pick if tasks[i].pool}:
                mine = [i for i in pick if key in (tasks[i].unit, ("pool", tasks[i].pool))]
                seconds = sum(tasks[i].duration_s * (tasks[i].copies if type(key) is tuple
                                                     or tasks[i].serial else 1) for i in mine)
                acc.add_part(key, min(start[i] for i in mine), seconds,
                             min(tail[i] for i in mine))
        parted = acc.summary(pools).analytical_latency_s
        assert plain <= parted <= event * (1 + 1e-12), trial
    assert raised >= 10  # (14 of the 600 graphs)
    # a memory lane, then each tile after its transfer, then a join of 1 s
    lane = [Task("mem", 2.0, deps=(i - 2,) if i >= 2 else ()) for i in range(3)]
    tasks = []
    for i, m in enumerate(lane):
        tasks.append(m._replace(deps=(2 * (i - 2) + 1,) if i >= 2 else ()))
        tasks.append(Task("core", 1.0, deps=(2 * i,) + ((2 * i - 1,) if i else ())))
    tasks.append(Task("sync", 1.0, deps=(len(tasks) - 1,)))
    event = run_events(tasks).latency_s
    assert summarize(tasks).analytical_latency_s == 7.0  # (the lane's head + busy: 6)
    assert summarize(tasks, tails=True).analytical_latency_s == event == 8.0


def test_starts_and_ends_are_recorded():
    tasks = [Task("a", 1.0), Task("b", 2.0, deps=(0,)), Task("a", 0.5)]
    s = run_events(tasks)
    assert s.starts_s == (0.0, 1.0, 1.0)
    assert s.ends_s == (1.0, 3.0, 1.5)
    assert s.latency_s == 3.0


def test_forward_dependency_is_rejected():
    with pytest.raises(ValueError, match="later task"):
        run_events([Task("a", 1.0, deps=(1,)), Task("a", 1.0)])
    with pytest.raises(ValueError, match="earlier task"):  # not an index from the end
        run_events([Task("a", 1.0), Task("a", 1.0, deps=(-1,))])


def test_bound_is_the_busiest_resource_counting_pools_per_slot():
    from hwsim.engine import dominant_bound

    # 48 vector cores each busy 1 s computing, all sharing 4 DRAM slots for 2 s of
    # transfers each: the pool (48 x 2 / 4 = 24 s per slot) limits the op
    tasks = []
    for i in range(48):
        tasks.append(Task(f"vec{i}", 1.0, bound="compute"))
        tasks.append(Task(f"vec{i}.mte2", 2.0, pool="dram", bound="memory"))
    assert dominant_bound(tasks, {"dram": 4}) == "memory"
    # with as many slots as cores, each core's own work decides
    tasks = [Task(f"vec{i}", 3.0, bound="compute") for i in range(4)] + [
        Task(f"vec{i}.mte2", 1.0, pool="dram", bound="memory") for i in range(4)]
    assert dominant_bound(tasks, {"dram": 4}) == "compute"
    assert dominant_bound([]) == "latency"


def random_tasks(rng, n: int) -> tuple[list[Task], dict[str, int]]:
    """A random op: few units and pools (so tasks queue), durations drawn from a
    small set with zeros (so events tie), dependencies on earlier tasks (some
    repeated, so a task waits twice on one)."""
    units = [f"u{k}" for k in range(rng.randint(1, 5))]
    pool_names = ["dram", "l2", "bus"][: rng.randint(0, 3)]
    pools = {p: rng.randint(1, 3) for p in pool_names if rng.random() < 0.7}
    grid = [0.0, 0.5, 1.0, 1.5, 2.0, 0.1 + 0.2, 1 / 3]
    tasks = []
    for i in range(n):
        deps = tuple(rng.randrange(i) for _ in range(rng.choice([0, 0, 1, 2, 3]))) if i else ()
        dur = rng.choice(grid) if rng.random() < 0.8 else rng.random()
        pool = rng.choice(pool_names + [""] * 2) if pool_names else ""
        tasks.append(Task(rng.choice(units), dur, deps=deps, pool=pool))
    return tasks, pools


def test_the_event_core_gives_simpys_schedule_to_the_last_bit():
    import random

    from hwsim.engine.simpy_events import run_events_simpy

    rng = random.Random(20261206)
    for trial in range(400):
        tasks, pools = random_tasks(rng, rng.randint(1, 60))
        fast, ref = run_events(tasks, pools), run_events_simpy(tasks, pools)
        assert fast.starts_s == ref.starts_s, trial
        assert fast.ends_s == ref.ends_s, trial
        assert fast.latency_s == ref.latency_s, trial


def test_the_event_loop_alone_gives_simpys_schedule_to_the_last_bit():
    """The event loop without the arrival-order path in front of it, on random ops with
    and without pools: without pools it runs every grant at once (``eager``), with them
    only the grants that would be the next event; both keep simpy's order of the ends
    (ties from the small grid of durations, zeros among them)."""
    import random

    from hwsim.engine import events
    from hwsim.engine.simpy_events import run_events_simpy

    rng = random.Random(20261208)
    with_pools = 0
    events.ARRIVAL_ORDER = False
    try:
        for trial in range(500):
            tasks, pools = random_tasks(rng, rng.randint(1, 80))
            if trial % 2:
                tasks, pools = [t._replace(pool="") for t in tasks], {}
            with_pools += any(t.pool for t in tasks)
            fast, ref = run_events(tasks, pools), run_events_simpy(tasks, pools)
            assert (fast.starts_s, fast.ends_s, fast.latency_s) == \
                (ref.starts_s, ref.ends_s, ref.latency_s), trial
    finally:
        events.ARRIVAL_ORDER = True
    assert with_pools > 100, with_pools


def test_the_arrival_order_path_gives_simpys_schedule_or_declines():
    """Without pools, run_events first takes each task in order of (ready time, index),
    one step per task; it gives simpy's schedule to the last bit, or None where two of
    a unit's tasks become ready at one time for reasons simpy orders by its events'
    creation numbers (then the event loop runs). Random ops without pools, many of them
    with such ties (durations from a small grid): the path is taken in most, declines in
    some, and is right whenever it answers."""
    import random

    from hwsim.engine import events
    from hwsim.engine.simpy_events import run_events_simpy

    rng = random.Random(20261207)
    taken = declined = 0
    walked = {True: 0, False: 0, None: 0}  # the answers of _Order.before
    moved = 0  # steps served again behind a task simpy wakes first
    before, serve_before = events._Order.before, events._serve_before

    def counted_before(self, a, b):
        got = before(self, a, b)
        walked[got] += 1
        return got

    def counted_serve_before(*args):
        nonlocal moved
        got = serve_before(*args)
        moved += got
        return got

    events._Order.before = counted_before
    events._serve_before = counted_serve_before
    try:
        for trial in range(600):
            tasks, _ = random_tasks(rng, rng.randint(1, 60))
            tasks = [t._replace(pool="") for t in tasks]
            n = len(tasks)
            units: dict[str, int] = {}
            unit_of = [units.setdefault(t.unit, len(units)) for t in tasks]
            waiters = [None] * n
            for i, t in enumerate(tasks):
                for d in t.deps:
                    waiters[d] = (waiters[d] or []) + [i]
            got = events._run_in_arrival_order(unit_of, len(units), [t.duration_s for t in tasks],
                                               [t.deps for t in tasks], waiters,
                                               [len(t.deps) for t in tasks])
            ref = run_events_simpy(tasks, {})
            if got is None:
                declined += 1
                continue
            taken += 1
            assert (got.starts_s, got.ends_s, got.latency_s) == \
                (ref.starts_s, ref.ends_s, ref.latency_s), trial
            assert run_events(tasks) == got, trial  # and run_events answers with it
    finally:
        events._Order.before, events._serve_before = before, serve_before
    assert taken > 300 and declined > 20, (taken, declined)
    # ties told by walking back both ways, and tasks served again behind one woken first
    assert walked[True] > 20 and walked[False] > 20 and moved > 10, (walked, moved)


def test_the_arrival_order_path_on_pruned_attentions_is_simpys_schedule():
    """Fused attentions of a pruned Llama-2-7B prefill at 4K on Ascend, the layers where
    rounding parts cube cores that start in lock step: ties on the shared HBM unit are
    told by walking back, and tasks are served again behind one woken first; the
    schedules are simpy's to the last bit."""
    import importlib

    from hwsim import targets
    from hwsim.engine import events
    from hwsim.engine.simpy_events import run_events_simpy
    from hwsim.workload import workload_from_dict

    keep = [round(1.0 - 0.01 * i, 2) for i in range(32)]
    wl = workload_from_dict({"name": "t", "model": "llama-2-7b", "phase": "prefill",
                             "seq_len": 4096, "dtype": "fp16",
                             "pruning": [{"method": "spatten", "keep": keep}]}, "test")
    graph, _ = importlib.import_module("hwsim.simulate").prepare(wl)
    r = targets.resolve("ascend")
    counts = {"walked": 0, "moved": 0}
    before, serve_before = events._Order.before, events._serve_before

    def counted_before(self, a, b):
        counts["walked"] += 1
        return before(self, a, b)

    def counted_serve_before(*args):
        got = serve_before(*args)
        counts["moved"] += got
        return got

    attentions = [op for op in graph.ops if op.kind == "attention"]
    events._Order.before = counted_before
    events._serve_before = counted_serve_before
    compiled, events.COMPILED = events.COMPILED, False  # (the path runs in Python only)
    try:
        for layer in (7, 10, 16, 20, 27, 30):
            op = next(o for o in attentions if o.layer == layer)
            tasks = r.target.lower(op, graph, r.spec, wl.tiling)
            events._DECLINED.clear()
            got = events.run_events(tasks)
            ref = run_events_simpy(tasks, {})
            assert (got.starts_s, got.ends_s) == (ref.starts_s, ref.ends_s), layer
    finally:
        events._Order.before, events._serve_before = before, serve_before
        events.COMPILED = compiled
    # (which layers tie depends on the attention model's floats: at the time of writing
    # these six walk eight ties back and serve tasks again at five; one of each suffices)
    assert counts["walked"] >= 1 and counts["moved"] >= 1, counts


def test_the_arrival_order_path_follows_simpy_where_two_completions_tie():
    """Two tasks on one unit woken at the same time by different completions: simpy
    serves first the one whose completion's event was made first (here the later task
    in the list, whose dependency started first); the path finds that order in the
    events' creators and serves it first."""
    from hwsim.engine import events
    from hwsim.engine.simpy_events import run_events_simpy

    # a ends at 1.0 (started at 0); b waits for z (0 s) and ends at 1.0 too; c (waits
    # for b) and d (waits for a) share u: d is woken first though listed after c
    tasks = [Task("x", 1.0), Task("z", 0.0), Task("y", 1.0, deps=(1,)),
             Task("u", 2.0, deps=(2,)), Task("u", 3.0, deps=(0,))]
    got = events._run_in_arrival_order([0, 1, 2, 3, 3], 4, [1.0, 0.0, 1.0, 2.0, 3.0],
                                       [(), (), (1,), (2,), (0,)], [[4], [2], [3], None, None],
                                       [0, 0, 1, 1, 1])
    ref = run_events_simpy(tasks, {})
    assert ref.starts_s == (0.0, 0.0, 0.0, 4.0, 1.0)  # d first
    assert (got.starts_s, got.ends_s) == (ref.starts_s, ref.ends_s)
    assert run_events(tasks).starts_s == ref.starts_s


def test_the_event_core_gives_simpys_schedule_on_lowered_ops():
    """The same on ops as the targets lower them (pipelines, cores, DRAM pools)."""
    from hwsim import targets
    from hwsim.engine.simpy_events import run_events_simpy
    from hwsim.ir import Graph
    from hwsim.workload import build_graph, workload_from_dict

    wl = workload_from_dict({"name": "t", "model": "bert-base", "phase": "prefill",
                             "seq_len": 96, "dtype": "fp16"}, "test")
    g: Graph = build_graph(wl)
    seen = set()
    checked: dict[str, int] = {}
    for name in ("ascend", "volta", "armv8", "spatten"):
        r = targets.resolve(name)
        for op in g.ops:
            if (op.kind, str(op.attrs)) in seen or op.layer not in (None, 0):
                continue
            try:
                tasks = r.target.lower(op, g, r.spec, wl.tiling)
            except Exception:  # an op this target does not cost
                continue
            if any(t.copies > 1 and t.pool for t in tasks):
                continue  # copies holding pool slots: beyond the reference (ARMv8's threads)
            pools = r.target.pools(r.spec)
            fast, ref = run_events(tasks, pools), run_events_simpy(tasks, pools)
            assert (fast.starts_s, fast.ends_s) == (ref.starts_s, ref.ends_s), (name, op.name)
            checked[name] = checked.get(name, 0) + 1
    assert checked["ascend"] >= 10 and checked["volta"] >= 10 and checked["spatten"] >= 5


def test_a_negative_duration_is_rejected():
    with pytest.raises(ValueError, match="duration"):
        run_events([Task("a", -1.0)])


def test_the_first_faulty_task_in_list_order_is_the_one_told():
    """The tasks are checked as columns, then a fault is told task by task: the first
    task with one, whatever its kind (a later task's fault of another kind is not)."""
    nan = float("nan")
    with pytest.raises(ValueError, match="task 1 has duration nan"):
        run_events([Task("a", 1.0), Task("a", nan), Task("a", 1.0, deps=(5,))])
    with pytest.raises(ValueError, match="task 1 depends on task 1"):
        run_events([Task("a", 1.0), Task("a", 1.0, deps=(1,)), Task("a", -2.0)])
    with pytest.raises(ValueError, match="task 0 has duration nan"):  # NaN first: min sees it
        run_events([Task("a", nan), Task("a", 1.0)])
    with pytest.raises(ValueError, match="task 2 has copies 2.0"):
        run_events([Task("a", 1.0, copies=2), Task("a", 1.0), Task("a", 1.0, copies=2.0)])
    with pytest.raises(ValueError, match="task 1 stands for 3 copies"):
        run_events([Task("a", 1.0), Task("b", 1.0, pool="p", copies=3), Task("a", -1.0)],
                   {"p": 2})


def test_summarize_equals_the_four_passes_it_replaces():
    import random

    from hwsim.engine import summarize

    rng = random.Random(7)
    bounds = ["compute", "memory", "onchip"]
    for trial in range(300):
        tasks, pools = random_tasks(rng, rng.randint(1, 40))
        tasks = [Task(t.unit, t.duration_s, {"dram_read": rng.randint(0, 9)} if rng.random() < .5
                      else {}, {"mac": rng.random()} if rng.random() < .5 else {}, t.deps,
                      rng.choice(bounds), t.pool) for t in tasks]
        s = summarize(tasks, pools)
        assert s.bytes == ref_sum(tasks, "bytes", 0), trial
        assert s.actions == ref_sum(tasks, "actions", 0.0), trial
        assert s.bound == ref_dominant_bound(tasks, pools), trial
        assert s.analytical_latency_s == ref_analytical_latency(tasks, pools), trial
        # without the critical path (the event fidelity's): the rest to the last bit
        e = summarize(tasks, pools, critical_path=False)
        assert (e.bytes, e.actions, e.bound, e.work_s) == (s.bytes, s.actions, s.bound,
                                                           s.work_s), trial
        assert math.isnan(e.analytical_latency_s), trial
    assert summarize([]).bound == ref_dominant_bound([]) == "latency"


def test_the_accumulator_gives_summarize_to_the_last_bit():
    """Tasks handed to an Accumulator one by one (the analytical fidelity's path, no
    Task made) give the Summary that summarize gives for the list: bytes, actions,
    bound and latency equal as floats, on random ops with pools, groups and serial
    copies, and the task count."""
    import random

    from hwsim.engine import Accumulator, summarize

    rng = random.Random(20261207)
    bounds = ["compute", "memory", "onchip", "latency"]
    for trial in range(400):
        if trial % 2:
            tasks, pools = random_tasks(rng, rng.randint(1, 50))
        else:
            tasks, _, _ = grouped_tasks(rng, rng.randint(1, 30), with_serial=True)
            pools = {"dram": rng.randint(1, 8)}
        tasks = [t._replace(bytes={"dram_read": rng.randint(0, 9), "l2_write": 3}
                            if rng.random() < .5 else t.bytes,
                            actions={"mac": rng.random(), "vop": rng.random() * 1e9}
                            if rng.random() < .5 else t.actions,
                            bound=rng.choice(bounds)) for t in tasks]
        acc = Accumulator()
        for i, t in enumerate(tasks):
            if i % 3:
                assert acc.add(t.unit, t.duration_s, t.bytes, t.actions, t.deps, t.bound,
                               t.pool, t.copies, t.serial) == i
            else:
                assert acc.add_task(t) == i
        got, want = acc.summary(pools), summarize(tasks, pools)
        assert got == want, trial
        assert acc.count == len(tasks)
        # the same floats, not merely equal-looking ones
        assert repr(got.analytical_latency_s) == repr(want.analytical_latency_s)
        assert list(got.actions.items()) == list(want.actions.items())
    assert Accumulator().summary() == summarize([])


def grouped_tasks(rng, n: int, with_serial: bool = False
                  ) -> tuple[list[Task], list[Task], list[list[int]]]:
    """A random op with groups: tasks on per-member units stand for ``copies`` members,
    the others are on shared units. Returns it, its expansion (each copy a task on
    its member's own unit, depending on the same member of its grouped
    dependencies) and, per task, the indices of its expansion. ``with_serial``: some
    group tasks are the members' shares of a shared unit (``serial``)."""
    grouped, expanded, index = [], [], []
    sizes = {f"g{j}": rng.randint(1, 4) for j in range(rng.randint(1, 3))}
    shared = [f"s{j}" for j in range(rng.randint(1, 2))]
    for i in range(n):
        deps = tuple(sorted({rng.randrange(i) for _ in range(rng.choice([0, 1, 2]))})) if i else ()
        dur = rng.random()  # continuous: no two events tie
        pool = "dram" if rng.random() < 0.3 else ""
        if rng.random() < 0.6:  # a group's task: its deps must be of the same group or shared
            name = rng.choice(list(sizes))
            k = sizes[name]
            deps = tuple(d for d in deps if grouped[d].copies in (1, k)
                         and (grouped[d].copies == 1 or grouped[d].unit.startswith(name)))
            serial = with_serial and rng.random() < 0.3  # the members' share of a link
            unit = rng.choice(shared) if serial else f"{name}.u{rng.randint(0, 1)}"
            grouped.append(Task(unit, dur, {"b": 1}, {"a": 1.0}, deps, pool=pool, copies=k,
                                serial=serial))
            mine = []
            for m in range(k):
                edeps = tuple(sorted(index[d][m] if grouped[d].copies > 1 else index[d][0]
                                     for d in deps))
                mine.append(len(expanded))
                expanded.append(Task(unit if serial else f"{unit}#{m}", dur, {"b": 1},
                                     {"a": 1.0}, edeps, pool=pool))
            index.append(mine)
        else:
            grouped.append(Task(rng.choice(shared), dur, {"b": 1}, {"a": 1.0}, deps, pool=pool))
            edeps = tuple(sorted({e for d in deps for e in index[d]}))
            index.append([len(expanded)])
            expanded.append(Task(grouped[-1].unit, dur, {"b": 1}, {"a": 1.0}, edeps, pool=pool))
    return grouped, expanded, index


def test_a_task_with_copies_runs_as_its_members_would():
    """Grouped and expanded give the same times for every member, the same totals and
    the same analytical latency, while the pool has a slot for every copy."""
    import random

    from hwsim.engine import summarize

    rng = random.Random(11)
    for trial in range(300):
        grouped, expanded, index = grouped_tasks(rng, rng.randint(1, 30))
        pools = {"dram": 10**6}
        g, e = run_events(grouped, pools), run_events(expanded, pools)
        for i, members in enumerate(index):
            for j in members:
                assert (g.starts_s[i], g.ends_s[i]) == (e.starts_s[j], e.ends_s[j]), trial
        sg, se = summarize(grouped, pools), summarize(expanded, pools)
        assert sg.bytes == se.bytes and sg.actions == se.actions, trial
        assert sg.analytical_latency_s == se.analytical_latency_s, trial


def test_copies_hold_as_many_pool_slots():
    # two groups of 3 on a pool of 4 slots: the second waits for the first
    tasks = [Task("a", 1.0, pool="dram", copies=3), Task("b", 1.0, pool="dram", copies=3)]
    assert run_events(tasks, {"dram": 4}).latency_s == 2.0
    assert run_events(tasks, {"dram": 6}).latency_s == 1.0
    with pytest.raises(ValueError, match="copies"):
        run_events([Task("a", 1.0, pool="dram", copies=5)], {"dram": 4})
    with pytest.raises(ValueError, match="copies"):
        run_events([Task("a", 1.0, copies=0)])


def test_serial_copies_keep_the_analytical_schedule_of_their_members():
    """Groups whose members also share a unit (their transfers over one link): the
    analytical latency, bytes and actions are the expansion's (to float rounding);
    the event schedule differs (the group waits for its last member's share)."""
    import random

    from hwsim.engine import summarize

    rng = random.Random(12)
    for trial in range(300):
        grouped, expanded, _ = grouped_tasks(rng, rng.randint(1, 30), with_serial=True)
        pools = {"dram": 10**6}
        sg, se = summarize(grouped, pools), summarize(expanded, pools)
        assert sg.bytes == se.bytes and sg.actions == pytest.approx(se.actions), trial
        assert sg.analytical_latency_s == pytest.approx(se.analytical_latency_s, rel=1e-12)
        assert run_events(grouped, pools).latency_s >= sg.analytical_latency_s * (1 - 1e-12)
    # four members' 1 s shares of one link: the group holds it 4 s
    assert run_events([Task("link", 1.0, copies=4, serial=True)]).latency_s == 4.0


# ---- the plain definitions, one pass per figure: the reference summarize is held to
def ref_sum(tasks: Sequence[Task], what: str, zero) -> dict:
    """The tasks' ``bytes`` or ``actions`` added up, each copy counted."""
    out: dict = {}
    for t in tasks:
        for key, n in getattr(t, what).items():
            out[key] = out.get(key, zero) + n * t.copies
    return out


def ref_dominant_bound(tasks: Sequence[Task], pools: Mapping[str, int] | None = None) -> str:
    """What limits an op: the bound of the work on its busiest resource.

    The busiest resource is the unit with the most busy time, or the pool with
    the most busy time per slot (a DRAM pool shared by many cores limits an op
    even when each core's own unit is busier than each slot). On that resource,
    the bound that accounts for the most time wins.
    """
    if not tasks:
        return "latency"
    busy: dict[tuple[str, str], float] = {}
    per: dict[tuple[str, str], dict[str, float]] = {}
    for t in tasks:
        keys = [("unit", t.unit)] + ([("pool", t.pool)] if t.pool else [])
        for key in keys:
            # each copy holds a slot of the pool, and has its own unit unless serial
            d = t.duration_s * (t.copies if key[0] == "pool" or t.serial else 1)
            busy[key] = busy.get(key, 0.0) + d
            by = per.setdefault(key, {})
            by[t.bound] = by.get(t.bound, 0.0) + d
    capacity = dict(pools or {})

    def load(key: tuple[str, str]) -> float:
        return busy[key] / max(1, capacity.get(key[1], 1)) if key[0] == "pool" else busy[key]

    top = max(busy, key=load)
    by = per[top]
    return max(by, key=by.get)


def ref_analytical_latency(tasks: Sequence[Task], pools: Mapping[str, int] | None = None) -> float:
    """max(critical path, each unit's head + its busy time, each pool's head + its work /
    its capacity), a resource's head the earliest critical-path start of its tasks."""
    finish: list[float] = []
    busy: dict[str, float] = {}
    pool_busy: dict[str, float] = {}
    head: dict = {}
    for t in tasks:
        start = max((finish[d] for d in t.deps), default=0.0)
        finish.append(start + t.duration_s)
        busy[t.unit] = busy.get(t.unit, 0.0) + t.duration_s * (t.copies if t.serial else 1)
        head[t.unit] = min(head.get(t.unit, start), start)
        if t.pool:  # each copy holds a slot (see Task)
            pool_busy[t.pool] = pool_busy.get(t.pool, 0.0) + t.duration_s * t.copies
            head["pool", t.pool] = min(head.get(("pool", t.pool), start), start)
    bound = max(finish, default=0.0)
    for unit, total in busy.items():
        bound = max(bound, head[unit] + total if head[unit] else total)
    for name, total in pool_busy.items():
        capacity = (pools or {}).get(name, 1)
        h = head["pool", name]
        bound = max(bound, h + total / capacity if h else total / capacity)
    return bound


def test_a_gpu_chunk_in_one_call_is_its_three_calls():
    """Accumulator.add_chunk (a GPU kernel's chunk: its SM group's task, then its DRAM
    pieces, then its L2 pieces) leaves the state that add_copies and the two
    add_pieces leave, called one after another as the volta builder called them:
    finish times, busy seconds per bound, bytes (their keys' order too), actions, the
    count and each lane's last task, on random chunks with empty transfers, copies,
    serial groups and zero or negative finish times."""
    import random

    from hwsim.engine import Accumulator

    rng = random.Random(1414)
    for trial in range(300):
        three, one = Accumulator(), Accumulator()
        first = rng.choice([0.0, -1e-9, rng.random() * 1e-6])
        three.add("stream", first, None, None, (), "latency")
        one.add("stream", first, None, None, (), "latency")
        lanes3 = lanes1 = (0, 0, 0)
        for _ in range(rng.randint(1, 10)):
            unit = rng.choice(["sm0-39", "sm40-79", "sm0"])
            copies = rng.choice([1, 1, 2, 40])
            serial = copies > 1 and rng.random() < 0.7
            sm_s = rng.random() * 10 ** -rng.randint(3, 9) if rng.random() < 0.9 else 0.0
            l2_b, rd, wr = rng.randint(0, 999), rng.randint(0, 999), rng.randint(0, 9)
            acts = rng.choice([None, {}, {"tensor_flop_fp16": rng.random() * 1e9,
                                          "l2_byte": 3.25}])
            bound = rng.choice(["compute", "memory", "onchip"])
            hbm_n, l2_n = rng.choice([0, 1, 3, 12]), rng.choice([0, 1, 5])
            hbm_d, l2_d = rng.random() * 1e-7, rng.random() * 1e-8
            sm, hbm, l2 = lanes3
            sm = three.add_copies(unit, sm_s, {"l2_read": l2_b}, acts, (sm,), bound, copies)
            if hbm_n:
                hbm = three.add_pieces("hbm", hbm_d, hbm_n,
                                       {"dram_read": rd, "dram_write": wr}, (hbm,), "memory",
                                       copies, serial)
            if l2_n:
                l2 = three.add_pieces("l2", l2_d, l2_n, None, (l2,), "onchip", copies, serial)
            lanes3 = (sm, hbm, l2)
            lanes1 = one.add_chunk(unit, sm_s, l2_b, acts, lanes1[0], bound, copies, serial,
                                   "hbm", hbm_d, hbm_n, rd, wr, lanes1[1], "l2", l2_d, l2_n,
                                   lanes1[2])
            assert lanes1 == lanes3, trial
        assert (one.finish, one.busy, one.actions, one.count) == \
            (three.finish, three.busy, three.actions, three.count), trial
        assert list(one.nbytes.items()) == list(three.nbytes.items()), trial
        assert [repr(f) for f in one.finish] == [repr(f) for f in three.finish]
        assert one.summary({"hbm": 2}) == three.summary({"hbm": 2})
