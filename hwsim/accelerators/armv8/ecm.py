"""Per-thread work in the Execution-Cache-Memory (ECM) model, and its tasks.

A lowered op is a :class:`Plan`: ``threads`` identical threads, each running the
same list of :class:`Step` s (packing a block, a run of micro-kernels, a tile of
a streaming loop). A step records what the ECM model needs:

- ``arith_cycles``: the in-core time of the instructions on the FP/ASIMD pipes
  (FMA throughput, FMA latency chains, front-end issue): ECM's T_OL;
- ``port_cycles``: the L1 load and store ports: ECM's T_nOL;
- ``l2_bytes`` and ``l3_bytes``: what the L2 must deliver to L1 and the last
  level (or a peer core's cache, over the mesh) to L2;
- ``dram_read`` / ``dram_write``: what comes from or goes to DRAM (written
  results included: the caches write back, so every written line reaches DRAM);
- ``tlb_walks``: page-table walks after TLB misses (a kernel walking an unpacked
  operand with a stride of a page or more, :func:`.placement.strided_walk`).

Its time in cache is the ECM composition ``max(T_OL, T_nOL + T_L2 + T_L3 + T_TLB)``:
arithmetic overlaps with data transfers, but the transfers between cache levels
do not overlap each other or the L1 accesses (the ECM rule), and a load whose
page is not in the TLB waits for its walk (``tlb_walk_s`` each, one at a time).
Where the spec sets ``l3_overlaps`` (the Kunpeng 920: lmbench's chase takes a line
from L3 in 4.15 ns against 3.1-3.6 ns from L2, which a serial L3 transfer could
only fit at 61-116 GB/s, beyond the cluster port's 20 GB/s), the L3 stream, which
the L2 prefetcher runs ahead of, overlaps the L1 and L2 transfers:
``max(T_OL, T_nOL + T_L2 + T_TLB, T_L3)``; a step whose walk touches a new page every
access (``Step.l3_stream`` False) has demand misses only and keeps the sum. DRAM traffic is a
separate task on the thread's memory lane, at the rate that thread streams while
all the op's threads stream (:mod:`.memory`: Little's law over its lines in
flight, the queueing at its cluster's port, its node's DDR channels and, for
remote pages, the links); the core task of a tile waits for its data, and the next
tile's data is fetched while the current one computes (hardware prefetch, one tile
ahead), so DRAM overlaps with execution in cache and a thread slowed by its
neighbours delays the join.

Units: ``core{i}`` (tile execution in cache), ``core{i}.mem`` (its DRAM
transfers), ``sync`` (fork, barriers, join), ``call`` (the library call before
the threads start). Threads that stream at the same rate run in step and are
emitted as one group (:func:`thread_groups`): its units are named by its cores
(``core0-63``, ``core0-63.mem``) and its tasks carry the group's size as copies.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from hwsim.engine import Accumulator, Task, group_name

from .spec import DRAM_POOL, Machine

_new = object.__new__  # (an instance without running __init__: Step.scaled, Step.copy)
_EMPTY = MappingProxyType({})  # a task's bytes or actions when it has none (read-only)


@dataclass(slots=True)
class Step:
    """What one thread does in one step of a plan: its in-core and L1-port cycles, the
    bytes it moves at each level (a DRAM read crosses L3, L2 and L1: :meth:`read`),
    its page-table walks and vector instructions; the ECM model times it
    (:func:`times`) and the threads meet after it where ``barrier`` says so."""

    # (slots: a planner makes tens of thousands of steps a run; an object without a
    # dict of its own is one allocation for the garbage collector to track, not two)
    label: str
    arith_cycles: float = 0.0
    port_cycles: float = 0.0
    l1_bytes: float = 0.0
    l2_bytes: float = 0.0
    l3_bytes: float = 0.0
    dram_read: float = 0.0
    dram_write: float = 0.0
    tlb_walks: float = 0.0
    vfma: float = 0.0
    vop: float = 0.0
    barrier: bool = False  # every thread meets here after this step
    rounds: int = 1  # the barriers (merged k-blocks, repetitions) this step stands for
    # its L3 lines come in a stream the L2 prefetcher runs ahead of (False: demand
    # misses, as a walk that touches a new page every access gets: prefetchers stop at
    # a page's edge), which overlaps the L1 and L2 transfers where the spec's
    # l3_overlaps says so
    l3_stream: bool = True

    def scaled(self, f: float) -> "Step":
        out = _new(Step)  # a copy (dataclasses.replace re-runs __init__: slower)
        out.label = self.label
        # the amounts (_AMOUNTS), field by field: a planner scales thousands of steps
        out.arith_cycles = self.arith_cycles * f
        out.port_cycles = self.port_cycles * f
        out.l1_bytes = self.l1_bytes * f
        out.l2_bytes = self.l2_bytes * f
        out.l3_bytes = self.l3_bytes * f
        out.dram_read = self.dram_read * f
        out.dram_write = self.dram_write * f
        out.tlb_walks = self.tlb_walks * f
        out.vfma = self.vfma * f
        out.vop = self.vop * f
        out.barrier = self.barrier
        out.rounds = self.rounds
        out.l3_stream = self.l3_stream
        return out

    def copy(self) -> "Step":
        """A copy with the same amounts (the same float objects)."""
        out = _new(Step)
        out.label = self.label
        out.arith_cycles = self.arith_cycles
        out.port_cycles = self.port_cycles
        out.l1_bytes = self.l1_bytes
        out.l2_bytes = self.l2_bytes
        out.l3_bytes = self.l3_bytes
        out.dram_read = self.dram_read
        out.dram_write = self.dram_write
        out.tlb_walks = self.tlb_walks
        out.vfma = self.vfma
        out.vop = self.vop
        out.barrier = self.barrier
        out.rounds = self.rounds
        out.l3_stream = self.l3_stream
        return out

    def add(self, other: "Step") -> None:
        self.arith_cycles += other.arith_cycles
        self.port_cycles += other.port_cycles
        self.l1_bytes += other.l1_bytes
        self.l2_bytes += other.l2_bytes
        self.l3_bytes += other.l3_bytes
        self.dram_read += other.dram_read
        self.dram_write += other.dram_write
        self.tlb_walks += other.tlb_walks
        self.vfma += other.vfma
        self.vop += other.vop

    def read(self, level: str, nbytes: float) -> None:
        """Bytes that live at ``level`` brought into L1: they cross every level between."""
        # (each level spelled out, not through a shared helper: planners read and write
        # tens of thousands of times per run)
        self.l1_bytes += nbytes
        if level == "l1":
            return
        self.l2_bytes += nbytes
        if level == "l2":
            return
        self.l3_bytes += nbytes
        if level == "dram":
            self.dram_read += nbytes

    def write(self, level: str, nbytes: float) -> None:
        """Bytes written back until they rest at ``level``."""
        self.l1_bytes += nbytes
        if level == "l1":
            return
        self.l2_bytes += nbytes
        if level == "l2":
            return
        self.l3_bytes += nbytes
        if level == "dram":
            self.dram_write += nbytes


_AMOUNTS = tuple(f.name for f in fields(Step) if f.type in ("float", float))  # scaled, added
# (Step.scaled and Step.add name them one by one; a test holds the two lists equal)


@dataclass
class Times:
    """ECM terms of a step, in seconds."""

    in_core: float
    l1: float
    l2: float
    l3: float
    dram: float  # at the rate of one core streaming alone from local DRAM (no contention)
    tlb: float = 0.0  # page-table walks
    l3_overlaps: bool = False  # the spec's l3_overlaps (transfers)

    @property
    def transfers(self) -> float:
        if self.l3_overlaps:
            return _overlapped(self.l1 + self.l2 + self.tlb, self.l3)
        return self.l1 + self.l2 + self.l3 + self.tlb

    @property
    def in_cache(self) -> float:
        return max(self.in_core, self.transfers)

    @property
    def bound(self) -> str:
        return "compute" if self.in_core >= self.transfers else "onchip"


def _overlapped(near: float, l3: float) -> float:
    """The transfers of a step whose L3 stream overlaps its L1 and L2 transfers (spec
    ``l3_overlaps``): the longer of the two."""
    return near if near >= l3 else l3


def l3_s(step: Step, l3_bw: float, shared_bw: float) -> float:
    """The step's L3 term: its L3 hits at ``shared_bw``, the rate a thread reads the L3
    with the op's threads sharing their clusters' ports (:meth:`~.spec.Machine.l3_rate`),
    and the lines on their way from or to DRAM (counted in ``l3_bytes`` too: they
    cross the L3) at the core's own ``l3_bw``, since their queueing at the port is
    the DRAM lane's (:mod:`.memory`). ``l3_bytes / l3_bw`` exactly where nothing is
    shared."""
    if shared_bw == l3_bw:
        return step.l3_bytes / l3_bw
    hits = step.l3_bytes - step.dram_read - step.dram_write
    if hits <= 0.0:
        return step.l3_bytes / l3_bw
    return hits / shared_bw + (step.l3_bytes - hits) / l3_bw


def times(step: Step, mach: Machine, shared_bw: float | None = None) -> Times:
    """The terms of ``step``; ``shared_bw``: the L3 rate of a thread among the op's
    (:meth:`~.spec.Machine.l3_rate`, for its L3 hits; None: one core alone)."""
    return Times(step.arith_cycles * mach.cycle_s, step.port_cycles * mach.cycle_s,
                 step.l2_bytes / mach.l2_bw,
                 l3_s(step, mach.l3_bw, mach.l3_bw if shared_bw is None else shared_bw),
                 (step.dram_read + step.dram_write) / mach.slot_bw,
                 step.tlb_walks * mach.spec.tlb_walk_s,
                 mach.spec.l3_overlaps and step.l3_stream)


@dataclass
class Plan:
    """One op's parallel execution: ``threads`` threads each running ``steps``."""

    strategy: str
    threads: int
    steps: list[Step]
    dtype: str
    serial_s: float = 0.0  # the library call before the threads are woken
    kernel: str = ""
    detail: dict = field(default_factory=dict)
    # a candidate's steps not yet cut into their tiles (:func:`tiles`): steps[i] is the
    # first of runs[i] equal tiles; None: the steps as they run (:func:`materialize`)
    runs: list[int] | None = None
    # the share of the op's DRAM lines that are written back (Machine.with_writes: they
    # leave a cluster on its port's outbound lane); 0: every line on the inbound lane
    write_share: float = 0.0


