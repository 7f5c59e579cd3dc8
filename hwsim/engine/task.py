"""The unit of work a target lowers ops into."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, NamedTuple, Sequence

BOUNDS = ("compute", "memory", "onchip", "latency", "interconnect")
_NONE: Mapping = MappingProxyType({})  # the shared, read-only default of bytes and actions


class Task(NamedTuple):
    """One tile of an op on one unit. A named tuple (immutable, made in a third of
    the time of a frozen dataclass: ops lower to thousands of tasks); ``bytes`` and
    ``actions`` are read, never changed, once the task is made.

    ``copies``: the task stands for that many identical tasks of as many identical
    members (a group of cores or threads with the same work: the target emits one
    representative instead of one per member). Each copy counts its bytes and
    actions and holds a slot of the pool. By default each copy has a unit of its own
    (the member's core), so the unit's busy time is one copy's, and the schedule is
    the one the members, expanded onto their own units, would get wherever they do
    not contend for a pool slot (a test holds the two equal). With ``serial`` the
    copies share this one unit (the members' transfers over a shared link) and run
    one after another: the task holds the unit for ``copies x duration_s`` in the
    event schedule, which ends with its last member's share; the analytical
    schedule counts that busy time and, on the critical path, the first member's
    ``duration_s``, as it would for the members' own tasks."""

    unit: str  # resource the task occupies, e.g. "chip", "core3.cube", "core3.mte2"
    duration_s: float
    bytes: Mapping[str, int] = _NONE  # level -> bytes, e.g. dram_read
    actions: Mapping[str, float] = _NONE  # action -> count
    deps: tuple[int, ...] = ()  # indices of earlier tasks of the same op
    bound: str = "compute"  # what limits this task (one of BOUNDS)
    pool: str = ""  # shared pool held too (e.g. "dram"), "" for none
    label: str = ""  # shown on the timeline
    copies: int = 1  # identical members it stands for (see above)
    serial: bool = False  # the copies share this unit, one after another (see above)


def group_name(prefix: str, members: Sequence[int]) -> str:
    """The unit name of a group of members (tasks with ``copies``): ``core3`` alone,
    ``core0-7`` for a run, ``core2+5`` (the first and how many more) otherwise."""
    first, k = members[0], len(members)
    if k == 1:
        return f"{prefix}{first}"
    if members[-1] - first == k - 1:
        return f"{prefix}{first}-{members[-1]}"
    return f"{prefix}{first}+{k - 1}"
