"""What an op's tasks add up to, in one pass over them.

:func:`summarize` gives the bytes per level, the actions, the dominant bound and the
analytical latency of an op's tasks, reading each task once: an op lowers to hundreds
or thousands of tasks, and a pass over them per figure cost as much as the event
schedule itself. :func:`sum_bytes`, :func:`sum_actions`, :func:`dominant_bound` and
:func:`analytical_latency` are its figures one at a time (a test holds them to the
plain definitions, one pass each).

- bytes and actions: summed over the tasks, once per copy (:class:`Task`);
- the analytical latency (fidelity ``analytical``): no simulation; the largest of the
  critical path through the dependencies and, for each unit, its head (the earliest
  critical-path start of its tasks) plus its total time, for each pool its head plus
  its total time divided by its capacity, each plus the resource's tail where known
  (the least critical path after any of its tasks: the work that must follow it): a
  lower bound on the event schedule (see :func:`_summary`);
- the dominant bound: what limits the op, the bound of the work on its busiest
  resource: the unit with the most busy time, or the pool with the most busy time
  per slot (a DRAM pool shared by many cores limits an op even when each core's own
  unit is busier than each slot); on it, the bound that accounts for the most time
  wins, ties to the resource met first.

:class:`Accumulator` gives the same :class:`Summary` without the tasks: a target that
knows the fidelity is ``analytical`` (:meth:`hwsim.targets.Target.lower_summary`) hands
it each task's fields as it lowers, and no :class:`Task` is made (the same sums, in the
same order, so the same floats: a test holds it to :func:`summarize` on random tasks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from . import events
from .events import gc_paused
from .task import Task


@dataclass(frozen=True)
class Summary:
    """What the analytical fidelity reads of an op's tasks (:func:`summarize`)."""

    bytes: dict[str, int]  # level -> bytes (dram_read, l2_write, ...)
    actions: dict[str, float]  # action -> count
    bound: str  # what limits the op
    analytical_latency_s: float  # max(critical path, each resource's head + busy + tail)
    # the busiest unit or pool counting only its work, not its tasks bound by latency
    # (a launch, a sync): the least time the op needs however its latency chain shrinks
    work_s: float = 0.0


def summarize(tasks: Sequence[Task], pools: Mapping[str, int] | None = None, *,
              critical_path: bool = True, tails: bool = False) -> Summary:
    """Bytes, actions, dominant bound and analytical latency of ``tasks``.

    ``critical_path=False``: the caller schedules the tasks (fidelity ``event``) and
    reads no analytical latency: the walk of the dependencies is skipped (a fifth of
    the pass) and ``analytical_latency_s`` is NaN; the other figures are the same.

    ``tails=True``: each resource's term also counts its *tail*, the least critical
    path after any of its tasks (:func:`task_tails`, a backward pass over the
    dependencies; see :func:`_summary`): a higher bound, still below the event
    schedule. Off by default: a target's accumulator supplies tails only where it
    knows them (:class:`Accumulator`), and this is the reference it is held to."""
    with gc_paused():
        return _summarize(tasks, pools, critical_path, tails)


def task_tails(tasks: Sequence[Task]) -> list[float]:
    """Each task's tail: the longest chain of dependent tasks after it ends (the sum
    of their durations; 0 for a task nothing waits on), one backward pass over the
    dependencies, O(tasks + dependencies). In the event schedule every task of the
    chain starts after the one before it ends, so the op ends no earlier than a
    task's end plus its tail. (A task of serial copies counts ``duration_s`` in the
    chain, as the critical path does: a lower bound of the copies' time.)"""
    tail = [0.0] * len(tasks)
    for i in range(len(tasks) - 1, -1, -1):
        t = tasks[i]
        v = t.duration_s + tail[i]
        for j in t.deps:
            if v > tail[j]:
                tail[j] = v
    return tail


