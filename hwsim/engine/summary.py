"""What an op's tasks add up to, in one pass over them.

:func:`summarize` gives the bytes per level, the actions, the dominant bound and the
analytical latency of an op's tasks, reading each task once: an op lowers to hundreds
or thousands of tasks, and a pass over them per figure cost as much as the event
schedule itself. :func:`sum_bytes`, :func:`sum_actions`, :func:`dominant_bound` and
:func:`analytical_latency` are its figures one at a time (a test holds them to the
plain definitions, one pass each).

- bytes and actions: summed over the tasks, once per copy (:class:`Task`);
- the analytical latency (fidelity ``analytical``): no simulation; the larger of the
  critical path through the dependencies, the busiest unit's total time, and each
  pool's total time divided by its capacity: a lower bound on the event schedule;
- the dominant bound: what limits the op, the bound of the work on its busiest
  resource: the unit with the most busy time, or the pool with the most busy time
  per slot (a DRAM pool shared by many cores limits an op even when each core's own
  unit is busier than each slot); on it, the bound that accounts for the most time
  wins, ties to the resource met first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from .task import Task


@dataclass(frozen=True)
class Summary:
    bytes: dict[str, int]  # level -> bytes (dram_read, l2_write, ...)
    actions: dict[str, float]  # action -> count
    bound: str  # what limits the op
    analytical_latency_s: float  # max(critical path, busiest unit, pools per slot)
    # the busiest unit or pool counting only its work, not its tasks bound by latency
    # (a launch, a sync): the least time the op needs however its latency chain shrinks
    work_s: float = 0.0


def summarize(tasks: Sequence[Task], pools: Mapping[str, int] | None = None) -> Summary:
    """Bytes, actions, dominant bound and analytical latency of ``tasks``."""
    if not tasks:
        return Summary({}, {}, "latency", 0.0)
    nbytes: dict[str, int] = {}
    actions: dict[str, float] = {}
    finish: list[float] = []
    append = finish.append
    # resource -> [busy seconds, {bound: seconds}], in the order met; a unit is keyed
    # by its name, a pool by ("pool", name) (the two never equal)
    busy: dict = {}
    for t in tasks:
        k = t.copies  # each copy counts its bytes and actions and holds a pool slot
        if t.bytes:
            for level, n in t.bytes.items():
                nbytes[level] = nbytes.get(level, 0) + n * k
        if t.actions:
            for a, n in t.actions.items():
                actions[a] = actions.get(a, 0.0) + n * k
        d = t.duration_s
        start = 0.0
        for j in t.deps:
            f = finish[j]
            if f > start:
                start = f
        append(start + d)
        # a copy has a unit of its own, unless the copies take turns on this one
        seconds = d * k if t.serial else d
        entry = busy.get(t.unit)
        if entry is None:
            entry = busy[t.unit] = [0.0, {}]
        entry[0] += seconds
        by = entry[1]
        by[t.bound] = by.get(t.bound, 0.0) + seconds
        if t.pool:
            seconds = d * k
            key = ("pool", t.pool)
            entry = busy.get(key)
            if entry is None:
                entry = busy[key] = [0.0, {}]
            entry[0] += seconds
            by = entry[1]
            by[t.bound] = by.get(t.bound, 0.0) + seconds
    capacity = dict(pools or {})
    latency = max(finish)
    work = 0.0
    for key, (total, by) in busy.items():
        slots = capacity.get(key[1], 1) if type(key) is tuple else 1
        latency = max(latency, total / slots)
        work = max(work, (total - by.get("latency", 0.0)) / slots)
    top = max(busy, key=lambda key: busy[key][0] / max(1, capacity.get(key[1], 1))
              if type(key) is tuple else busy[key][0])
    by = busy[top][1]
    return Summary(nbytes, actions, max(by, key=by.get), latency, work)


def sum_bytes(tasks: Sequence[Task]) -> dict[str, int]:
    return summarize(tasks).bytes


def sum_actions(tasks: Sequence[Task]) -> dict[str, float]:
    return summarize(tasks).actions


def dominant_bound(tasks: Sequence[Task], pools: Mapping[str, int] | None = None) -> str:
    return summarize(tasks, pools).bound


def analytical_latency(tasks: Sequence[Task], pools: Mapping[str, int] | None = None) -> float:
    return summarize(tasks, pools).analytical_latency_s
