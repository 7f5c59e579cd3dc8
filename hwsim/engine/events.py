"""The event schedule: tasks on unit and pool resources, without a process per task.

Every task follows one pattern: wait for its dependencies, queue for its unit
(capacity one, first come first served), then for a slot of its pool if it names
one, hold both for its duration, release them. :func:`run_events` runs that
pattern directly on a heap of events, with no coroutine, condition event or
request object per task, and gives the schedule that
:func:`hwsim.engine.simpy_events.run_events_simpy` (the same tasks as simpy
processes on simpy resources) gives, to the last bit: a test holds the two equal
on random task graphs.

Equal to the last bit means the same order of events at equal times, so the
loop keeps simpy's order: events sorted by (time, priority, creation number),
and created in the order simpy creates them (only a task's end lies ahead of the
event that makes it: the ends wait on a heap, every other event in a FIFO of the
present time, behind the ends due then; see :func:`_run_events`):

- all tasks start at time 0, in list order, before anything else happens at 0
  (simpy's ``Initialize`` events are urgent); a task with dependencies then
  waits for all of them (none is done yet);
- the last dependency's completion, when it is processed, schedules the task's
  wake-up (simpy's ``AllOf`` condition), which queues it for its unit;
- a request is granted when it is at the head of the queue and a slot is free,
  checked when it is made and when a release is *processed* (simpy's
  ``_trigger_put``: the head only, one grant per check); a grant is an event,
  and the task proceeds when it is processed;
- a task that stands for ``copies`` members (:class:`~hwsim.engine.Task`) asks for
  as many slots of its pool at once, granted when they are all free (``serial``
  copies, which take turns on their one unit, hold one slot for all their turns);
- at the end of its duration a task releases its pool slot, then its unit (a
  slot is free at once; the next request is granted when the release event is
  processed), then completes (an event that wakes the tasks that wait for it).

Events that change nothing (a completion no task waits for; a release while no
request is queued, which grants nothing when processed, since a request made in
between takes what was freed or queues behind the task that took it) are not
made: the order of the others is kept because creation numbers only need to be
increasing.

Tasks without pools take a shorter way first (:func:`_run_in_arrival_order`): each
unit serves them in the order they become ready, one step per task, where ties of
ready time are ordered as simpy orders them (:class:`_Order`); where that order
cannot be told cheaply, the event loop below gives the schedule.

The event loop has a compiled twin, ``_cevents.run`` (hwsim/engine/_cevents.c), run
where it is built (:data:`COMPILED`), with the same schedule to the last bit; there
every op goes to it, the shorter way being shorter only in Python. Without it (a
source checkout not built, an install without a C compiler, ``HWSIM_PURE_PYTHON=1``)
all runs in Python, as the reference.
"""

from __future__ import annotations

import gc
from collections import deque
from dataclasses import dataclass
from heapq import heapify, heappop, heappush, heappushpop
from itertools import compress
from operator import not_
from typing import Mapping, Sequence

from . import compiled
from .task import Task


@dataclass(frozen=True)
class Schedule:
    """Start and end of every task of one op, relative to the op's start."""

    latency_s: float
    starts_s: tuple[float, ...]
    ends_s: tuple[float, ...]


# Event kinds on the heap (the priority of all of them is simpy's NORMAL); the loop
# tells them apart in about the order of their frequency.
_WAKE, _UNIT_GRANT, _POOL_GRANT, _END, _UNIT_FREE, _POOL_FREE, _DONE = range(7)


# False: every schedule from the event loop (the benchmark's reference,
# benchmarks/bench_events.py); the results are the same either way. Where the loop is
# compiled (COMPILED, below) the path is not taken: the C loop runs an op in less time
# than the Python path takes to order it (the 7B prefill with distinct layers: the
# engine's 0.30 s -> 0.10 s CPU).
ARRIVAL_ORDER = True

# The event loop in C (hwsim/engine/_cevents.c, built by an install; see
# docs/architecture.md, "The event loop has an optional compiled core") where it is
# built, and not switched off by the environment's HWSIM_PURE_PYTHON=1; False: the
# Python loop (_event_loop), the reference, always. The schedules are the same either
# way, to the last bit.
_cevents = compiled.optional("hwsim.engine._cevents", 1)
COMPILED = _cevents is not None and not compiled.PURE_PYTHON

