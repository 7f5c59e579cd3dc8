"""The chip as the lowering sees it: units, rates in seconds, and a task builder.

Units (the lanes of a timeline) are named after the pipes of the DaVinci
cores, which run in parallel and synchronise through flags:

==================  ========================================================
``core3.mte2``      MTE2 of cube core 3: GM (through L2) into L1
``core3.cube``      the cube: MMADs out of L0A/L0B into L0C (with MTE1, L1 to
                    L0A/L0B, which overlaps it through L0 double buffering)
``core3.fixpipe``   FixPipe: L0C out to GM (coupled 910A: through UB)
``vec7.mte2``       MTE2 of vector core 7: GM into UB (``core7.mte2`` when coupled)
``vec7.vector``     the vector unit, on UB (``core7.vector`` when coupled)
``vec7.mte3``       MTE3: UB out to GM (``core7.mte3`` when coupled)
``vec0-46.vector``  the same pipe of a group of cores with the same work (one
                    member's tasks stand for all of theirs: ``Task.copies``)
``launch``          kernel start (task dispatch) before each kernel; a later kernel's
                    start is taken in while the one before runs, then its gap
``link``            the NPU-to-NPU links (all-reduce)
==================  ========================================================

The HBM is one more unit, ``hbm``, that serves every transfer missing the L2 at
the full HBM bandwidth, one after another (first come, first served). A
transfer holds its pipe (a core's MTE2, FixPipe or MTE3) for its bytes at one
stream's rate (``mte2_dram_bytes_per_cycle · clock``, the per-core figure of the
CANN configuration) and, beside it, the ``hbm`` unit for its bytes at the HBM
bandwidth; what waits for the data waits for both. So a lone core streams at
its per-core rate, many together at exactly the HBM bandwidth (the ``hbm``
unit is then busy all the time, work-conserving), and every byte counted as
DRAM traffic is one the ``hbm`` unit timed. (A pool of equal slots instead
quantised concurrent transfers into rounds: 32 equal loads on 19 slots take
two rounds, on 15 slots three, so a faster clock, with fewer but faster
slots, ran slower.)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from contextlib import contextmanager
from itertools import repeat
from types import MappingProxyType
from typing import Mapping

from hwsim.engine import Task, group_name

from .spec import AscendSpec

_NO_BYTES = _NO_ACTIONS = MappingProxyType({})  # a task that moves or does nothing counted

HBM_UNIT = "hbm"

def ceil_to(x: float, step: int) -> int:
    return int(-(-int(math.ceil(x)) // step) * step)


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


class Chip:
    """Derived numbers of a spec (rates in bytes per second, cycles in seconds)."""

    def __init__(self, spec: AscendSpec):
        self.spec = spec
        clk = spec.clock_hz
        self.cycle_s = 1.0 / clk
        self.split = spec.architecture == "split"
        self.n_cube = spec.cube_cores
        self.n_vec = spec.vector_cores if self.split else spec.cube_cores
        self.vec_per_cube = max(1, self.n_vec // self.n_cube) if self.split else 1
        self.hbm_bw = spec.dram_bw_bytes_per_s
        # one core's stream to or from HBM (an L2 miss, a write-back)
        self.hbm_stream_bw = min(spec.mte2_dram_bytes_per_cycle * clk, self.hbm_bw)
        self.l2_read_bw = spec.mte2_l2_bytes_per_cycle * clk
        self.l2_write_bw = spec.l2_write_bytes_per_cycle * clk
        self.fixpipe_bw = spec.fixpipe_bytes_per_cycle * clk
        self.mte3_bw = min(spec.mte3_bytes_per_cycle, spec.l2_write_bytes_per_cycle) * clk
        self.mte1_a_bw = spec.mte1_l0a_bytes_per_cycle * clk
        self.mte1_b_bw = spec.mte1_l0b_bytes_per_cycle * clk
        self.align = spec.transfer_align_bytes

    # ---------------------------------------------------------------- units
    def aic(self, core: int, pipe: str) -> str:
        return f"core{core}.{pipe}"

    def aic_group(self, cores: list[int], pipe: str) -> str:
        """The pipe of a group of cube cores with the same work: ``core3.cube`` alone,
        ``core0-7.cube`` for a run, ``core2+5.cube`` (the first and how many more)."""
        return f"{group_name('core', cores)}.{pipe}"

    def aic_group_pipes(self, cores: list[int], *pipes: str) -> tuple[str, ...]:
        """:meth:`aic_group` of each of ``pipes``, the group's name made once."""
        return tuple(map(f"{group_name('core', cores)}.".__add__, pipes))

    def aiv(self, vec: int, pipe: str) -> str:
        return f"vec{vec}.{pipe}" if self.split else f"core{vec}.{pipe}"

    def aiv_group(self, vecs: list[int], pipe: str) -> str:
        """The pipe of a group of vector cores with the same work (``vec0-46.vector``;
        named as :meth:`aic_group` names cube cores)."""
        return f"{group_name('vec' if self.split else 'core', vecs)}.{pipe}"

    def aiv_group_pipes(self, vecs: list[int], *pipes: str) -> tuple[str, ...]:
        """:meth:`aiv_group` of each of ``pipes``, the group's name made once."""
        return tuple(map(f"{group_name('vec' if self.split else 'core', vecs)}.".__add__, pipes))

    def vecs_of(self, core: int) -> list[int]:
        """The vector cores that work with cube core ``core`` (two AIV on the 910B)."""
        k = self.vec_per_cube
        return [core * k + i for i in range(k)]

    # ---------------------------------------------------------------- rates
    def cycles(self, n: float) -> float:
        return n * self.cycle_s

    def cube_dtype(self, dtype: str) -> str:
        """The type the cube computes a ``dtype`` matmul or attention in: ``dtype`` itself.

        A type the cube has no mode for (fp32 and bf16 on the 910A) is an error:
        the vector units could run it at a fraction of the rate, and CANN's
        ``allow_fp32_to_fp16`` precision mode would cast it to fp16 (a different
        computation), so neither is done silently.
        """
        rates = self.spec.cube_macs_per_cycle
        if rates.get(dtype):
            return dtype
        from hwsim.errors import InputError  # noqa: PLC0415

        hint = " (CANN's allow_fp32_to_fp16 precision mode casts it to fp16: use dtype fp16)" \
            if dtype == "fp32" and rates.get("fp16") else ""
        raise InputError(f"the cube has no {dtype} mode (cube_macs_per_cycle has "
                         f"{', '.join(rates)}){hint}", source="workload", field="dtype")

    def macs_per_cycle(self, dtype: str) -> float:
        return self.spec.cube_macs_per_cycle[self.cube_dtype(dtype)]

    def burst(self, rows: int, row_bytes: float, contiguous: bool = False) -> int:
        """Bytes a strided copy of ``rows`` runs of ``row_bytes`` costs (512 B bursts)."""
        if rows <= 0 or row_bytes <= 0:
            return 0
        if contiguous:
            return ceil_to(rows * row_bytes, self.align)
        return rows * ceil_to(row_bytes, self.align)