def tiles(step: Step, parts: int) -> tuple[Step, int]:
    """:func:`split` of ``step``, not yet made: its first tile and how many there are.

    A planner estimates many candidate plans and keeps one: a candidate holds each
    split step as its first tile and a count (:attr:`Plan.runs`), which
    :func:`estimate` reads as the tiles themselves, and only the plan kept is cut into
    its tiles (:func:`materialize`): the same tiles as :func:`split` makes."""
    if parts <= 1:
        return step, 1
    return step.scaled(1.0 / parts), parts


def materialize(plan: Plan) -> Plan:
    """``plan`` with its runs cut into their tiles (in place; :func:`tiles`)."""
    if plan.runs is None:
        return plan
    steps: list[Step] = []
    for first, parts in zip(plan.steps, plan.runs):
        if parts <= 1:
            steps.append(first)
        else:
            steps += _cut(first, parts)
    plan.steps, plan.runs = steps, None
    return plan


def estimate(plan: Plan, mach: Machine, share: float | None = None) -> float:
    """Latency without a simulation: the schedule :func:`emit` gives one thread (its
    DRAM transfers on its memory lane, each waiting for the tile two before it; each
    tile's execution waiting for its data and the tile before; fork, barriers and
    join), with every transfer stretched by the turns the threads take for the DRAM
    pool's slots. Exact while the threads do not outnumber the slots. Used to choose
    thread counts, blocks and strategies, as a tuned library would.

    The terms of :func:`times` are computed inline, in its order (the same floats):
    a planner estimates thousands of candidate plans per sweep point. ``share``:
    the transfers' stretch to assume instead of the slowest thread's (the estimate
    never falls as it grows)."""
    t = plan.threads
    per_t = mach.__dict__.setdefault("_estimate_terms", {})  # per thread count (below)
    got = per_t.get(t)
    if got is None:
        # the fork; the L3 hits' rate with the op's threads sharing their clusters'
        # ports (l3_s); a barrier
        got = per_t[t] = (None, mach.fork_s(t), mach.l3_rate(t), mach.barrier_s(t))
    if share is None:
        # the slowest thread's transfers: its rate with all the op's threads streaming
        # (memory.stream_rates), against one core's alone in times() (asked for only
        # here: fastest() bounds a candidate before its rates are solved)
        share = got[0]
        if share is None:
            share = mach.slot_bw / mach.slowest_rate(t)
            per_t[t] = (share, *got[1:])
    gate = plan.serial_s + got[1]
    mem_end = gate
    cycle_s, l2_bw, l3_bw, slot_bw = mach.cycle_s, mach.l2_bw, mach.l3_bw, mach.slot_bw
    l3_shared = got[2]
    alone = l3_shared == l3_bw
    walk_s = mach.spec.tlb_walk_s
    overlaps = mach.spec.l3_overlaps
    barrier_s = got[3]
    end1 = end2 = None  # the last two steps' ends
    steps = plan.steps
    runs = plan.runs or [1] * len(steps)
    last = sum(runs) - 1
    # (the larger of two floats by a comparison, not max(): the same value, and a
    # planner's thousands of estimates spend a third of their time in max calls)
    j = 0  # the tile's place in the plan
    for s, n in zip(steps, runs):
        # a run's tiles have the same amounts: their terms are the same floats
        in_core = s.arith_cycles * cycle_s
        if overlaps and s.l3_stream:
            transfers = _overlapped(s.port_cycles * cycle_s + s.l2_bytes / l2_bw
                                    + s.tlb_walks * walk_s,
                                    s.l3_bytes / l3_bw if alone else l3_s(s, l3_bw, l3_shared))
        else:
            transfers = (s.port_cycles * cycle_s + s.l2_bytes / l2_bw
                         + (s.l3_bytes / l3_bw if alone else l3_s(s, l3_bw, l3_shared))
                         + s.tlb_walks * walk_s)
        work = in_core if in_core >= transfers else transfers
        moves = s.dram_read or s.dram_write
        if moves:
            mem_s = share * ((s.dram_read + s.dram_write) / slot_bw)
        for i in range(n):
            start = gate
            if moves:
                ready = gate if gate >= mem_end else mem_end
                if end2 is not None and end2 > ready:
                    ready = end2
                mem_end = ready + mem_s
                if mem_end > start:
                    start = mem_end
            if end1 is not None and end1 > start:
                start = end1
            end2, end1 = end1, start + work
            # (a split step's barrier is its last tile's)
            if i == n - 1 and s.barrier and t > 1 and j < last:
                gate = end1 + barrier_s * s.rounds
            j += 1
    return (end1 if end1 is not None else gate) + barrier_s