# Ops whose lanes number the same (one kind of op on one machine: a GEMM on all cube
# cores, an attention on all cores) -> how many of them in a row the arrival-order path
# declined. After two, it is tried on every 16th only: its declines (cores in lock step,
# whose ties it would walk back far) cost their partial runs, and the event loop gives
# the same schedule. Which of the two exact paths runs changes no result.
_DECLINED: dict[int, int] = {}


class gc_paused:
    """Python's cyclic garbage collector off for the block, back on after it (if it was
    on; a block inside another leaves it to the outer one).

    Lowering an op and scheduling its tasks make hundreds of thousands of tuples, dicts
    and lists, none of them in a reference cycle (reference counting frees them all),
    while the tasks of the op are alive: each of the collector's passes, run every
    few hundred allocations, walks the young ones for nothing, and every tenth pass
    the older ones too, 15-20 % of an event run. Pausing it changes no result.

    A class, not a ``contextlib.contextmanager`` generator: it is entered about seven
    times per op (the pricing, the lowering, the summary, the schedule), 12,000 times
    on a 32K prefill's 1,739 distinct ops, and a generator's enter and exit cost
    several times a plain method call's."""

    __slots__ = ("was",)

    def __enter__(self) -> None:
        self.was = was = gc.isenabled()
        if was:
            gc.disable()

    def __exit__(self, *exc) -> bool:
        if self.was:
            gc.enable()
        return False


def run_events(tasks: Sequence[Task], pools: Mapping[str, int] | None = None) -> Schedule:
    """Simulate ``tasks`` and return when each ran.

    A task waits for its dependencies, then queues for its unit (FIFO in the
    order tasks become ready, ties in list order), then for a slot of its pool,
    and holds both for its duration.
    """
    with gc_paused():
        return _run_events(tasks, pools)


def _run_events(tasks: Sequence[Task], pools: Mapping[str, int] | None) -> Schedule:
    """:func:`run_events`, with the collector paused."""
    n = len(tasks)
    if not n:
        return Schedule(0.0, (), ())
    pool_ids: dict[str, int] = {}
    pool_cap: list[int] = []
    for name, cap in (pools or {}).items():
        pool_ids[name] = len(pool_cap)
        pool_cap.append(max(1, int(cap)))
    # the tasks' fields as columns (one pass in C), checked as columns; any problem is
    # then found and told task by task, in list order, by _explain
    units, durs, _, _, deps_of, _, pool_names, _, copies, serial = zip(*tasks)
    try:
        ok = (all(issubclass(c, int) for c in set(map(type, copies))) and min(copies) >= 1
              and min(durs) >= 0 and sum(durs) >= 0)  # (the sum: no NaN among them)
    except TypeError:
        ok = False
    if not ok:
        _explain(tasks, pool_ids, pool_cap)
    # the units numbered in the order first met, each task's looked up (passes in C)
    unit_ids = {u: i for i, u in enumerate(dict.fromkeys(units))}
    unit_of = list(map(unit_ids.__getitem__, units))
    # a serial task holds its unit for all its copies' turns (without one: the
    # durations); only the serial ones are visited
    durations = durs
    if any(serial):
        durations = list(durs)
        for i in compress(range(n), serial):
            durations[i] = durs[i] * copies[i]
    pool_of = [-1] * n
    slots: list[int] = []  # the pool slots each task holds (read only for a pool's tasks)
    if any(pool_names):
        slots = [1 if s else c for s, c in zip(serial, copies)]
        for i, name in enumerate(pool_names):
            if name:
                p = pool_ids.get(name)
                if p is None:
                    p = pool_ids[name] = len(pool_cap)
                    pool_cap.append(1)
                if slots[i] > pool_cap[p]:
                    _explain(tasks, pool_ids, pool_cap)
                pool_of[i] = p
    n_units = len(unit_ids)
    # (the event loop's ``eager``: see there)
    eager = pool_of.count(-1) == n
    waiters: list[list[int] | None] | None = None
    if ARRIVAL_ORDER and eager and not COMPILED:  # no pool: first each unit's arrival order
        declined = _DECLINED.get(n_units, 0)
        if declined < 2 or declined % 16 == 0:
            waiters, missing = _waiters(deps_of, tasks, pool_ids, pool_cap)
            sched = _run_in_arrival_order(unit_of, n_units, durations, deps_of, waiters,
                                          missing)
            if sched is not None:
                _DECLINED[n_units] = 0
                return sched
            if len(_DECLINED) > 4096:
                _DECLINED.clear()
            _DECLINED[n_units] = declined + 1
        else:
            _DECLINED[n_units] = declined + 1
    if COMPILED:
        try:
            got = _cevents.run(unit_of, n_units, durations, deps_of, pool_of, slots,
                               pool_cap, eager)
        except TypeError:  # a column of other types (numpy scalars): the Python loop
            got = False
        if got is None:  # a dependency that is not an earlier task
            _explain(tasks, pool_ids, pool_cap)
        if got:
            starts_s, ends_s = got
            return Schedule(max(ends_s), starts_s, ends_s)
    if waiters is None:
        waiters, missing = _waiters(deps_of, tasks, pool_ids, pool_cap)
    return _event_loop(unit_of, n_units, durations, pool_of, slots, pool_cap, waiters,
                       missing, eager)


