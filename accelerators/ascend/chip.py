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
``launch``          kernel start (task dispatch) before each kernel
``link``            the NPU-to-NPU links (all-reduce)
==================  ========================================================

HBM bandwidth is shared: a transfer that misses L2 holds one slot of the pool
``hbm``, whose capacity is ``hbm_bw / (mte2_hbm_bytes_per_cycle · clock)``
streams (28 on the 910B), each running at ``hbm_bw / slots``. So a few cores
stream at the per-core rate of the CANN configuration, and many cores together
at most at the HBM bandwidth; the queueing comes out of the event run.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Mapping

from hwsim.engine import Task

from .spec import AscendSpec

HBM_POOL = "hbm"


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
        stream = spec.mte2_hbm_bytes_per_cycle * clk
        self.hbm_slots = max(1, round(spec.hbm_bw_bytes_per_s / stream))
        self.hbm_stream_bw = spec.hbm_bw_bytes_per_s / self.hbm_slots
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

    def aiv(self, vec: int, pipe: str) -> str:
        return f"vec{vec}.{pipe}" if self.split else f"core{vec}.{pipe}"

    def vecs_of(self, core: int) -> list[int]:
        """The vector cores that work with cube core ``core`` (two AIV on the 910B)."""
        k = self.vec_per_cube
        return [core * k + i for i in range(k)]

    # ---------------------------------------------------------------- rates
    def cycles(self, n: float) -> float:
        return n * self.cycle_s

    def cube_dtype(self, dtype: str) -> str:
        """The type the cube computes a ``dtype`` matmul in.

        A type the cube lacks is an error, except fp32 on a cube without an fp32
        mode (the 910A): CANN's default precision mode there,
        ``allow_fp32_to_fp16``, casts it to fp16 (operands stay fp32 in GM).
        """
        rates = self.spec.cube_macs_per_cycle
        if rates.get(dtype):
            return dtype
        if dtype == "fp32" and rates.get("fp16"):
            return "fp16"
        from hwsim.errors import InputError

        raise InputError(f"the cube has no {dtype} mode (cube_macs_per_cycle has "
                         f"{', '.join(rates)})", field="spec.cube_macs_per_cycle")

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
    """Which GM reads hit the shared L2: an LRU over named blocks of tensors.

    A read of a block seen before (and not evicted since) is a hit; otherwise it
    is a miss that fills the block. A written tensor that fits in half the L2
    stays resident (write-back), so a later kernel reading it hits; a bigger one
    streams out to HBM as it is written.
    """

    def __init__(self, capacity: float):
        self.capacity = float(capacity)
        self.lines: OrderedDict = OrderedDict()
        self.used = 0.0
        self.resident: dict[str, float] = {}

    def _limit(self) -> float:
        return self.capacity - sum(self.resident.values())

    def read(self, tensor: str, block, nbytes: float) -> float:
        """Bytes of ``block`` of ``tensor`` that come from HBM (0 on a hit)."""
        if tensor in self.resident:
            return 0.0
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

    def write(self, tensor: str, nbytes: float) -> bool:
        """Register a tensor being written; True when it stays resident in L2."""
        if nbytes <= self.capacity / 2 - sum(self.resident.values()):
            self.resident[tensor] = float(nbytes)
            return True
        return False


class Builder:
    """Collects the tasks of one op, with helpers for transfers through L2 and HBM."""

    def __init__(self, chip: Chip):
        self.chip = chip
        self.tasks: list[Task] = []

    def add(self, unit: str, duration_s: float, *, deps=(), bound: str = "compute",
            pool: str = "", label: str = "", nbytes: Mapping[str, int] | None = None,
            actions: Mapping[str, float] | None = None) -> int:
        self.tasks.append(Task(unit, max(0.0, duration_s), dict(nbytes or {}),
                               dict(actions or {}), tuple(sorted(set(deps))), bound, pool, label))
        return len(self.tasks) - 1

    def launch(self, deps=(), label: str = "launch") -> int:
        """A kernel start: everything of the kernel depends on it."""
        return self.add("launch", self.chip.spec.kernel_launch_s, deps=deps, bound="latency",
                        label=label)

    def load(self, unit: str, hbm_bytes: float, l2_bytes: float, *, deps=(), dest: str = "l1",
             label: str = "load", mask_bytes: float = 0.0) -> int:
        """MTE2: ``hbm_bytes`` missing L2 (an HBM stream slot each) then ``l2_bytes`` hitting.

        Returns the index of the last task (the one consumers wait for).
        """
        chip = self.chip
        last = None
        deps = tuple(deps)
        if hbm_bytes > 0:
            nb = {"dram_read": int(hbm_bytes)}
            if mask_bytes:
                nb["mask_dram_read"] = int(mask_bytes)
            last = self.add(unit, hbm_bytes / chip.hbm_stream_bw, deps=deps, bound="memory",
                            pool=HBM_POOL, label=label + " (HBM)", nbytes=nb,
                            actions={"hbm_byte": hbm_bytes, "l2_byte": hbm_bytes,
                                     f"{dest}_byte": hbm_bytes})
            deps = (last,)
        if l2_bytes > 0 or last is None:
            last = self.add(unit, l2_bytes / chip.l2_read_bw, deps=deps, bound="onchip",
                            label=label + " (L2)", nbytes={"l2_read": int(l2_bytes)},
                            actions={"l2_byte": l2_bytes, f"{dest}_byte": l2_bytes})
        return last

    def store(self, unit: str, nbytes: float, unit_bw: float, *, to_hbm: bool, deps=(),
              src: str = "ub", label: str = "store") -> int:
        """Write ``nbytes`` to GM: into L2 at the unit's rate, or streaming to HBM.

        Every GM write reaches HBM in the end (write-back), so it counts as DRAM
        written; its time is the L2's unless the tensor does not fit there.
        """
        chip = self.chip
        if to_hbm:
            bw, pool, bound = min(unit_bw, chip.hbm_stream_bw), HBM_POOL, "memory"
        else:
            bw, pool, bound = min(unit_bw, chip.l2_write_bw), "", "onchip"
        return self.add(unit, nbytes / bw, deps=deps, bound=bound, pool=pool, label=label,
                        nbytes={"dram_write": int(nbytes)},
                        actions={f"{src}_byte": nbytes, "l2_byte": nbytes, "hbm_byte": nbytes})


def segments(n_items: int, n_segments: int) -> list[tuple[int, int]]:
    """Split ``range(n_items)`` into about ``n_segments`` contiguous ranges."""
    if n_items <= 0:
        return []
    n_segments = max(1, min(n_segments, n_items))
    bounds = [round(i * n_items / n_segments) for i in range(n_segments + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(n_segments) if bounds[i + 1] > bounds[i]]