def fastest(plans: list[Plan], mach: Machine, memo: dict | None = None,
            die: bool = False) -> Plan:
    """The plan of least :func:`estimate` (the first of equals); ``memo`` keeps the
    estimates by plan (``id``) for a caller that asks again about the same plans.

    A candidate on a thread count whose stream rates are not solved yet is estimated
    last, and not at all when it cannot be the fastest of its strategy: when its
    estimate with every thread streaming at the fastest its thread count allows
    (:meth:`~.spec.Machine.share_floor`: :attr:`~.spec.Machine.rate_ceiling`, or the
    most loaded node's share of its bandwidth; no thread streams faster, so no
    estimate is lower) already exceeds the least of its strategy so far. Its rates, a
    queueing network solve, are then never asked for. Such candidates are met in the
    order of that estimate (the first of equals first): the likeliest to win is solved
    first, and the others meet its estimate (a vector op of a few vectors solved 2
    threads before the 4 that won; the plan kept does not depend on the order: a
    candidate passed over is slower than one kept). With ``die`` (a search over
    every thread count, whose candidates share a few dies' loads), a candidate that
    this bound does not pass over is bounded again with its most loaded die alone, by
    a bound on that die's slowest rate that costs no solve
    (:meth:`~.spec.Machine.share_floor`; the die's own solve, a tighter bound, cost
    about what the joint solves it spared, and is not asked for).
    The plan returned is the one the plain search returns, and each strategy's least
    estimate is in ``memo`` (a caller reports it)."""
    if not plans:
        return None
    memo = {} if memo is None else memo
    known = mach._rates  # thread counts whose rates are solved
    floor_share = mach.floor_share
    best: dict = {}  # strategy -> [plan, estimate, place in plans]

    def keep(i: int, p: Plan, est: float) -> None:
        b = best.get(p.strategy)
        if b is None or est < b[1] or (est == b[1] and i < b[2]):
            best[p.strategy] = [p, est, i]

    later = []
    for i, p in enumerate(plans):
        got = memo.get(id(p))
        if got is not None and got[0] is p:
            keep(i, p, got[1])
        elif floor_share is None or p.threads in known:
            got = memo[id(p)] = (p, estimate(p, mach))
            keep(i, p, got[1])
        else:
            later.append((i, p))
    # the candidates on unsolved counts in the order of their bound at the fastest
    # rates (the first of equals first): the likeliest to win is solved first, and the
    # others then meet its estimate (which one is kept does not depend on the order)
    later = sorted(((estimate(p, mach, mach.share_floor(p.threads)), i, p) for i, p in later),
                   key=lambda x: (x[0], x[1]))
    for bound, i, p in later:
        b = best.get(p.strategy)
        if b is not None and (bound > b[1] or (
                die and estimate(p, mach, mach.share_floor(p.threads, True, False)) > b[1])):
            continue  # slower than its strategy's best even at the fastest rates
        got = memo[id(p)] = (p, estimate(p, mach))
        keep(i, p, got[1])
    return min(best.values(), key=lambda b: (b[1], b[2]))[0]