def least_tails(tasks: Sequence[Task]) -> dict:
    """Each unit's and pool's (``("pool", name)``) least :func:`task_tails` over its
    tasks, where above 0 (:class:`Accumulator`'s ``tail``); not for a resource of one
    task of one copy, whose head + busy + tail is the length of a chain through that
    task, never above the critical path (its tail would add only a rounding, and a
    writer would need the whole backward pass to match it)."""
    least: dict = {}
    alone: dict = {}  # key -> whether its one task so far has one copy
    for t, q in zip(tasks, task_tails(tasks)):
        for key in ((t.unit, ("pool", t.pool)) if t.pool else (t.unit,)):
            got = least.get(key)
            if got is None:
                least[key] = q
                alone[key] = t.copies == 1
            else:
                alone[key] = False
                if q < got:
                    least[key] = q
    return {key: q for key, q in least.items() if q > 0.0 and not alone[key]}


def _summarize(tasks: Sequence[Task], pools: Mapping[str, int] | None,
               critical_path: bool = True, tails: bool = False) -> Summary:
    """:func:`summarize`, with the collector paused."""
    if not tasks:
        return Summary({}, {}, "latency", 0.0 if critical_path else math.nan)
    got = events._cevents.summarize(tasks, critical_path) if events.COMPILED else None
    if got is not None:  # the loop below in C (events.COMPILED), the same sums
        nbytes, actions, finish, busy = got
    else:
        nbytes, actions, finish, busy = _sums(tasks, critical_path)
    if not critical_path:  # (every start 0: no head to read)
        return _summary(nbytes, actions, math.nan, busy, pools)
    return _summary(nbytes, actions, latest(finish), busy, pools,
                    {key: e[2] for key, e in busy.items() if e[2] > 0.0},
                    least_tails(tasks) if tails else None)


def _sums(tasks: Sequence[Task], critical_path: bool) -> tuple[dict, dict, list | None, dict]:
    """:func:`_summarize`'s pass over the tasks: bytes, actions, each task's finish on the
    critical path (None without it) and each resource's busy time. ``_cevents.summarize``
    is this loop in C, on the same objects with the same operations in the same order
    (the same floats; tests/test_engine_compiled.py); this one is the reference, and
    runs where that is not built."""
    nbytes: dict[str, int] = {}
    actions: dict[str, float] = {}
    finish: list[float] = []
    append = finish.append
    # resource -> [busy seconds, {bound: seconds}, earliest start], in the order met; a
    # unit is keyed by its name, a pool by ("pool", name) (the two never equal)
    busy: dict = {}
    start = 0.0
    # (the fields unpacked in the loop's header: a named tuple's attributes cost more)
    for unit, d, t_bytes, t_actions, deps, bound, pool, _, k, serial in tasks:
        # each copy counts its bytes and actions and holds a pool slot
        if t_bytes:
            if k == 1:
                for level, n in t_bytes.items():
                    nbytes[level] = nbytes.get(level, 0) + n
            else:
                for level, n in t_bytes.items():
                    nbytes[level] = nbytes.get(level, 0) + n * k
        if t_actions:
            if k == 1:  # n * 1 is n, for ints and floats alike
                for a, n in t_actions.items():
                    actions[a] = actions.get(a, 0.0) + n
            else:
                for a, n in t_actions.items():
                    actions[a] = actions.get(a, 0.0) + n * k
        if critical_path:
            start = 0.0
            for j in deps:
                f = finish[j]
                if f > start:
                    start = f
            append(start + d)
        # a copy has a unit of its own, unless the copies take turns on this one
        seconds = d * k if serial else d
        entry = busy.get(unit)
        if entry is None:
            entry = busy[unit] = [0.0, {}, start]
        elif start < entry[2]:
            entry[2] = start
        entry[0] += seconds
        by = entry[1]
        by[bound] = by.get(bound, 0.0) + seconds
        if pool:
            seconds = d * k
            key = ("pool", pool)
            entry = busy.get(key)
            if entry is None:
                entry = busy[key] = [0.0, {}, start]
            elif start < entry[2]:
                entry[2] = start
            entry[0] += seconds
            by = entry[1]
            by[bound] = by.get(bound, 0.0) + seconds
    return nbytes, actions, finish if critical_path else None, busy


