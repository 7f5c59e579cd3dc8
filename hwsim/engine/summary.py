"""What an op's tasks add up to, in one pass over them.

:func:`summarize` gives the bytes per level, the actions, the dominant bound and the
analytical latency that :func:`~hwsim.engine.sum_bytes`,
:func:`~hwsim.engine.sum_actions`, :func:`~hwsim.engine.dominant_bound` and
:func:`~hwsim.engine.analytical_latency` give one by one (a test holds them equal),
reading each task once: an op lowers to hundreds or thousands of tasks, and four
passes over them cost as much as the event schedule itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from .task import Task


@dataclass(frozen=True)
class Summary:
    bytes: dict[str, int]  # level -> bytes (dram_read, l2_write, ...)
    actions: dict[str, float]  # action -> count
    bound: str  # what limits the op (see dominant_bound)
    analytical_latency_s: float  # see analytical_latency


def summarize(tasks: Sequence[Task], pools: Mapping[str, int] | None = None) -> Summary:
    """Bytes, actions, dominant bound and analytical latency of ``tasks``."""
    if not tasks:
        return Summary({}, {}, "latency", 0.0)
    nbytes: dict[str, int] = {}
    actions: dict[str, float] = {}
    finish: list[float] = []
    unit_busy: dict[str, float] = {}
    pool_busy: dict[str, float] = {}
    # (kind, name) -> bound -> seconds, kept per resource for the dominant bound
    unit_by: dict[str, dict[str, float]] = {}
    pool_by: dict[str, dict[str, float]] = {}
    order: list[tuple[str, str]] = []  # resources in the order first met (ties)
    for t in tasks:
        k = t.copies
        if k == 1:
            for level, n in t.bytes.items():
                nbytes[level] = nbytes.get(level, 0) + n
            for a, n in t.actions.items():
                actions[a] = actions.get(a, 0.0) + n
        else:  # each copy counts (see Task)
            for level, n in t.bytes.items():
                nbytes[level] = nbytes.get(level, 0) + n * k
            for a, n in t.actions.items():
                actions[a] = actions.get(a, 0.0) + n * k
        d = t.duration_s
        deps = t.deps
        if deps:
            start = finish[deps[0]]
            for j in deps[1:]:
                f = finish[j]
                if f > start:
                    start = f
            finish.append(start + d)
        else:
            finish.append(0.0 + d)
        u, b = t.unit, t.bound
        du = d * k if t.serial else d  # serial copies take turns on the one unit
        unit_busy[u] = unit_busy.get(u, 0.0) + du
        by = unit_by.get(u)
        if by is None:
            by = unit_by[u] = {}
            order.append(("unit", u))
        by[b] = by.get(b, 0.0) + du
        if t.pool:
            p = t.pool
            dk = d * k  # each copy holds a slot
            pool_busy[p] = pool_busy.get(p, 0.0) + dk
            by = pool_by.get(p)
            if by is None:
                by = pool_by[p] = {}
                order.append(("pool", p))
            by[b] = by.get(b, 0.0) + dk
    capacity = dict(pools or {})
    latency = max(max(finish), max(unit_busy.values()))
    for name, total in pool_busy.items():
        latency = max(latency, total / capacity.get(name, 1))
    # the busiest resource: units by their time, pools by their time per slot; ties
    # go to the resource met first (a task's unit before its pool)
    top_key = max(order, key=lambda k: unit_busy[k[1]] if k[0] == "unit"
                  else pool_busy[k[1]] / max(1, capacity.get(k[1], 1)))
    by = unit_by[top_key[1]] if top_key[0] == "unit" else pool_by[top_key[1]]
    return Summary(nbytes, actions, max(by, key=by.get), latency)