def thread_groups(rates: tuple[float, ...] | list[float]) -> list[list[int]]:
    """The threads in groups of equal DRAM rate, in order of their first member.

    Threads run the same steps; those that also stream at the same rate have the
    same schedule (their memory lanes are their own and the ``dram`` pool has a slot
    for every core), so each group is emitted once, as tasks with ``copies``
    (:class:`hwsim.engine.Task`): the same times, bytes and actions as one task per
    thread, in a fraction of the tasks."""
    groups: dict[float, list[int]] = {}
    for i, r in enumerate(rates):
        groups.setdefault(r, []).append(i)
    return list(groups.values())


def emit(plan: Plan, mach: Machine, label: str, *, grouped: bool = True) -> list[Task]:
    """The plan as engine tasks (see the module docstring); threads of equal rate as
    one group (:func:`thread_groups`; ``grouped=False``: one lane per thread)."""
    mach = mach.with_writes(plan.write_share)
    tasks: list[Task] = []
    fma_action = f"vfma_{plan.dtype}"

    def add(unit, duration_s, nbytes, actions, deps, bound, pool, text, copies=1) -> int:
        tasks.append(Task(unit, duration_s, nbytes, actions, deps, bound, pool, text, copies))
        return len(tasks) - 1

    none = _EMPTY
    gate: tuple[int, ...] = ()
    if plan.serial_s > 0:
        gate = (add("call", plan.serial_s, none, none, (), "latency", "",
                    f"{label} call"),)
    t = plan.threads
    if t > 1:
        gate = (add("sync", mach.fork_s(t), none, none, gate, "latency", "",
                    f"{label} fork {t} threads"),)
    # each thread streams at its rate with all the op's threads streaming: the
    # queueing at its cluster, node and links for their placement (memory.py)
    slow, groups, units = _lanes(mach, t, grouped)
    last_core: list[list[int]] = [[] for _ in groups]
    mem_label = ""
    l3_shared = mach.l3_rate(t)  # the L3 hits' rate among the op's threads (l3_s)
    for j, step in enumerate(plan.steps):
        tm = times(step, mach, l3_shared)
        ends = []
        # what every thread's tasks of this step share (read-only once made)
        moves = step.dram_read or step.dram_write
        if moves:
            # whole bytes, rounded up: a tile's share of a small tensor is never 0
            mem_bytes = {"dram_read": math.ceil(step.dram_read - 1e-6),
                         "dram_write": math.ceil(step.dram_write - 1e-6)}
            mem_actions = {"dram_byte": step.dram_read + step.dram_write}
            mem_label = f"{label} {step.label} dram"
        core_bytes = {"l2": int(step.l2_bytes), "l3": int(step.l3_bytes)}
        core_actions = {fma_action: step.vfma, "vop": step.vop, "l1_byte": step.l1_bytes,
                        "l2_byte": step.l2_bytes, "l3_byte": step.l3_bytes}
        core_label = f"{label} {step.label}"
        in_cache, bound = tm.in_cache, tm.bound
        for g, members in enumerate(groups):
            k = len(members)
            deps = list(gate)
            mine = last_core[g]
            if moves:
                mdeps = list(gate)
                if len(mine) >= 2:  # prefetch one tile ahead of the tile being computed
                    mdeps.append(mine[-2])
                mem = add(f"{units[g]}.mem", tm.dram * slow[members[0]], mem_bytes,
                          mem_actions,
                          tuple(sorted(set(mdeps))) if len(mdeps) > 1 else tuple(mdeps),
                          "memory", DRAM_POOL, mem_label, k)
                deps.append(mem)
            if mine:
                deps.append(mine[-1])
            core = add(units[g], in_cache, core_bytes, core_actions,
                       tuple(sorted(set(deps))) if len(deps) > 1 else tuple(deps),
                       bound, "", core_label, k)
            mine.append(core)
            ends.append(core)
        if step.barrier and t > 1 and j < len(plan.steps) - 1:
            gate = (add("sync", mach.barrier_s(t) * step.rounds, none, none, tuple(ends),
                        "latency", "", f"{label} barrier"),)
    if t > 1:
        add("sync", mach.barrier_s(t), none, none, tuple(m[-1] for m in last_core if m),
            "latency", "", f"{label} join")
    return tasks


