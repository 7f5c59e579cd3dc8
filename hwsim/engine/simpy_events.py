"""The reference event schedule: tasks as simpy processes on simpy resources.

:func:`hwsim.engine.run_events` gives the same schedule without a process per
task; this one states the semantics in simpy's terms and is what a test holds it
equal to. A mechanism whose tasks interact in richer ways than the common
pattern (wait, queue for a unit, queue for a pool slot, hold) starts from here."""

from __future__ import annotations

from typing import Mapping, Sequence

import simpy

from .events import Schedule
from .task import Task


def run_events_simpy(tasks: Sequence[Task], pools: Mapping[str, int] | None = None) -> Schedule:
    """Simulate ``tasks`` and return when each ran.

    A task waits for its dependencies, then queues for its unit (FIFO in the
    order tasks become ready, ties in list order), then for a slot of its pool,
    and holds both for its duration. A task with ``copies`` holds its unit for one
    copy's duration, or all of theirs when ``serial``; one that also names a pool
    (its copies would hold as many slots) is beyond this reference.
    """
    if any(t.copies > 1 and t.pool and not t.serial for t in tasks):
        raise NotImplementedError("copies that hold several pool slots: see run_events")
    if not tasks:
        return Schedule(0.0, (), ())
    env = simpy.Environment()
    units: dict[str, simpy.Resource] = {}
    pool_res = {name: simpy.Resource(env, capacity=max(1, int(cap)))
                for name, cap in (pools or {}).items()}
    done = [env.event() for _ in tasks]
    starts = [0.0] * len(tasks)
    ends = [0.0] * len(tasks)

    def run(i: int, task: Task):
        if task.deps:
            pending = [done[d] for d in task.deps if not done[d].processed]
            if pending:
                yield env.all_of(pending)
        hold = task.duration_s * task.copies if task.serial else task.duration_s
        unit = units.get(task.unit)
        if unit is None:
            unit = units[task.unit] = simpy.Resource(env, capacity=1)
        with unit.request() as req:
            yield req
            if task.pool:
                pool = pool_res.get(task.pool)
                if pool is None:
                    pool = pool_res[task.pool] = simpy.Resource(env, capacity=1)
                with pool.request() as preq:
                    yield preq
                    starts[i] = env.now
                    yield env.timeout(hold)
            else:
                starts[i] = env.now
                yield env.timeout(hold)
        ends[i] = env.now
        done[i].succeed()

    for i, task in enumerate(tasks):
        for d in task.deps:
            if d >= i:
                raise ValueError(f"task {i} depends on a later task {d}")
        env.process(run(i, task))
    env.run()
    return Schedule(max(ends), tuple(starts), tuple(ends))