class L2:
    """Which GM reads hit the shared L2, within one op (the L2 starts empty at each op).

    Two mechanisms:

    * an LRU over named blocks of tensors (GEMM panels): a read of a block seen
      before and not evicted since is a hit, otherwise a miss that fills it;
    * *intermediates* of a multi-kernel op (the standard attention's scores):
      a tensor one kernel writes and the next reads stays in L2 as far as it
      fits in the half of the L2 kept for reuse (the other half for the streams
      passing through, M), the rest is written back to HBM and re-read from it.
      The fraction is smooth, not all-or-nothing: of a tensor twice the space,
      half stays (the part written last, which an LRU keeps).

    An op's own outputs go to HBM and its inputs come from there (the op starts with
    a cold L2), except where the run carries tensors between ops (:mod:`hwsim.onchip`):
    ``carried`` names inputs an earlier op left in the L2, whose every read hits, and
    ``kept`` outputs the next op reads from the L2, which are not written back. The
    plan budgets their space in the other half of the L2, so they take none of the
    half this model keeps for the op's own reuse.
    """

    def __init__(self, capacity: float, carried: frozenset = frozenset(),
                 kept: frozenset = frozenset()):
        self.capacity = float(capacity)
        self.carried = frozenset(carried)
        self.kept = frozenset(kept)
        self.lines: OrderedDict = OrderedDict()
        self.used = 0.0
        self.resident: dict[str, float] = {}  # tensor -> fraction of it held in L2
        self.sizes: dict[str, float] = {}

    def held_bytes(self) -> float:
        return sum(self.resident[t] * self.sizes[t] for t in self.resident)

    def reuse_bytes(self) -> float:
        """The L2 space left for reuse: half the L2 less the intermediates held."""
        return max(0.0, self.capacity / 2 - self.held_bytes())

    def _limit(self) -> float:
        return self.capacity - self.held_bytes()

    def hit_fraction(self, tensor: str) -> float:
        """Fraction of an intermediate ``tensor`` a later kernel finds in L2."""
        if tensor in self.carried:
            return 1.0
        return self.resident.get(tensor, 0.0)

    def read(self, tensor: str, block, nbytes: float) -> float:
        """Bytes of ``block`` of ``tensor`` that come from HBM (0 on a hit)."""
        if tensor in self.carried:
            return 0.0
        if tensor in self.resident:
            return float(nbytes) * (1.0 - self.resident[tensor])
        key = (tensor, block)
        if key in self.lines:
            self.lines.move_to_end(key)
            return 0.0
        self.lines[key] = nbytes
        self.used += nbytes
        limit = self._limit()
        while self.used > limit and len(self.lines) > 1:
            _, old = self.lines.popitem(last=False)
            self.used -= old
        return float(nbytes)

    def write(self, tensor: str, nbytes: float) -> float:
        """Register an intermediate being written; returns the fraction that stays in
        L2 (the rest streams to HBM as it is written)."""
        if nbytes <= 0:
            return 1.0
        frac = min(1.0, self.reuse_bytes() / nbytes)
        self.resident[tensor] = frac
        self.sizes[tensor] = float(nbytes)
        return frac

    def release(self, tensor: str) -> None:
        """A dead intermediate frees its L2 space (it is overwritten, never written back)."""
        self.resident.pop(tensor, None)
        self.sizes.pop(tensor, None)