def summarize_plan(plan: Plan, mach: Machine, pools, terms: list | None = None) -> tuple:
    """``(summary, tasks)``: what :func:`hwsim.engine.summarize` gives for
    :func:`emit`'s tasks of ``plan`` and how many there are, without making or
    handing over a task (the ``analytical`` fidelity).

    :func:`emit`'s tasks have a fixed shape (a call, a fork, per step and thread
    group a DRAM transfer and a tile, barriers, a join), so the sums are taken here
    directly, each in the order :class:`~hwsim.engine.Accumulator` takes them task by
    task: a figure that several tasks add to is added to in task order, the same
    floats; the bytes are integers; the units, bounds, levels and actions are met
    in the same order (a test holds the result to the tasks' summary). A thread
    group's tiles have the same times as every other group's, so the cores' busy
    time is summed once.

    ``terms``: a list to append the per-thread ECM terms summed over the steps to, as
    :meth:`.target.ARMv8Target._terms` sums them (the same floats, in step order: the
    loop meets each step's terms anyway; a report's line asks for them next)."""
    acc = Accumulator()
    t = plan.threads
    mach = mach.with_writes(plan.write_share)
    (ks, placed, slows, units, mem_units, mem_at, fork_s, l3_shared,
     barrier_s) = _summary_terms(mach, t)
    n_groups = len(ks)
    busy: dict = {}  # the units and pool, in the order the tasks meet them
    head: dict = {}  # their tasks' earliest starts (Accumulator.head)
    first_move = -1  # the first step that moves DRAM bytes
    count = 0
    path = 0.0
    sync_s = None  # the sync unit's busy time (None: no sync task)
    gate_f = 0.0  # the finish of the gate (0.0: no gate)
    if plan.serial_s > 0:
        busy["call"] = [plan.serial_s, {"latency": plan.serial_s}]
        gate_f = path = 0.0 + plan.serial_s
        count += 1
    if t > 1:
        d = fork_s
        busy["sync"] = None  # (its place; filled in at the end)
        head["sync"] = gate_f  # (the fork, after the call)
        sync_s = 0.0 + d
        gate_f = gate_f + d
        if gate_f > path:
            path = gate_f
        count += 1
    fma_action = f"vfma_{plan.dtype}"
    # the bytes (integers: any order) and actions (floats: task order), by key
    dram_read = dram_write = l2 = l3 = 0
    dram_byte = vfma = vop = l1_byte = l2_byte = l3_byte = 0.0
    moved = False  # a DRAM transfer has been met (its keys and units exist)
    mem_first = False  # ... before the first tile (its keys come first)
    core_total = 0.0
    by_compute = by_onchip = None  # the tiles' time by bound (None: not met yet) ...
    by_order: list = []  # ... and the order the bounds are met in
    mem_total = [0.0] * n_groups
    pool_total = 0.0
    # each group's last tile's finish and the one before (-inf: none yet; no finish
    # is below it, so a comparison with it is one with no tile)
    last1: list = [-math.inf] * n_groups
    last2: list = [-math.inf] * n_groups
    steps = plan.steps
    final = len(steps) - 1
    cycle_s, l2_bw, l3_bw, slot_bw = mach.cycle_s, mach.l2_bw, mach.l3_bw, mach.slot_bw
    alone = l3_shared == l3_bw
    walk_s = mach.spec.tlb_walk_s
    overlaps = mach.spec.l3_overlaps
    # the ECM terms' sums for ``terms`` (DRAM at the slowest thread's rate)
    rate = mach.slowest_rate(t) if terms is not None else 0.0
    s_core = s_pack = s_l1 = s_l2 = s_l3 = s_tlb = s_dram = 0.0
    prev = None  # the step before
    # each step's tile time and its barrier's (None: none), for the lanes' tails
    tile_s: list = []
    bar_s: list = []
    last_move = -1  # the last step that moves DRAM bytes
    for j, step in enumerate(steps):
        if (prev is None or step.arith_cycles is not prev.arith_cycles
                or step.port_cycles is not prev.port_cycles
                or step.l2_bytes is not prev.l2_bytes or step.l3_bytes is not prev.l3_bytes
                or step.tlb_walks is not prev.tlb_walks
                or step.dram_read is not prev.dram_read
                or step.dram_write is not prev.dram_write
                or step.l3_stream is not prev.l3_stream or step.vfma is not prev.vfma
                or step.vop is not prev.vop or step.l1_bytes is not prev.l1_bytes):
            # (else a tile of the same run as the step before: _cut copies the first
            # tile's amounts, the same float objects, so its terms are the step before's
            # and its units are met; only the sums below, which depend on the order, are
            # taken again. Equal amounts in other objects are computed again: the same.)
            # times(step), inline: the same floats (Times.transfers adds l1, l2, l3, tlb)
            in_core = step.arith_cycles * cycle_s
            t_l1 = step.port_cycles * cycle_s
            t_l2 = step.l2_bytes / l2_bw
            t_l3 = step.l3_bytes / l3_bw if alone else l3_s(step, l3_bw, l3_shared)
            t_tlb = step.tlb_walks * walk_s
            if overlaps and step.l3_stream:
                transfers = _overlapped(t_l1 + t_l2 + t_tlb, t_l3)
            else:
                transfers = t_l1 + t_l2 + t_l3 + t_tlb
            if in_core >= transfers:
                in_cache, bound = in_core, "compute"
            else:
                in_cache, bound = transfers, "onchip"
            if terms is not None:
                t_dram = (step.dram_read + step.dram_write) / rate
            moves = step.dram_read or step.dram_write
            if moves:
                if not moved:
                    moved = True
                    mem_first = j == 0
                    first_move = j
                    for g in range(n_groups):  # the units, as the first moving step meets them
                        busy[mem_units[g]] = None
                        if g == 0:
                            busy[("pool", DRAM_POOL)] = None
                        if j == 0:
                            busy[units[g]] = None
                # the threads' bytes at once (integers: the groups' sum, in any order)
                rb = math.ceil(step.dram_read - 1e-6) * placed
                wb = math.ceil(step.dram_write - 1e-6) * placed
                mb = step.dram_read + step.dram_write
                dram = mb / slot_bw
            elif j == 0:
                for g in range(n_groups):
                    busy[units[g]] = None
            ib2, ib3 = int(step.l2_bytes) * placed, int(step.l3_bytes) * placed
            n_tasks = 2 * n_groups if moves else n_groups
            # what each group adds at every tile of these amounts (the same products
            # each time: made once): its transfer, its slots' share of the pool, its
            # DRAM bytes' action, and its tiles' actions (n * 1 is n)
            adds = []
            for g in range(n_groups):
                k = ks[g]
                d = dram * slows[g] if moves else 0.0
                if k == 1:
                    adds.append((d, d * k, mb if moves else 0.0, step.vfma, step.vop,
                                 step.l1_bytes, step.l2_bytes, step.l3_bytes))
                else:
                    adds.append((d, d * k, mb * k if moves else 0.0, step.vfma * k,
                                 step.vop * k, step.l1_bytes * k, step.l2_bytes * k,
                                 step.l3_bytes * k))
            if bound == "compute":
                if by_compute is None:
                    by_order.append(bound)
                    by_compute = 0.0
            elif by_onchip is None:
                by_order.append(bound)
                by_onchip = 0.0
        prev = step
        if terms is not None:  # (ARMv8Target._terms' sums, step after step)
            s_core += in_core
            if step.label.startswith(("pack", "pre-pack")):
                s_pack += in_core
            s_l1 += t_l1
            s_l2 += t_l2
            s_l3 += t_l3
            s_tlb += t_tlb
            s_dram += t_dram
        core_total += in_cache
        tile_s.append(in_cache)
        if moves:
            last_move = j
        if bound == "compute":
            by_compute += in_cache
        else:
            by_onchip += in_cache
        ends_max = 0.0
        g = 0
        for d, dk, mbk, a_fma, a_op, a_l1, a_l2, a_l3 in adds:
            start = gate_f
            if moves:
                p2 = last2[g]
                if p2 > start:
                    start = p2
                if j == first_move:  # each lane's first transfer and the pool's
                    head[mem_units[g]] = start
                    if start < head.get(("pool", DRAM_POOL), math.inf):
                        head["pool", DRAM_POOL] = start
                fm = start + d
                if fm > path:
                    path = fm
                mem_total[g] += d
                pool_total += dk
                dram_byte += mbk
                start = fm  # (after the gate: the transfer waited for it)
            p1 = last1[g]
            if p1 > start:
                start = p1
            if not j:  # the group's first tile
                head[units[g]] = start
            fc = start + in_cache
            if fc > path:
                path = fc
            if fc > ends_max:
                ends_max = fc
            last2[g], last1[g] = p1, fc
            vfma += a_fma
            vop += a_op
            l1_byte += a_l1
            l2_byte += a_l2
            l3_byte += a_l3
            g += 1
        # (the bytes are integers: the groups' sum is the threads' at once)
        if moves:
            dram_read += rb
            dram_write += wb
        l2 += ib2
        l3 += ib3
        count += n_tasks
        if step.barrier and t > 1 and j < final:
            d = barrier_s * step.rounds
            bar_s.append(d)
            sync_s += d
            gate_f = ends_max + d
            if gate_f > path:
                path = gate_f
            count += 1
        else:
            bar_s.append(None)
    if t > 1:
        d = barrier_s
        sync_s += d
        f = max(last1) if steps else 0.0
        f = f if f > 0.0 else 0.0
        if f < head["sync"]:  # (the join, where no tile came before it)
            head["sync"] = f
        f += d
        if f > path:
            path = f
        count += 1
    if terms is not None:
        terms.append({"in_core_s": s_core, "pack_s": s_pack, "l1_s": s_l1, "l2_s": s_l2,
                      "l3_s": s_l3, "tlb_s": s_tlb, "dram_s": s_dram})
    if not count:
        return acc.summary(pools), 0
    for key in busy:
        if key == "call":
            continue
        if key == "sync":
            busy[key] = [sync_s, {"latency": sync_s}]
        elif type(key) is tuple:
            busy[key] = [pool_total, {"memory": pool_total}]
        elif key in mem_at:
            g = mem_at[key]
            busy[key] = [mem_total[g], {"memory": mem_total[g]}]
        else:
            busy[key] = [core_total, {b: by_compute if b == "compute" else by_onchip
                                      for b in by_order}]
    core_bytes = {"l2": l2, "l3": l3}
    core_actions = {fma_action: vfma, "vop": vop, "l1_byte": l1_byte, "l2_byte": l2_byte,
                    "l3_byte": l3_byte}
    if steps and moved:
        mem_bytes = {"dram_read": dram_read, "dram_write": dram_write}
        mem_actions = {"dram_byte": dram_byte}
        acc.nbytes = {**mem_bytes, **core_bytes} if mem_first else {**core_bytes, **mem_bytes}
        acc.actions = ({**mem_actions, **core_actions} if mem_first
                       else {**core_actions, **mem_actions})
    elif steps:
        acc.nbytes, acc.actions = core_bytes, core_actions
    acc.finish = [path]
    acc.busy = busy
    acc.head = head
    if steps:
        _lane_tails(acc.tail, tile_s, bar_s, last_move, barrier_s if t > 1 else 0.0, units,
                    mem_units)
    acc.count = count
    return acc.summary(pools), count


