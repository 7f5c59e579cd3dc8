"""Running lowered ops: tasks, and the analytical scheduler.

A target lowers each op to :class:`Task` objects (tiles): the unit a task
occupies, how long it occupies it, the bytes it moves at each memory level, the
actions it performs (priced later by the energy table) and what limits it.
Tasks of one op may depend on earlier tasks of the same op (``deps``).

:func:`analytical_latency` gives an op's latency from its tasks without an event
simulation: the larger of the critical path through the dependencies and the
busiest unit's total time. A roofline op is a single task, for which both are
its duration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

BOUNDS = ("compute", "memory", "onchip", "latency", "interconnect")


@dataclass(frozen=True, slots=True)
class Task:
    unit: str  # resource the task occupies, e.g. "chip", "core3.cube", "core3.mte2"
    duration_s: float
    bytes: Mapping[str, int] = field(default_factory=dict)  # level -> bytes, e.g. dram_read
    actions: Mapping[str, float] = field(default_factory=dict)  # action -> count
    deps: tuple[int, ...] = ()  # indices of earlier tasks of the same op
    bound: str = "compute"  # what limits this task (one of BOUNDS)


def analytical_latency(tasks: Sequence[Task]) -> float:
    """max(critical path through deps, busiest unit's total time)."""
    finish: list[float] = []
    busy: dict[str, float] = {}
    for t in tasks:
        start = max((finish[d] for d in t.deps), default=0.0)
        finish.append(start + t.duration_s)
        busy[t.unit] = busy.get(t.unit, 0.0) + t.duration_s
    return max(max(finish, default=0.0), max(busy.values(), default=0.0))


def sum_bytes(tasks: Sequence[Task]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in tasks:
        for level, n in t.bytes.items():
            out[level] = out.get(level, 0) + n
    return out


def sum_actions(tasks: Sequence[Task]) -> dict[str, float]:
    out: dict[str, float] = {}
    for t in tasks:
        for a, n in t.actions.items():
            out[a] = out.get(a, 0.0) + n
    return out


def dominant_bound(tasks: Sequence[Task]) -> str:
    """The bound of the tasks that take the most time together."""
    by: dict[str, float] = {}
    for t in tasks:
        by[t.bound] = by.get(t.bound, 0.0) + t.duration_s
    return max(by, key=by.get) if by else "latency"