def _waiters(deps_of: Sequence[tuple[int, ...]], tasks: Sequence[Task],
             pool_ids: dict[str, int], pool_cap: list[int]
             ) -> tuple[list[list[int] | None], list[int]]:
    """The tasks that wait for each task (None: none; in list order, a task once per
    time it names the dependency) and how many dependencies each waits for; a
    dependency that is not an earlier task is told by :func:`_explain`."""
    n = len(deps_of)
    waiters: list[list[int] | None] = [None] * n
    missing = list(map(len, deps_of))
    for i, deps in enumerate(deps_of):
        for d in deps:
            if not 0 <= d < i:
                _explain(tasks, pool_ids, pool_cap)
            w = waiters[d]
            if w is None:
                waiters[d] = [i]
            else:
                w.append(i)
    return waiters, missing


def _event_loop(unit_of: list[int], n_units: int, durations: Sequence[float],
                pool_of: list[int], slots: list[int], pool_cap: list[int],
                waiters: list[list[int] | None], missing: list[int],
                eager: bool) -> Schedule:
    """The event loop on the tasks' prepared columns (see :func:`_run_events`): unit and
    pool numbers, durations (a serial task's for all its copies), the pool slots each
    holds, each pool's slots, the waiters and counts of :func:`_waiters`, and whether
    no task has a pool. ``_cevents.run`` is this loop in C, the same to the last bit
    (:data:`COMPILED`); this one is the reference, and runs where that is not built."""
    n = len(unit_of)
    unit_busy = [False] * n_units
    unit_queue = [deque() for _ in range(n_units)]
    pool_used = [0] * len(pool_cap)
    pool_queue = [deque() for _ in pool_cap]
    starts = [0.0] * n
    ends = [0.0] * n
    # Of all the events, only a task's end lies ahead of the event that makes it; every
    # other one (a wake-up, a grant, a release, a completion) happens at the time of
    # its maker. So the events of one time come in two kinds: the ends due then, made
    # before (on the heap: (time, creation number, task)), and the events made at that
    # time, each after all of those and after every event made before it. simpy's
    # order among them is therefore: the ends due, in the order they were made, then
    # the events made at this time in the order made: a FIFO (``now_q``), no heap and
    # no creation number for them. When the FIFO runs dry, all ends due at the next
    # time go into it at once, in order (the events they make go behind them).
    # Time 0: every task starts, in list order; those without dependencies ask for
    # their unit at once (simpy's urgent process starts: before anything they make).
    heap: list[tuple[float, int, int]] = []
    now_q: deque = deque((_WAKE, i) for i in range(n) if not missing[i])
    put, take = now_q.append, now_q.popleft
    # A grant to a task of no pool starts it and makes its end; made now, it would run
    # behind the events in the FIFO. Its work is done at once where that changes no
    # order: when the FIFO is empty (it would be the next event), and in an op without
    # pools whenever its end lies ahead: there every end on the heap is made by such a
    # grant, so the ends are made in the order of the grants either way (creation
    # numbers only need to increase), and a start is the present time either way. (A
    # grant of no duration, whose end would join the FIFO where the grant is run,
    # waits its turn; with pools, a pool's grant makes ends in the FIFO's order.)
    eid = 0
    now = 0.0
    while True:
        if now_q:
            kind, x = take()
        elif heap:
            now, _, x = heappop(heap)
            while heap and heap[0][0] == now:  # the other ends due now, in order made
                put((_END, heappop(heap)[2]))
            kind = _END
        else:
            break
        if kind == _END:
            # The task's duration is over: pool slot, then unit, then completion.
            # (a release with nobody queued would grant nothing when processed: a request
            # made before then takes the freed unit or slots, or queues behind the task
            # that took them, which ends after it; so it is not made)
            if not eager:  # (an op with pools: ``eager`` is an op without)
                p = pool_of[x]
                if p >= 0:
                    pool_used[p] -= slots[x]
                    if pool_queue[p]:
                        put((_POOL_FREE, p))
            u = unit_of[x]
            unit_busy[u] = False
            if unit_queue[u]:
                put((_UNIT_FREE, u))
            ends[x] = now
            w = waiters[x]
            if w is not None:
                if now_q:
                    put((_DONE, x))
                else:  # the completion is the next event: done here
                    for j in w:
                        m = missing[j] - 1
                        missing[j] = m
                        if not m:
                            put((_WAKE, j))
        elif kind == _WAKE:  # all dependencies done; queue for the unit
            u = unit_of[x]
            if unit_busy[u]:
                unit_queue[u].append(x)
            else:
                unit_busy[u] = True
                q = unit_queue[u]
                if q:  # (a release's grant pending: the queue's head goes first)
                    q.append(x)
                    j = q.popleft()
                else:  # (the queue empty: x itself, without the deque's round trip)
                    j = x
                e = now + durations[j]
                if pool_of[j] < 0 and (e > now and eager or not now_q):
                    # the grant's work done here (see ``eager``)
                    starts[j] = now
                    if e > now:
                        heappush(heap, (e, eid, j))
                        eid += 1
                    else:
                        put((_END, j))
                else:
                    put((_UNIT_GRANT, j))
        elif kind == _DONE:
            for j in waiters[x]:
                m = missing[j] - 1
                missing[j] = m
                if not m:
                    put((_WAKE, j))
        elif kind == _UNIT_GRANT and pool_of[x] >= 0:  # then its pool's queue
            p = pool_of[x]
            q = pool_queue[p]
            q.append(x)
            head = q[0]
            if pool_used[p] + slots[head] <= pool_cap[p]:
                pool_used[p] += slots[head]
                put((_POOL_GRANT, q.popleft()))
        elif kind == _POOL_GRANT or kind == _UNIT_GRANT:  # the task starts
            starts[x] = now
            e = now + durations[x]
            if e > now:
                heappush(heap, (e, eid, x))
                eid += 1
            else:
                put((_END, x))
        elif kind == _UNIT_FREE:
            q = unit_queue[x]
            if q and not unit_busy[x]:
                unit_busy[x] = True
                j = q.popleft()
                e = now + durations[j]
                if pool_of[j] < 0 and (e > now and eager or not now_q):
                    # the grant's work done here (see ``eager``)
                    starts[j] = now
                    if e > now:
                        heappush(heap, (e, eid, j))
                        eid += 1
                    else:
                        put((_END, j))
                else:
                    put((_UNIT_GRANT, j))
        else:  # _POOL_FREE
            q = pool_queue[x]
            if q and pool_used[x] + slots[q[0]] <= pool_cap[x]:
                pool_used[x] += slots[q[0]]
                put((_POOL_GRANT, q.popleft()))
    return Schedule(max(ends), tuple(starts), tuple(ends))