def _lane_tails(tail: dict, tile_s: list, bar_s: list, last_move: int, join_s: float,
                units, mem_units) -> None:
    """The least tails (:class:`~hwsim.engine.Accumulator`'s ``tail``) of :func:`emit`'s
    core and DRAM lanes and the DRAM pool, as the engine's backward pass
    (:func:`hwsim.engine.summary.task_tails`) gives them, the same floats: ``tile_s``
    each step's tile time, ``bar_s`` its barrier's (None: none), ``last_move`` the last
    step with DRAM bytes (-1: none), ``join_s`` the join's time (0: one thread).

    A group's tiles are a chain, so each core's least tail is its last tile's: the
    join. A DRAM lane's is its last transfer's (each earlier one precedes a tile
    before that one's): that transfer's tile, then every later tile, each after the
    barrier between (a barrier waits for every group's tile and gates the next: the
    longer path), then the join. After the last transfer no tile is followed by a
    prefetch, so the chain is every group's: the pool's least tail is the same. This
    is the work a memory-bound op's last transfer leaves: head + busy of the lane
    alone ended before it (0.73-0.80 of the event schedule on random single ops)."""
    if join_s > 0.0:
        for unit in units:
            tail[unit] = join_s
    if last_move < 0:
        return
    q = join_s  # the last tile's tail (its join's time + the join's 0)
    for j in range(len(tile_s) - 1, last_move, -1):  # back to the last transfer's tile
        v = tile_s[j] + q
        b = bar_s[j - 1]
        q = v if b is None else b + v
    q = tile_s[last_move] + q
    if q > 0.0:
        for unit in mem_units:
            tail[unit] = q
        tail["pool", DRAM_POOL] = q


