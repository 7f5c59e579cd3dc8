"""List scheduling: items dealt one by one to the least loaded of identical workers.

A target that hands its tiles to cores longest first (the LPT rule: each tile to the
core with the least work so far) keeps the cores in a heap of ``(load, worker)``
tuples, least first (no two equal: the worker breaks a tie of loads). :func:`deal`
runs that rule over a list of items and their costs, ``repeat`` times in a row (the
same tiles for each of an op's heads), appending each item to its worker's bin.

``_cevents.deal`` (hwsim/engine/_cevents.c) is the same loop in C where it is built:
the same sums ``load + cost`` of IEEE doubles, and :func:`heapq.heapreplace`'s sift
step for step, so the same items land in the same bins and the heap ends the same;
tests/test_engine_compiled.py holds the two equal. It declines (and this loop runs)
where a load or cost is not a float or is NaN.
"""

from __future__ import annotations

import heapq

from . import events

# the loop in C, None where the build has none
_DEAL = getattr(events._cevents, "deal", None)


def deal(free: list[tuple[float, int]], costs: list[float], items: list, repeat: int,
         bins: list[list]) -> None:
    """``repeat`` times over ``items`` in order: each to the least loaded worker of the
    heap ``free`` (``bins[worker].append(item)``, none for an item that is None), whose
    load grows by the item's cost. ``free`` and ``bins`` are changed in place."""
    if events.COMPILED and _DEAL is not None and _DEAL(free, costs, items, repeat, bins):
        return
    replace = heapq.heapreplace
    adds = [b.append for b in bins]
    for _ in range(repeat):
        for cost, item in zip(costs, items):
            x, worker = free[0]
            replace(free, (x + cost, worker))
            if item is not None:
                adds[worker](item)