def _run_in_arrival_order(unit_of: list[int], n_units: int, durations: list[float],
                          deps_of: Sequence[tuple[int, ...]], waiters: list,
                          missing: list[int]) -> Schedule | None:
    """The schedule of tasks without pools, one step per task instead of simpy's four or
    five events; None where it cannot tell simpy's order of two events at one time
    (then the event loop of :func:`_run_events` gives the schedule).

    Without pools, what decides the schedule is each unit's order of service: a unit
    serves its tasks first come, first served and is never idle while one waits (a
    release grants the head of the queue at the same time), so in the order in which
    its tasks arrive (wake up: the end of their last dependency), each starts at
    ``max(ready, end of the one before)``. Tasks are taken by (ready time, list index)
    from a heap: a task is pushed when its last dependency is done, and none pushed
    later can be readier, since durations are not negative. That order is simpy's
    wherever a unit's tasks become ready at different times. Where two of a unit's
    tasks become ready at the same time, simpy serves them in the order of their
    wake-up events, which :class:`_Order` works out from the events' creation (the
    order of equal-time events is that of their creators, back to where the two
    histories part); where it is not the order taken, or cannot be told, None."""
    n = len(unit_of)
    missing = list(missing)  # (the event loop needs the counts as they are)
    no_deps = list(map(not_, missing))
    ready = [0.0] * n
    starts = [0.0] * n
    ends = [0.0] * n
    prev = [-1] * n  # the task its unit served before it
    free = [0.0] * n_units  # when each unit is done with the tasks it took so far
    last = [-1] * n_units  # the task each unit served last
    order = None
    heap = [(0.0, i) for i in compress(range(n), no_deps)]  # (sorted: a heap)
    nxt = None
    while True:
        if nxt is not None:
            r, k = heappushpop(heap, nxt)
            nxt = None
        elif heap:
            r, k = heappop(heap)
        else:
            break
        u = unit_of[k]
        p = last[u]
        if p >= 0:
            if ready[p] == r and not _same_wake(p, k, r, no_deps, deps_of, ends):
                if order is None:
                    order = _Order(no_deps, deps_of, ready, starts, ends, prev, unit_of)
                first = order.before(("W", p), ("W", k))
                if first is None:
                    return None
                if not first:
                    # simpy wakes k first (rounding parted cores in lock step): p, and
                    # those before it that k goes before, are served again after k
                    if not _serve_before(k, p, r, order, unit_of, durations, deps_of,
                                         waiters, missing, ready, starts, ends, prev, last,
                                         free, heap, nxt):
                        return None
                    # (the order's answers kept: a walk back from a wake-up at r or
                    # before never meets the moved tasks' events, all of them later
                    # than r but their grants, which only their ends lead to)
                    nxt = None  # (_serve_before pushed it)
                    continue
            prev[k] = p
        last[u] = k
        f = free[u]
        s = r if r > f else f
        e = s + durations[k]
        starts[k] = s
        ends[k] = e
        free[u] = e
        w = waiters[k]
        if w is not None:
            for j in w:
                if e > ready[j]:
                    ready[j] = e
                m = missing[j] - 1
                missing[j] = m
                if not m:
                    if nxt is not None:
                        heappush(heap, nxt)
                    nxt = (ready[j], j)
    if order is not None and order.queued_used:
        # the grants of queued tasks the order relied on: made by their unit's release,
        # unless a wake-up on that unit came between the release and its event, which
        # the order does not follow: then no answer
        used = order.queued_used
        if any((u, r) in used for u, r in zip(unit_of, ready)):
            return None
    return Schedule(max(ends), tuple(starts), tuple(ends))