def _summary(nbytes: dict, actions: dict, path_s: float, busy: dict,
             pools: Mapping[str, int] | None, head: Mapping | None = None,
             tail: Mapping | None = None, parts: Mapping | None = None) -> Summary:
    """The summary from the sums: the critical path ``path_s``, each resource's busy
    time (``busy``: unit or ("pool", name) -> [seconds, {bound: seconds}, ...]), its
    head (``head``: the same keys -> the earliest critical-path start of its tasks),
    its tail (``tail``: the same keys -> the least critical path after any of its
    tasks, :func:`task_tails`) and, in ``parts``, disjoint subsets of its tasks that a
    writer knows more of (the same keys -> [(head, seconds, tail), ...], each a subset's
    earliest critical-path start, its busy seconds and its least tail). A key not in
    ``head`` or ``tail``, or none given, counts 0 there, the weaker bound; any value
    at most the true one keeps the bound sound.

    The analytical latency is the largest of the critical path and, for each
    resource, its head plus its busy time per slot plus its tail, and the same for
    each part of a resource and each union of a resource's parts whose tail is at
    least some threshold (the parts taken in order of their tails, longest first).

    **Why each term is a lower bound of the event schedule.** No task starts before
    its dependencies end, so none before its critical-path start (the longest chain
    of dependencies before it). Take any set S of tasks on one resource of c slots
    (c = 1 for a unit; ``pools`` gives a pool's), h at most the least critical-path
    start in S, W their busy seconds and q at most their least tail. Before h the
    resource runs none of S; from h on it gets through at most c seconds of S's work
    per second, so the last task of S to end ends at F >= h + W / c. That task is
    followed by a chain of dependent tasks of at least q seconds (its tail), each
    starting after the one before it ends, so the op ends no earlier than
    h + W / c + q. S = all of a resource's tasks gives the resource's term (S's
    least head and tail are the resource's); a union of parts with tails >= q gives
    the threshold terms (its head the least of the parts', its tail q). With every
    tail at 0 this is the head + busy bound alone; the tail adds the work that must
    follow the resource (a memory lane's last tile and the join; a core's walk after
    its last load on a shared HBM unit), the part the head + busy term leaves out."""
    capacity = dict(pools or {})
    # (the loop of _busy_bound in C where it is built: the same floats)
    got = _BUSY_BOUND(busy, capacity, head or None, tail or None, path_s) \
        if events.COMPILED and _BUSY_BOUND is not None else None
    latency, work, top = got if got is not None else \
        _busy_bound(busy, capacity, head, tail, path_s)
    if parts:
        for key, subsets in parts.items():
            slots = capacity.get(key[1], 1) if type(key) is tuple else 1
            h, w = math.inf, 0.0
            for h_s, seconds, q in sorted(subsets, key=_by_tail, reverse=True):
                if h_s < h:
                    h = h_s
                w += seconds
                t = h + w / slots + q
                if t > latency:  # (max(latency, t), as above)
                    latency = t
    by = busy[top][1]
    return Summary(nbytes, actions, max(by, key=by.get), latency, work)


# _busy_bound and latest in C (hwsim/engine/_cevents.c), None where the build has none
_BUSY_BOUND = getattr(events._cevents, "busy_bound", None)
_LATEST = getattr(events._cevents, "latest", None)


def latest(finish: list[float]) -> float:
    """``max(finish)``: the critical path's end, the latest of the tasks' finishes (an
    op's list holds one per task: 200,000 in a 7B prefill's analytical run). In C where
    it is built (``_cevents.latest``: the item max() returns, compared as doubles
    without a call per item), else max() itself (and where an item is not a float)."""
    got = _LATEST(finish) if events.COMPILED and _LATEST is not None else None
    return max(finish) if got is None else got


def _busy_bound(busy: dict, capacity: Mapping[str, int], head: Mapping | None,
                tail: Mapping | None, path_s: float) -> tuple[float, float, object]:
    """:func:`_summary`'s pass over the resources: (latency, work, top), the latency the
    largest of ``path_s`` and each resource's head plus its busy seconds per slot plus
    its tail, the work the largest busy seconds less the latency-bound ones per slot
    (from 0), and the busiest resource (its busy time per slot, a pool's slots counted
    at least 1), the first of the largest as max() keeps it. ``_cevents.busy_bound`` is
    this loop in C, with the same double operations in the same order (the same floats;
    tests/test_engine_compiled.py); this one is the reference, and runs where that is
    not built or a number is not a float."""
    latency = path_s
    work = 0.0
    top = None
    top_s = 0.0
    for key, entry in busy.items():
        total, by = entry[0], entry[1]
        if type(key) is tuple:
            slots = capacity.get(key[1], 1)
            share = total / (slots if slots > 1 else 1)
        else:
            slots = 1
            share = total
        if top is None or share > top_s:
            top, top_s = key, share
        t = total / slots
        if head:
            h = head.get(key)
            if h:
                t = h + t
        if tail:
            q = tail.get(key)
            if q:
                t = t + q
        # (max(latency, t) and max(work, w) as tests: the same value kept, NaN included)
        if t > latency:
            latency = t
        w = (total - by.get("latency", 0.0)) / slots
        if w > work:
            work = w
    return latency, work, top


