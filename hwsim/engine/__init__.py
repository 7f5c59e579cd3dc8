"""Running lowered ops: tasks on a machine's units, scheduled two ways.

A target lowers each op to :class:`Task` objects (tiles): the unit a task
occupies (``core3.cube``, ``core3.mte2``), how long it occupies it, the bytes it
moves at each memory level, the actions it performs (priced later by the energy
table), what limits it, the earlier tasks it waits for, and optionally a shared
*pool* it must also hold (``dram``: a bounded number of concurrent transfers,
the way DRAM channels bound a chip's bandwidth). A task may stand for a group of
identical members (``copies``: cores with the same work, emitted once, their lane
named by :func:`group_name`), see :class:`Task`.

Two schedules share that lowering:

- :func:`run_events` (fidelity ``event``): a discrete-event simulation. Each
  unit is a resource of capacity one, each pool a resource of its declared
  capacity; a task starts when its dependencies are done, its unit is free and
  (if it names one) a pool slot is free. Double buffering, overlap between units
  and queueing for DRAM come out of the run. It runs that one pattern on a heap
  of events, with the schedule that the same tasks give as simpy processes
  (:func:`hwsim.engine.simpy_events.run_events_simpy`, the reference a test
  holds it equal to, to the last bit) at about a tenth of the cost.
- :func:`analytical_latency` (fidelity ``analytical``): no simulation; the
  larger of the critical path through the dependencies, the busiest unit's total
  time, and each pool's total time divided by its capacity. It is a lower bound
  on the event schedule, and equal to it when one resource dominates.
  :func:`summarize` gives it together with an op's bytes, actions and bound in
  one pass over the tasks (:mod:`hwsim.engine.summary`).
"""

from .events import Schedule, run_events
from .summary import (
    Accumulator,
    Summary,
    analytical_latency,
    dominant_bound,
    sum_actions,
    sum_bytes,
    summarize,
)
from .task import BOUNDS, Task, group_name

__all__ = ["Accumulator", "analytical_latency", "Schedule", "run_events", "BOUNDS", "Task",
           "dominant_bound", "sum_actions", "sum_bytes", "Summary", "summarize", "group_name"]