def _serve_before(k: int, p: int, r: float, order: "_Order", unit_of, durations, deps_of,
                  waiters, missing, ready, starts, ends, prev, last, free, heap: list,
                  nxt) -> bool:
    """:func:`_run_in_arrival_order`'s step for task ``k``, ready at ``r`` on the unit
    whose last task ``p`` (ready at ``r`` too) simpy serves after it: the steps of ``p``
    and of the tasks before it on the unit that are ready at ``r`` and woken after
    ``k`` are undone (their waiters' counts and ready times, what they pushed taken off
    the heap), ``k`` is served where the first of them was, then they are again, in
    their order. False, with nothing changed, where simpy's order cannot be told or an
    undone step could have changed one taken since (a task that ended at ``r``: its
    waiters may have been taken)."""
    u = unit_of[k]
    after = [p]  # the tasks k goes before, last served first
    x = prev[p]
    while x >= 0 and ready[x] == r:
        first = order.before(("W", x), ("W", k))
        if first is None:
            return False
        if first:
            break
        after.append(x)
        x = prev[x]
    if any(ends[y] <= r for y in after):
        return False
    if nxt is not None:
        heappush(heap, nxt)
    touched = []
    removed = False
    for y in after:
        ends[y] = 0.0  # (not served: an end no ready time is below)
        w = waiters[y]
        if w is not None:
            for j in w:
                if not missing[j]:  # it was pushed: off the heap
                    heap.remove((ready[j], j))
                    removed = True
                missing[j] += 1
                touched.append(j)
    if removed:
        heapify(heap)
    for j in touched:
        ready[j] = max([ends[d] for d in deps_of[j]], default=0.0)
    f = ends[x] if x >= 0 else 0.0
    prev[k] = x
    prev[after[-1]] = k
    for y in [k, *reversed(after)]:
        s = ready[y]
        if f > s:
            s = f
        e = s + durations[y]
        starts[y] = s
        ends[y] = f = e
        w = waiters[y]
        if w is not None:
            for j in w:
                if e > ready[j]:
                    ready[j] = e
                m = missing[j] - 1
                missing[j] = m
                if not m:
                    heappush(heap, (ready[j], j))
    free[u] = f
    last[u] = p
    return True