def _by_tail(part: tuple) -> float:
    return part[2]


def sum_bytes(tasks: Sequence[Task]) -> dict[str, int]:
    return summarize(tasks).bytes


def sum_actions(tasks: Sequence[Task]) -> dict[str, float]:
    return summarize(tasks).actions


def dominant_bound(tasks: Sequence[Task], pools: Mapping[str, int] | None = None) -> str:
    return summarize(tasks, pools).bound


def analytical_latency(tasks: Sequence[Task], pools: Mapping[str, int] | None = None) -> float:
    return summarize(tasks, pools).analytical_latency_s


class Accumulator:
    """:func:`summarize` of tasks handed over one at a time, none of them kept.

    :meth:`add` takes a task's fields (those of :class:`Task` that the summary reads)
    and returns the index the task would have in the op's list, for later tasks'
    ``deps``; :meth:`summary` is then what :func:`summarize` returns for the list.
    The sums are taken in the order the tasks come, as :func:`summarize` takes them,
    so the two agree to the last bit. ``duration_s`` is taken as given (a target's
    builder clamps negative durations to 0, as it does for its tasks).

    Tails (see :func:`_summary`) are not taken task by task (no task's successors are
    known when it is added, and a backward pass would keep every task): a writer that
    knows its tasks' structure (a chain of tiles after a memory lane, a core's walk
    after its loads) sets :attr:`tail` for a key, or adds a part of a key's work with
    its own head and tail (:meth:`add_part`); without them a key's tail is 0, today's
    head + busy bound."""

    __slots__ = ("nbytes", "actions", "finish", "busy", "head", "tail", "parts", "count")

    def __init__(self):
        self.nbytes: dict[str, int] = {}
        self.actions: dict[str, float] = {}
        self.finish: list[float] = []
        self.busy: dict = {}  # as in summarize: unit or ("pool", name) -> [seconds, by bound]
        # the same keys -> the earliest critical-path start of their tasks where above 0
        # (a key not here: 0; see _summary). A writer that adds to ``busy`` directly
        # keeps it too: a key it adds to gets min(head, its tasks' earliest start),
        # ``head.pop(key, None)`` where it cannot tell (today's weaker bound); a key
        # left above that start would make the bound unsound.
        self.head: dict = {}
        # the same keys -> a lower bound of the least tail of their tasks where above 0
        # (the critical path after a task to the op's end: least_tails of the tasks);
        # a key not here: 0. Set by a writer that knows the structure after its tasks.
        self.tail: dict = {}
        # the same keys -> [(head, seconds, tail), ...]: parts of a key's tasks (already
        # in ``busy``) whose own head and least tail a writer knows (add_part)
        self.parts: dict = {}
        self.count = 0  # tasks added

    def add(self, unit: str, duration_s: float, nbytes: Mapping[str, int] | None,
            actions: Mapping[str, float] | None, deps, bound: str, pool: str = "",
            copies: int = 1, serial: bool = False) -> int:
        """One task's share of the summary; returns its index."""
        k = copies
        if nbytes:
            if k == 1:  # (_add_into, inline: the common case)
                acc = self.nbytes
                for key, n in nbytes.items():
                    acc[key] = acc.get(key, 0) + n
            else:
                _add_into(self.nbytes, nbytes, k, 0)
        if actions:
            if k == 1:
                acc = self.actions
                for key, n in actions.items():
                    acc[key] = acc.get(key, 0.0) + n
            else:
                _add_into(self.actions, actions, k, 0.0)
        finish = self.finish
        start = 0.0
        for j in deps:
            f = finish[j]
            if f > start:
                start = f
        finish.append(start + duration_s)
        busy = self.busy
        head = self.head
        seconds = duration_s * k if serial else duration_s
        entry = busy.get(unit)
        if entry is None:
            entry = busy[unit] = [0.0, {}]
            if start > 0.0:
                head[unit] = start
        elif start < head.get(unit, 0.0):
            head[unit] = start
        entry[0] += seconds
        by = entry[1]
        by[bound] = by.get(bound, 0.0) + seconds
        if pool:
            seconds = duration_s * k
            key = ("pool", pool)
            entry = busy.get(key)
            if entry is None:
                entry = busy[key] = [0.0, {}]
                if start > 0.0:
                    head[key] = start
            elif start < head.get(key, 0.0):
                head[key] = start
            entry[0] += seconds
            by = entry[1]
            by[bound] = by.get(bound, 0.0) + seconds
        n = self.count
        self.count = n + 1
        return n

    def add_chain(self, unit: str, duration_s: float, count: int, bound: str, pool: str = "",
                  copies: int = 1, serial: bool = False) -> int:
        """:meth:`add` of ``count`` tasks without bytes or actions, each depending on the
        one before it, the first on the last task added (a transfer cut into pieces);
        returns the last one's index. The same sums, one task after another."""
        if count <= 0:
            return self.count - 1
        finish = self.finish
        append = finish.append
        f = finish[-1] if finish else 0.0
        start = f if f > 0.0 else 0.0
        d = duration_s
        seconds = d * copies if serial else d
        busy = self.busy
        head = self.head
        first = start  # the first task's start (each later one's is its finish)
        entry = busy.get(unit)
        if entry is None:
            entry = busy[unit] = [0.0, {}]
            if first > 0.0:
                head[unit] = first
        elif first < head.get(unit, 0.0):
            head[unit] = first
        total = entry[0]
        by = entry[1]
        b = by.get(bound, 0.0)
        for _ in range(count):
            f = start + d
            append(f)
            start = f if f > 0.0 else 0.0
            total += seconds
            b += seconds
        entry[0] = total
        by[bound] = b
        if pool:
            seconds = d * copies
            key = ("pool", pool)
            entry = busy.get(key)
            if entry is None:
                entry = busy[key] = [0.0, {}]
                if first > 0.0:
                    head[key] = first
            elif first < head.get(key, 0.0):
                head[key] = first
            total = entry[0]
            by = entry[1]
            b = by.get(bound, 0.0)
            for _ in range(count):
                total += seconds
                b += seconds
            entry[0] = total
            by[bound] = b
        self.count += count
        return self.count - 1

    def add_copies(self, unit: str, duration_s: float, nbytes: Mapping[str, int] | None,
                   actions: Mapping[str, float] | None, deps, bound: str,
                   copies: int = 1) -> int:
        """:meth:`add` of a task with no pool, its ``copies`` side by side (not serial),
        the products taken inline: the same sums in the same order (a GPU kernel's
        chunk of blocks on a group of SMs, thousands of times per model)."""
        k = copies
        if nbytes:
            acc = self.nbytes
            if k == 1:
                for key, n in nbytes.items():
                    acc[key] = acc.get(key, 0) + n
            else:
                for key, n in nbytes.items():
                    acc[key] = acc.get(key, 0) + n * k
        if actions:
            acc = self.actions
            if k == 1:
                for key, n in actions.items():
                    acc[key] = acc.get(key, 0.0) + n
            else:
                for key, n in actions.items():
                    acc[key] = acc.get(key, 0.0) + n * k
        finish = self.finish
        start = 0.0
        for j in deps:
            f = finish[j]
            if f > start:
                start = f
        finish.append(start + duration_s)
        busy = self.busy
        entry = busy.get(unit)
        if entry is None:
            entry = busy[unit] = [0.0, {}]
            if start > 0.0:
                self.head[unit] = start
        elif start < self.head.get(unit, 0.0):
            self.head[unit] = start
        entry[0] += duration_s
        by = entry[1]
        by[bound] = by.get(bound, 0.0) + duration_s
        n = self.count
        self.count = n + 1
        return n

    def add_pieces(self, unit: str, duration_s: float, count: int,
                   nbytes: Mapping[str, int] | None, deps, bound: str, copies: int = 1,
                   serial: bool = False) -> int:
        """:meth:`add` of a transfer's first piece (its ``nbytes``, no actions, no pool)
        then :meth:`add_chain` of its ``count - 1`` others, in one call: the same sums in
        the same order (a GPU kernel's traffic on a shared unit, thousands of times per
        model); returns the last piece's index."""
        if nbytes:
            acc = self.nbytes
            if copies == 1:
                for key, n in nbytes.items():
                    acc[key] = acc.get(key, 0) + n
            else:
                for key, n in nbytes.items():
                    acc[key] = acc.get(key, 0) + n * copies
        finish = self.finish
        start = 0.0
        for j in deps:
            f = finish[j]
            if f > start:
                start = f
        n = self._pieces(unit, duration_s, count if count > 1 else 1, start, bound, copies,
                         serial, self.count)
        self.count = n
        return n - 1

    def add_chunk(self, unit: str, duration_s: float, l2_read: int,
                  actions: Mapping[str, float] | None, after: int, bound: str, copies: int,
                  serial: bool, mem_unit: str, mem_s: float, mem_n: int, dram_read: int,
                  dram_write: int, mem_after: int, cache_unit: str, cache_s: float,
                  cache_n: int, cache_after: int) -> tuple[int, int, int]:
        """A GPU kernel's chunk of blocks in one call: what the three calls its tasks
        take one after another add, in their order, so the same sums to the last bit.

        1. :meth:`add_copies` of the chunk on its SM group ``unit`` (``copies`` side by
           side, its bytes ``{"l2_read": l2_read}``, its ``actions``), after task
           ``after``;
        2. when ``mem_n`` > 0, :meth:`add_pieces` of its DRAM traffic on ``mem_unit``:
           ``mem_n`` pieces of ``mem_s`` each bound by ``"memory"``, the first with
           ``{"dram_read": dram_read, "dram_write": dram_write}``, after ``mem_after``;
        3. when ``cache_n`` > 0, :meth:`add_pieces` of its L2 traffic on ``cache_unit``:
           ``cache_n`` pieces of ``cache_s`` bound by ``"onchip"``, no bytes, after
           ``cache_after``.

        Returns the last task of each lane: the chunk's, then the DRAM and L2 transfers'
        (``mem_after`` or ``cache_after`` when that transfer is empty), the ``after`` of
        the lanes' next chunk. A kernel's chunks number in the thousands per model, and
        three calls each cost a third of its analytical build."""
        k = copies
        acc = self.nbytes
        acc["l2_read"] = acc.get("l2_read", 0) + (l2_read if k == 1 else l2_read * k)
        if actions:
            acc_a = self.actions
            if k == 1:
                for key, n in actions.items():
                    acc_a[key] = acc_a.get(key, 0.0) + n
            else:
                for key, n in actions.items():
                    acc_a[key] = acc_a.get(key, 0.0) + n * k
        finish = self.finish
        append = finish.append
        busy = self.busy
        # 1. the chunk (add_copies: one dependency, no pool, not serial)
        f = finish[after]
        f = f if f > 0.0 else 0.0
        append(f + duration_s)
        entry = busy.get(unit)
        if entry is None:
            entry = busy[unit] = [0.0, {}]
            if f > 0.0:
                self.head[unit] = f
        elif f < self.head.get(unit, 0.0):
            self.head[unit] = f
        entry[0] += duration_s
        by = entry[1]
        by[bound] = by.get(bound, 0.0) + duration_s
        n = self.count
        i_sm = n
        n += 1
        # 2. and 3. the transfers (add_pieces: a first piece after its lane, then a chain)
        if mem_n:
            if k == 1:
                acc["dram_read"] = acc.get("dram_read", 0) + dram_read
                acc["dram_write"] = acc.get("dram_write", 0) + dram_write
            else:
                acc["dram_read"] = acc.get("dram_read", 0) + dram_read * k
                acc["dram_write"] = acc.get("dram_write", 0) + dram_write * k
            f = finish[mem_after]
            n = self._pieces(mem_unit, mem_s, mem_n, f if f > 0.0 else 0.0, "memory", k,
                             serial, n)
            mem_after = n - 1
        if cache_n:
            f = finish[cache_after]
            n = self._pieces(cache_unit, cache_s, cache_n, f if f > 0.0 else 0.0, "onchip", k,
                             serial, n)
            cache_after = n - 1
        self.count = n
        return i_sm, mem_after, cache_after

    def _pieces(self, unit: str, d: float, count: int, start: float, bound: str,
                copies: int, serial: bool, n: int) -> int:
        """The tasks of :meth:`add_pieces` and :meth:`add_chunk`, their bytes taken by the
        caller: ``count`` (>= 1) pieces from task index ``n`` on, the first ready at
        ``start`` (>= 0); returns the last piece's index + 1 (the next task's index), the
        count left to the caller."""
        append = self.finish.append
        f = start + d
        append(f)
        seconds = d * copies if serial else d
        busy = self.busy
        entry = busy.get(unit)
        if entry is None:
            entry = busy[unit] = [0.0, {}]
            if start > 0.0:
                self.head[unit] = start
        elif start < self.head.get(unit, 0.0):
            self.head[unit] = start
        total = entry[0] + seconds
        by = entry[1]
        b = by.get(bound, 0.0) + seconds
        start = f if f > 0.0 else 0.0
        for _ in range(count - 1):
            f = start + d
            append(f)
            start = f if f > 0.0 else 0.0
            total += seconds
            b += seconds
        entry[0] = total
        by[bound] = b
        return n + count

    def ready_s(self, deps) -> float:
        """The earliest a task after ``deps`` (task indices) can start: their latest
        critical-path finish, 0 without any (what :meth:`add` takes as its start)."""
        finish = self.finish
        start = 0.0
        for j in deps:
            f = finish[j]
            if f > start:
                start = f
        return start

    def entry(self, key, start_s: float) -> list:
        """The busy entry (``[seconds, {bound: seconds}]``) of unit or ``("pool", name)``
        ``key``, made if new, its head lowered to ``start_s``: for a writer that adds a
        group's or a walk's work to :attr:`busy` itself (:meth:`add` keeps the same
        head inline, per task)."""
        e = self.busy.get(key)
        if e is None:
            e = self.busy[key] = [0.0, {}]
            if start_s > 0.0:
                self.head[key] = start_s
        elif start_s < self.head.get(key, 0.0):
            self.head[key] = start_s
        return e

    def add_part(self, key, head_s: float, seconds: float, tail_s: float) -> None:
        """A part of key ``key``'s work (its busy seconds already added; no task in two
        parts of a key: their unions add their seconds): tasks whose
        critical-path starts are all at least ``head_s``, whose durations add up to
        ``seconds`` and after each of which a chain of at least ``tail_s`` seconds
        follows; :func:`_summary` bounds the op by the parts' unions (a core's walk
        after its loads on a shared unit, where the unit's least tail is another
        task's, the combine after the walks)."""
        got = self.parts.get(key)
        if got is None:
            self.parts[key] = [(head_s, seconds, tail_s)]
        else:
            got.append((head_s, seconds, tail_s))

    def add_task(self, t: Task) -> int:
        """:meth:`add` of a made :class:`Task` (a lowering that makes some itself)."""
        return self.add(t.unit, t.duration_s, t.bytes, t.actions, t.deps, t.bound, t.pool,
                        t.copies, t.serial)

    def summary(self, pools: Mapping[str, int] | None = None) -> Summary:
        """:func:`summarize` of the tasks added so far."""
        if not self.count:
            return Summary({}, {}, "latency", 0.0)
        return _summary(self.nbytes, self.actions, latest(self.finish), self.busy, pools,
                        self.head, self.tail, self.parts)


def _add_into(acc: dict, items: Mapping, k: int, zero) -> None:
    """``acc[key] += n * k`` for each of ``items`` (bytes or actions of ``k`` copies);
    n * 1 is n, for ints and floats alike, so one copy skips the products."""
    if k == 1:
        for key, n in items.items():
            acc[key] = acc.get(key, zero) + n
    else:
        for key, n in items.items():
            acc[key] = acc.get(key, zero) + n * k
