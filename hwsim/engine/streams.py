"""Ops on streams: a graph's nodes scheduled in order on each stream, waiting for
their inputs and for the host that issues them.

A machine runs a graph's kernels on *streams* (a GPU's CUDA streams, an NPU's
task queues): each stream runs its kernels one after another in the order they
were issued, and a kernel waits too for the kernels on other streams whose
output it reads (an event between streams). Independent work on two streams
overlaps (an all-reduce of finished tiles under the next tiles' compute, a copy
of the next key/value block under attention on the current one); dependent work
waits, as on the machine. A host thread issues every node in graph order::

    host     |h0|h1|h2|h3|h4| ...
    compute     [ n0 ][ n1 ]      [ n3 ]
    comm               [ n2 (reads n1) ][ n4 ]

A :class:`Node` is one op (or one piece of it) with its stream, its device time,
the earlier nodes it reads from and its host cost. :func:`run_streams` gives
every node's start and end: node ``i`` starts when the host has issued it, the
node before it on its stream has ended and every node it reads from has ended;
without overlap (a CPU, where the host *is* the device) the host also waits for
the node before ``i`` to end before issuing it. That is the event engine's
schedule (:func:`hwsim.engine.run_events`) of these tasks: the host's issues as a
chain of tasks on unit ``host``, each node a task on its stream's unit depending
on its issue, on the stream's previous node and on its inputs; every unit's
queue then holds at most one ready task, so each task starts at the latest end
among its dependencies. It is computed here directly, in one pass in graph
order, with the same floating-point operations (``tests/test_streams.py`` holds
it to :func:`~hwsim.engine.run_events` to the last bit on random graphs), because
it runs once per simulated graph and a sweep simulates thousands.

A node that runs ``repeat`` times back to back (an op's ``repeat``) is scheduled
in closed form, whatever its count: with overlap the host issues its later runs
every ``repeat_host_s`` and the stream runs them every ``duration_s``, so the
last starts at ``max(second start + (n-2)·d, first issue + (n-1)·h)``; without
overlap each later run is its issue, then its kernel.

With one stream and no other edges this is the host lane of
:mod:`hwsim.runtime` (a single chain of kernels behind a single chain of issues).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import NamedTuple, Sequence


class Node(NamedTuple):
    """One op (or one piece of an op) on a stream."""

    stream: str  # the queue it runs on ("compute", "comm", "copy")
    duration_s: float  # device time of one run
    deps: tuple[int, ...] = ()  # earlier nodes whose output it reads (their ends)
    host_s: float = 0.0  # host time to issue its first run
    repeat: int = 1  # runs back to back on its stream
    repeat_host_s: float = 0.0  # host time to issue each later run
    label: str = ""  # its name on the host lane
    # seconds of its device time (a GPU kernel's launch) that can overlap what it waits
    # for on its stream when the host issued it early (:func:`queued_runs`)
    hide_s: float = 0.0


@dataclass(frozen=True)
class StreamSchedule:
    """Where each node ran (seconds from the first issue)."""

    issue_end_s: list  # the host finished issuing node i's first run
    start_s: list  # node i's first run starts on its stream
    end_s: list  # node i's last run ends
    wait_s: list  # its stream idled before and between its runs, waiting for the host
    host_lane: list  # (label, start_s, end_s) of each issue with a duration
    latency_s: float  # the last end on any stream
    hidden_s: list  # launch time of node i's runs spent behind what they waited for


def run_streams(nodes: Sequence[Node], *, overlaps: bool = True) -> StreamSchedule:
    """Schedule ``nodes`` (in graph order) on their streams; see the module docstring."""
    issue, start, end, wait, lane, hidden = [], [], [], [], [], []
    stream_end: dict[str, float] = {}  # each stream's last end so far
    host_end = 0.0  # the host finished issuing the previous run
    prev_end = 0.0  # the previous node's last run ended (the host waits for it on a CPU)
    latency = 0.0
    for i, node in enumerate(nodes):
        h, d, n = node.host_s, node.duration_s, node.repeat
        for j in node.deps:
            if not 0 <= j < i:
                raise ValueError(f"node {i} reads node {j}: expected an earlier node "
                                 f"(0 to {i - 1})")
        ready = stream_end.get(node.stream, 0.0)
        for j in node.deps:
            e = end[j]
            if e > ready:
                ready = e
        # (max() and min() of two as tests, keeping the value they keep, NaN included: a
        # call of either parses its arguments as keywords too, twice a node)
        h0 = prev_end if i and not overlaps and prev_end > host_end else host_end
        h1 = h0 + h
        s = ready if i and ready > h1 else h1
        waited = s - ready if i else s
        end_issue = h1
        hide = (d if d < node.hide_s else node.hide_s) if overlaps else 0.0
        if hide > 0:
            # the launch is taken in while what it waits for runs: the kernel starts at
            # max(issue + launch, ready + gap), ``hide`` = launch - gap (:func:`queued_runs`)
            hid = min(hide, max(0.0, ready - h1)) if i else 0.0
            done = s + d - hid
            if n > 1:
                done, hid, waited, end_issue = queued_runs(done, hid, waited, h1,
                                                           node.repeat_host_s, d, n, hide)
        else:
            hid = 0.0
            last = s
            if n > 1:
                h_rest = node.repeat_host_s
                if overlaps:
                    first = max(h1 + h_rest, s + d)  # the second run's start
                    end_issue = h1 + (n - 1) * h_rest
                    busy = first + (n - 2) * d  # the last run's start if it never waits
                    last = max(busy, end_issue)
                    waited += (first - (s + d)) + (last - busy)  # 0 exactly when device-bound
                else:
                    last = s + (n - 1) * (h_rest + d)
                    end_issue = last
                    waited += (n - 1) * h_rest  # each later run waits for its own issue
            done = last + d
        issue.append(h1)
        start.append(s)
        wait.append(waited)
        hidden.append(hid)
        if end_issue > h0:
            lane.append((f"issue {node.label}" + (f" x{n}" if n > 1 else ""), h0, end_issue))
        host_end = end_issue
        prev_end = done
        end.append(done)
        stream_end[node.stream] = done
        if done > latency:
            latency = done
    return StreamSchedule(issue, start, end, wait, lane, latency, hidden)


def exposed_s(intervals: Sequence[tuple[float, float]],
              cover: Sequence[tuple[float, float]]) -> float:
    """Seconds of ``intervals`` that no interval of ``cover`` overlaps (``cover``
    sorted by start and not overlapping itself, as one stream's nodes are): the part of
    a communication or copy stream's work that the compute stream does not hide."""
    starts = [c[0] for c in cover]
    total = 0.0
    for s0, s1 in intervals:
        if s1 <= s0:
            continue
        covered = 0.0
        k = max(0, bisect_right(starts, s0) - 1)
        while k < len(cover) and cover[k][0] < s1:
            lo, hi = max(s0, cover[k][0]), min(s1, cover[k][1])
            if hi > lo:
                covered += hi - lo
            k += 1
        total += (s1 - s0) - covered
    return total


def queued_runs(end: float, hid: float, waited: float, h1: float, h_rest: float, d: float,
                n: int, hide: float) -> tuple[float, float, float, float]:
    """The later runs of a node that runs ``n`` times, each beginning with a launch of
    which ``hide`` seconds can overlap the run before it (a GPU's queued launch,
    :meth:`hwsim.targets.Target.queued_launch_s`), in closed form.

    ``end``, ``hid``, ``waited``: the first run's end, the launch time it hid and the
    time its stream waited; ``h1`` its issue's end, ``h_rest`` the host time of each
    later issue, ``d`` one run's device time. With ``delta`` the previous run's end
    less a run's issue, a run hides ``hide`` while ``delta >= hide`` (and ``delta``
    changes by ``d - hide - h_rest`` each run), hides ``delta`` when
    ``0 <= delta < hide``, and waits ``-delta`` when ``delta < 0``; after one run of
    the last two kinds ``delta`` is ``d - h_rest`` for good. Returns the last run's
    end, the launch time hidden and the waits over all runs, and the last issue's end.
    """
    end_issue = h1 + (n - 1) * h_rest
    rest = n - 1
    delta = end - (h1 + h_rest)  # the first run's end less the second's issue
    if delta >= hide:
        step = d - hide - h_rest  # the change of delta per run while it hides all
        runs = rest if step >= 0 else min(rest, int((delta - hide) // -step) + 1)
        end += runs * (d - hide)
        hid += runs * hide
        delta += runs * step
        rest -= runs
    if rest:  # one run that hides part of its launch or waits, then steady
        for _ in range(min(rest, 2)):
            part = min(hide, max(0.0, delta))
            idle = max(0.0, -delta)
            end += d - part + idle
            hid += part
            waited += idle
            delta = d - h_rest if delta < hide else delta + d - hide - h_rest
            rest -= 1
        if rest:  # every later run as the last: delta = d - h_rest
            part = min(hide, max(0.0, delta))
            idle = max(0.0, -delta)
            end += rest * (d - part + idle)
            hid += rest * part
            waited += rest * idle
    return end, hid, waited, end_issue