def _same_wake(p: int, k: int, r: float, no_deps: list[bool],
               deps_of: Sequence[tuple[int, ...]], ends: list[float]) -> bool:
    """Whether simpy wakes task ``p`` before task ``k`` (both ready at time ``r``, ``p``
    taken first) for the plain reasons: both have no dependencies (their wake-ups are
    the first events, in list order), or only ``p`` has none (at time 0, after those),
    or the same completion wakes both (the dependencies that end last are the same:
    the last of them to complete wakes its waiters in list order)."""
    if no_deps[p]:
        return not no_deps[k] or p < k
    if no_deps[k] or k < p:
        return False
    return ({d for d in deps_of[p] if ends[d] == r} == {d for d in deps_of[k] if ends[d] == r})


class _Order:
    """simpy's order of two events of a schedule at one time, from their creation.

    simpy processes events by time, then by creation; an event is created while another
    is processed, so of two events at one time the first is the one whose creator was
    processed first, or, of one creator's, the one it made first. The events of a task
    without a pool, and their creators (:func:`_run_in_arrival_order`'s run):

    ==========  =========  ===========================================================
    event       time       created by
    ==========  =========  ===========================================================
    ``W`` wake  ready      the start (no dependencies: the first events, in list
                           order), else the completion ``D`` of the dependency that
                           ends last (its waiters in list order)
    ``G`` grant start      its own wake-up, when its unit was free then; else the
                           release ``F`` of the task its unit served before it
    ``E`` end   end        its grant
    ``F`` free  end        its end (first)
    ``D`` done  end        its end (after the release)
    ==========  =========  ===========================================================

    :meth:`before` walks two events' creators back while the times are equal, until
    the two histories part (an earlier time comes first) or meet (the creator's first
    child first); the answers on the way are kept, so a run of cores in lock step is
    walked once. None where the creator cannot be told: a wake-up at a time when several
    dependencies end (different ones for the two tasks), a grant at the time its
    unit's previous task ends that no dependency on that task explains; and once the
    walks have taken a step per 64 tasks (see ``steps_left``)."""

    __slots__ = ("no_deps", "deps_of", "ready", "starts", "ends", "prev", "unit_of",
                 "queued_used", "memo", "steps_left")

    def __init__(self, no_deps, deps_of, ready, starts, ends, prev, unit_of):
        self.no_deps, self.deps_of, self.ready = no_deps, deps_of, ready
        self.starts, self.ends, self.prev = starts, ends, prev
        self.unit_of = unit_of
        self.queued_used: set[tuple[int, float]] = set()  # the releases' grants relied on
        self.memo: dict[tuple, bool] = {}
        # the steps back all walks may take (then None): a step costs about what the
        # event loop spends on a task, so walks of lock-step cores that part only far
        # back (a million steps over a 32K-token prefill's attentions) leave it to the
        # loop, and early: what was done before a decline is lost
        self.steps_left = len(ready) // 64 + 32

    def time(self, ev) -> float:
        kind, x = ev
        if kind == "W":
            return self.ready[x]
        if kind == "G":
            return self.starts[x]
        if kind == "R":
            return -1.0
        return self.ends[x]

    def creator(self, ev):
        """``(creator, rank among its children)``, or None where it cannot be told."""
        kind, x = ev
        if kind == "E":
            return ("G", x), 0
        if kind == "D":
            return ("E", x), 1
        if kind == "F":
            return ("E", x), 0
        if kind == "W":
            if self.no_deps[x]:
                return ("R", 0), x
            r, ends = self.ready[x], self.ends
            last = {d for d in self.deps_of[x] if ends[d] == r}
            if len(last) == 1:
                return ("D", last.pop()), x
            return ("M", frozenset(last)), x  # equal only to the same set
        if kind == "G":
            p = self.prev[x]
            if p < 0:
                return ("W", x), 0
            f, r = self.ends[p], self.ready[x]
            if f < r or (f == r and not self.no_deps[x] and p in self.deps_of[x]):
                return ("W", x), 0  # (p's completion wakes x: its end came first)
            if f > r:  # queued: its unit's release grants it (unless a wake-up came
                # between them, which _run_in_arrival_order checks at the end)
                self.queued_used.add((self.unit_of[x], f))
                return ("F", p), 0
            return None
        return None  # ("R", 0) and ("M", ...) have none

    def before(self, a, b) -> bool | None:
        """Whether simpy processes event ``a`` before event ``b`` (None: cannot tell)."""
        memo = self.memo
        path = []
        while True:
            ta, tb = self.time(a), self.time(b)
            if ta != tb:
                res = ta < tb
                break
            got = memo.get((a, b))
            if got is not None:
                res = got
                break
            self.steps_left -= 1
            if self.steps_left < 0:
                return None
            ca, cb = self.creator(a), self.creator(b)
            if ca is None or cb is None:
                return None
            path.append((a, b))
            if ca[0] == cb[0]:  # one creator: the child it made first
                if ca[1] == cb[1]:
                    return None  # (one event, not two)
                res = ca[1] < cb[1]
                break
            if ca[0][0] == "M" or cb[0][0] == "M":
                return None  # a wake-up by one of several completions at one time
            a, b = ca[0], cb[0]
        for pair in path:
            memo[pair] = res
        return res


