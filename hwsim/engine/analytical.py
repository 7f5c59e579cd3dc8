"""The analytical schedule: bounds instead of a simulation (see the package doc)."""

from __future__ import annotations

from typing import Mapping, Sequence

from .task import Task


def analytical_latency(tasks: Sequence[Task], pools: Mapping[str, int] | None = None) -> float:
    """max(critical path, busiest unit, each pool's work / its capacity)."""
    finish: list[float] = []
    busy: dict[str, float] = {}
    pool_busy: dict[str, float] = {}
    for t in tasks:
        start = max((finish[d] for d in t.deps), default=0.0)
        finish.append(start + t.duration_s)
        busy[t.unit] = busy.get(t.unit, 0.0) + t.duration_s * (t.copies if t.serial else 1)
        if t.pool:  # each copy holds a slot (see Task)
            pool_busy[t.pool] = pool_busy.get(t.pool, 0.0) + t.duration_s * t.copies
    bound = max(max(finish, default=0.0), max(busy.values(), default=0.0))
    for name, total in pool_busy.items():
        capacity = (pools or {}).get(name, 1)
        bound = max(bound, total / capacity)
    return bound