def reuse_hit_fraction(working_set_bytes: float, capacity_bytes: float) -> float:
    """Fraction of re-reads that hit an L2 of ``capacity_bytes`` when the data being
    re-read spans ``working_set_bytes``: all of them while it fits, then the
    fraction of it that stays (capacity / working set), the rest re-read from HBM.
    Smooth in both sizes: a working set 1 % too large loses about 1 % of the hits."""
    if working_set_bytes <= capacity_bytes:
        return 1.0
    return max(0.0, capacity_bytes / working_set_bytes)


_new_task = tuple.__new__  # a Task from its ten fields (Builder.add)


class Builder:
    """Collects the tasks of one op, with helpers for transfers through L2 and HBM.

    While :attr:`copies` is above one, the tasks being added are those of one member
    of a group of cores with the same work (:meth:`group`): tasks on the member's own
    pipes stand for every member's (``Task.copies``), and its transfers on the shared
    ``hbm`` unit for the members' shares taking turns there (``serial``).

    With a ``sink`` (an :class:`hwsim.engine.Accumulator`: the ``analytical`` fidelity,
    which reads only the tasks' summary) each task's fields go to it and no
    :class:`Task` is made; :attr:`tasks` stays empty and :meth:`add` returns the
    index the task would have had."""

    def __init__(self, chip: Chip, *, grouping: bool = True, sink=None):
        self.chip = chip
        self.tasks: list[Task] = []
        self.copies = 1
        self.grouping = grouping  # False: one lane per core (the reference of the tests)
        self.sink = sink
        self._launch_lane: int | None = None  # the last launch or gap task (launch)

    def groups(self, members: list[int]) -> list[list[int]]:
        """``members`` (cores with the same work) as the groups to emit: one group, or
        each core alone when grouping is off."""
        return [members] if self.grouping else [[m] for m in members]

    @contextmanager
    def group(self, members: int):
        """Add the tasks of one member of ``members`` cores with the same work."""
        before, self.copies = self.copies, members
        try:
            yield self
        finally:
            self.copies = before

    def add(self, unit: str, duration_s: float, *, deps=(), bound: str = "compute",
            pool: str = "", label: str = "", nbytes: Mapping[str, int] | None = None,
            actions: Mapping[str, float] | None = None, copies: int = 0) -> int:
        """One task; ``copies``: of that many members (default: the current
        :meth:`group`'s)."""
        # (the fast paths matter: ops lower to thousands of tasks)
        sink = self.sink
        if sink is not None:  # the summary's sums only (the order of deps does not matter)
            k = copies or self.copies
            return sink.add(unit, duration_s if duration_s > 0.0 else 0.0, nbytes, actions,
                            deps, bound, pool, k, k > 1 and unit == HBM_UNIT)
        deps = clean_deps(deps)
        tasks = self.tasks
        k = copies or self.copies
        # Task's fields in order, without its keyword-parsing constructor
        tasks.append(_new_task(Task, (unit, duration_s if duration_s > 0.0 else 0.0,
                                      dict(nbytes) if nbytes else _NO_BYTES,
                                      dict(actions) if actions else _NO_ACTIONS, deps, bound,
                                      pool, label, k, k > 1 and unit == HBM_UNIT)))
        return len(tasks) - 1

    def put(self, unit: str, duration_s: float, nbytes, actions, deps: tuple, bound: str,
            label: str, k: int) -> int:
        """:meth:`add` for a caller that has done its work: ``deps`` a sorted tuple
        without repeats, ``nbytes``/``actions`` dicts of its own that no one changes
        after (or None), ``duration_s`` >= 0, ``k`` the copies, no pool. The same task,
        without the keyword parsing and the copies (a fused attention lowers to
        thousands of tasks per op)."""
        sink = self.sink
        if sink is not None:
            return sink.add(unit, duration_s, nbytes, actions, deps, bound, "", k,
                            k > 1 and unit == HBM_UNIT)
        tasks = self.tasks
        tasks.append(_new_task(Task, (unit, duration_s, nbytes or _NO_BYTES,
                                      actions or _NO_ACTIONS, deps, bound, "", label, k,
                                      k > 1 and unit == HBM_UNIT)))
        return len(tasks) - 1

    def next_index(self) -> int:
        """The index the next task will get (:meth:`put_all`'s first)."""
        return len(self.tasks) if self.sink is None else self.sink.count

    def put_all(self, made: list[tuple]) -> None:
        """:meth:`put` of many tasks at once, in order: ``made`` the tasks' ten fields
        in :class:`~hwsim.engine.Task`'s order (the bytes and actions an empty mapping,
        not None, where there are none; no pool), as :meth:`put` would make them. The
        first gets :meth:`next_index`, each later one the next: a caller that makes a
        walk's tasks gives their indices out as it goes, without a call per task."""
        sink = self.sink
        if sink is None:
            self.tasks.extend(map(_new_task, repeat(Task), made))
            return
        add = sink.add
        for unit, d, nbytes, actions, deps, bound, pool, _, k, serial in made:
            add(unit, d, nbytes, actions, deps, bound, pool, k, serial)

    def launch(self, deps=(), label: str = "launch") -> int:
        """A kernel start: everything of the kernel depends on it.

        The op's first kernel (no ``deps``) waits for its launch (``kernel_launch_s``). A
        later one, ``deps`` the ends of the kernel before it, was enqueued on the stream
        right behind that kernel: the task scheduler takes its launch in while the kernel
        before runs (the next task on the ``launch`` lane), and it starts
        ``kernel_gap_s`` after both that launch and the kernel before are done, as the
        V100's queued kernels do (:meth:`hwsim.accelerators.volta.gpu.Builder.start`)."""
        spec = self.chip.spec
        before = self._launch_lane
        if not deps or before is None:
            self._launch_lane = self.add("launch", spec.kernel_launch_s, deps=deps,
                                         bound="latency", label=label)
            return self._launch_lane
        taken = self.add("launch", spec.kernel_launch_s, deps=(before,), bound="latency",
                         label=label)
        self._launch_lane = self.add("launch", spec.kernel_gap_s, deps=(*deps, taken),
                                     bound="latency",
                                     label=f"gap before {label.removeprefix('launch ')}")
        return self._launch_lane

    def load(self, unit: str, hbm_bytes: float, l2_bytes: float, *, deps=(), dest: str = "l1",
             label: str = "load", mask_bytes: float = 0.0, hbm_pad: float = 0.0,
             l2_pad: float = 0.0, l2_counted: float = 0.0) -> tuple[int, ...]:
        """MTE2: ``hbm_bytes`` missing L2 and ``l2_bytes`` hitting it. The pipe moves
        them at one HBM stream's rate and the L2 rate; the missing bytes also take
        the ``hbm`` unit at the HBM bandwidth, beside it.

        ``hbm_pad``/``l2_pad``: bytes of burst the MTE2 spends beyond the data (runs
        shorter than ``transfer_align_bytes``, gathered rows, L2 hits that wait for
        another core's fetch): the pipe's time, not traffic. ``l2_counted``: L2 hits
        whose time is in ``hbm_pad`` (counted as L2 reads, not timed twice).
        Returns the indices of the tasks that consumers wait for.
        """
        made: list[tuple] = []
        self.load_fields(made.append, unit, hbm_bytes, l2_bytes, clean_deps(deps), dest,
                         label, mask_bytes, hbm_pad, l2_pad, l2_counted)
        return self._put_made(made)

    def load_fields(self, mk, unit: str, hbm_bytes: float, l2_bytes: float, deps: tuple,
                    dest: str, label: str, mask_bytes: float, hbm_pad: float, l2_pad: float,
                    l2_counted: float) -> bool:
        """:meth:`load`'s tasks as their ten fields, each handed to ``mk`` (for
        :meth:`put_all`; ``deps`` sorted, without repeats): the pipe's, then the ``hbm``
        unit's where bytes miss L2 (returns whether there is that second task)."""
        chip = self.chip
        hbm_bytes = max(0.0, hbm_bytes)
        hbm_s = (hbm_bytes + hbm_pad) / chip.hbm_stream_bw
        l2_s = (l2_bytes + l2_pad) / chip.l2_read_bw
        l2_bytes = max(0.0, l2_bytes) + l2_counted
        memory = hbm_s >= l2_s and hbm_s > 0
        d = hbm_s + l2_s
        labels = self.sink is None  # (an analytical build reads no label)
        k = self.copies
        mk((unit, d if d > 0.0 else 0.0,
            {"l2_read": int(round(l2_bytes))} if l2_bytes > 0 else _NO_BYTES,
            {"hbm_byte": hbm_bytes, "l2_byte": hbm_bytes + l2_bytes,
             f"{dest}_byte": hbm_bytes + l2_bytes}, deps,
            "memory" if memory else "onchip", "",
            label + (" (HBM)" if memory else " (L2)") if labels else "", k,
            k > 1 and unit == HBM_UNIT))
        if hbm_bytes <= 0:
            return False
        dram = {"dram_read": int(round(hbm_bytes))}
        if mask_bytes:
            dram["mask_dram_read"] = int(round(mask_bytes))
        d = hbm_bytes / chip.hbm_bw
        mk((HBM_UNIT, d if d > 0.0 else 0.0, dram, _NO_ACTIONS, deps, "memory", "",
            f"{label} (HBM read)" if labels else "", k, k > 1))
        return True

    def store(self, unit: str, nbytes: float, unit_bw: float, *, hbm_fraction: float = 1.0,
              deps=(), src: str = "ub", label: str = "store") -> tuple[int, ...]:
        """Write ``nbytes`` to GM: ``hbm_fraction`` of it streams to HBM (at one
        stream's rate on the pipe, and on the ``hbm`` unit; counted as DRAM written),
        the rest stays in L2 (an intermediate that the op's next kernel reads:
        written at the L2 rate, never counted as DRAM).
        """
        made: list[tuple] = []
        self.store_fields(made.append, unit, nbytes, unit_bw, hbm_fraction, clean_deps(deps),
                          src, label)
        return self._put_made(made)

    def store_fields(self, mk, unit: str, nbytes: float, unit_bw: float, hbm_fraction: float,
                     deps: tuple, src: str, label: str) -> bool:
        """:meth:`store`'s tasks as their ten fields, each handed to ``mk`` (as
        :meth:`load_fields`): the pipe's, then the ``hbm`` unit's for the bytes written
        to HBM (returns whether there is that second task)."""
        chip = self.chip
        hbm = float(nbytes) * min(1.0, max(0.0, hbm_fraction))
        l2b = float(nbytes) - hbm
        hbm_s = hbm / min(unit_bw, chip.hbm_stream_bw)
        l2_s = l2b / min(unit_bw, chip.l2_write_bw)
        memory = hbm_s >= l2_s and hbm_s > 0
        d = hbm_s + l2_s
        labels = self.sink is None
        k = self.copies
        mk((unit, d if d > 0.0 else 0.0,
            {"l2_write": int(round(l2b))} if l2b > 0 else _NO_BYTES,
            {f"{src}_byte": nbytes, "l2_byte": nbytes, "hbm_byte": hbm}, deps,
            "memory" if memory else "onchip", "",
            label + (" (HBM)" if memory else " (L2)") if labels else "", k,
            k > 1 and unit == HBM_UNIT))
        if hbm <= 0:
            return False
        d = hbm / chip.hbm_bw
        mk((HBM_UNIT, d if d > 0.0 else 0.0, {"dram_write": int(round(hbm))}, _NO_ACTIONS,
            deps, "memory", "", f"{label} (HBM write)" if labels else "", k, k > 1))
        return True

    def _put_made(self, made: list[tuple]) -> tuple[int, ...]:
        """:meth:`put_all` of ``made``; their indices."""
        first = self.next_index()
        self.put_all(made)
        return tuple(range(first, first + len(made)))


def clean_deps(deps) -> tuple[int, ...]:
    """A task's dependencies as :meth:`Builder.add` keeps them: sorted, without repeats."""
    n = len(deps)
    if n < 2:
        return tuple(deps)
    if n == 2:
        a, b = deps
        return (a, b) if a < b else (b, a) if b < a else (a,)
    return tuple(sorted(set(deps)))


def segments(n_items: int, n_segments: int) -> list[tuple[int, int]]:
    """Split ``range(n_items)`` into about ``n_segments`` contiguous ranges."""
    if n_items <= 0:
        return []
    n_segments = max(1, min(n_segments, n_items))
    bounds = [round(i * n_items / n_segments) for i in range(n_segments + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(n_segments) if bounds[i + 1] > bounds[i]]