def _explain(tasks: Sequence[Task], pool_ids: dict[str, int], pool_cap: list[int]) -> None:
    """Raise the error of the first task, in list order, that :func:`run_events` cannot
    run: its copies, its pool's slots, its dependencies, then its duration."""
    pool_ids, pool_cap = dict(pool_ids), list(pool_cap)
    for i, task in enumerate(tasks):
        copies = task.copies
        if not (isinstance(copies, int) and copies >= 1):
            raise ValueError(f"task {i} has copies {copies!r}; expected an integer >= 1")
        if task.pool:
            p = pool_ids.get(task.pool)
            if p is None:
                p = pool_ids[task.pool] = len(pool_cap)
                pool_cap.append(1)
            slots = 1 if task.serial else copies
            if slots > pool_cap[p]:
                raise ValueError(f"task {i} stands for {slots} copies, more than the "
                                 f"{pool_cap[p]} slots of pool {task.pool!r}")
        for d in task.deps:
            if not 0 <= d < i:
                raise ValueError(f"task {i} depends on task {d}: expected an earlier task "
                                 f"(0 to {i - 1}), not itself or a later task")
        if not task.duration_s >= 0:
            raise ValueError(f"task {i} has duration {task.duration_s!r}; expected >= 0")
    raise AssertionError("run_events found a problem that _explain did not")
