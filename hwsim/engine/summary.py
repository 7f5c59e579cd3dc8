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


def summarize(tasks: Sequence[Task], pools: Mapping[str, int] | None = None) -> Summary:
    """Bytes, actions, dominant bound and analytical latency of ``tasks``."""
    if not tasks:
        return Summary({}, {}, "latency", 0.0)
    nbytes: dict[str, int] = {}
    actions: dict[str, float] = {}
    finish: list[float] = []
    # ("unit" | "pool", name) -> busy seconds, and the same by bound; in the order met
    busy: dict[tuple[str, str], float] = {}
    per: dict[tuple[str, str], dict[str, float]] = {}
    for t in tasks:
        k = t.copies  # each copy counts its bytes and actions and holds a pool slot
        for level, n in t.bytes.items():
            nbytes[level] = nbytes.get(level, 0) + n * k
        for a, n in t.actions.items():
            actions[a] = actions.get(a, 0.0) + n * k
        d = t.duration_s
        start = 0.0
        for j in t.deps:
            f = finish[j]
            if f > start:
                start = f
        finish.append(start + d)
        # a copy has a unit of its own, unless the copies take turns on this one
        _account(busy, per, ("unit", t.unit), t.bound, d * k if t.serial else d)
        if t.pool:
            _account(busy, per, ("pool", t.pool), t.bound, d * k)
    capacity = dict(pools or {})
    latency = max(finish)
    for (kind, name), total in busy.items():
        latency = max(latency, total if kind == "unit" else total / capacity.get(name, 1))
    top = max(busy, key=lambda key: busy[key] if key[0] == "unit"
              else busy[key] / max(1, capacity.get(key[1], 1)))
    by = per[top]
    return Summary(nbytes, actions, max(by, key=by.get), latency)


def _account(busy: dict, per: dict, key: tuple[str, str], bound: str, seconds: float) -> None:
    busy[key] = busy.get(key, 0.0) + seconds
    by = per.get(key)
    if by is None:
        by = per[key] = {}
    by[bound] = by.get(bound, 0.0) + seconds


def sum_bytes(tasks: Sequence[Task]) -> dict[str, int]:
    return summarize(tasks).bytes


def sum_actions(tasks: Sequence[Task]) -> dict[str, float]:
    return summarize(tasks).actions


def dominant_bound(tasks: Sequence[Task], pools: Mapping[str, int] | None = None) -> str:
    return summarize(tasks, pools).bound


def analytical_latency(tasks: Sequence[Task], pools: Mapping[str, int] | None = None) -> float:
    return summarize(tasks, pools).analytical_latency_s