def _summary_terms(mach: Machine, threads: int) -> tuple:
    """What :func:`summarize_plan` reads of the machine for ``threads`` threads, kept
    per thread count: the groups' sizes (:func:`_lanes`), the threads they hold, each
    group's slowdown, its unit and memory unit and each memory unit's group, the fork,
    the L3 hits' rate among the threads (:func:`l3_s`) and a barrier."""
    memo = mach.__dict__.setdefault("_summary_terms", {})
    got = memo.get(threads)
    if got is None:
        slow, groups, units = _lanes(mach, threads, True)
        ks = [len(m) for m in groups]
        mem_units = [f"{u}.mem" for u in units]
        got = memo[threads] = (ks, sum(ks), [slow[m[0]] for m in groups], units, mem_units,
                               {u: g for g, u in enumerate(mem_units)}, mach.fork_s(threads),
                               mach.l3_rate(threads), mach.barrier_s(threads))
    return got


def _lanes(mach: Machine, threads: int, grouped: bool):
    """(each thread's slowdown against one core alone, the groups of threads of equal
    rate, their units), kept on ``mach`` per thread count: every op on that many
    threads has them."""
    memo = mach.__dict__.setdefault("_lanes", {})
    got = memo.get((threads, grouped))
    if got is None:
        slow = [mach.slot_bw / r for r in mach.thread_rates(threads)]
        groups = thread_groups(slow) if grouped else [[i] for i in range(threads)]
        got = memo[(threads, grouped)] = (slow, groups, [group_name("core", m) for m in groups])
    return got


def repeat(steps: list[Step], times_: int) -> list[Step]:
    """``steps`` run ``times_`` times in a row by each thread (e.g. GEMMs of a batch)."""
    if times_ <= 1:
        return steps
    out = [s.scaled(times_) for s in steps]
    for s in out:
        s.rounds *= times_
    return out


def split(step: Step, parts: int) -> list[Step]:
    """``step`` as ``parts`` equal tiles (so DRAM transfers overlap execution)."""
    if parts <= 1:
        return [step]
    return _cut(step.scaled(1.0 / parts), parts)


def _cut(one: Step, parts: int) -> list[Step]:
    """The ``parts`` tiles whose first is ``one`` (a step's amounts over ``parts``)."""
    barrier = one.barrier
    labels = _tile_labels(one.label, parts)
    out = [one]
    for _ in range(parts - 1):  # copies of the first (the same amounts)
        out.append(one.copy())
    for s, label in zip(out, labels):
        s.label = label
        s.barrier = False
    out[-1].barrier = barrier  # the last tile meets the other threads
    return out


@functools.lru_cache(maxsize=256)
def _tile_labels(label: str, parts: int) -> tuple[str, ...]:
    return tuple(f"{label} {i + 1}/{parts}" for i in range(parts))
