"""The GPU as the lowering sees it: kernels, occupancy, waves, and their tasks.

A *kernel* is a grid of thread blocks of one shape (threads, registers per
thread, shared memory per block). How many blocks an SM holds at once, its
*occupancy*, is the smallest of four limits: resident blocks, threads,
registers (allocated per warp in units of 256) and shared memory. A kernel
runs in *waves* of ``sms x occupancy`` blocks; a last, partial wave (the tail)
leaves SMs idle.

Each SM runs its blocks in *groups*: the blocks resident together. A group's
task on its SM lasts the largest of its pipes (a software-pipelined main loop
overlaps them): tensor-core or CUDA-core time, shared-memory wavefronts, and
what the SM can draw from L1, L2 and HBM *on its own*: Little's law, the bytes
its resident threads keep in flight (``Kernel.inflight_bytes_per_thread``) over
each level's loaded latency (:meth:`Gpu.memory_time`), so an SM with few warps
draws little; plus the exposed part of its vector work, one memory latency to
fill the pipeline and one block turnover.

L2 and HBM are shared by all SMs: each is a unit of the event engine (``l2``,
``hbm``) that serves bytes at its achievable aggregate bandwidth. A group's
traffic is cut into pieces of one size per kernel, chained per SM, so the
units serve the SMs round robin (fair sharing, as the memory controllers
interleave the SMs' requests). A lone SM is limited by its own draw (inside
its SM task), many SMs together by the unit: the tail of a kernel and its
imbalance come out of the run, and an SM that finishes early leaves its share
of the bandwidth to the others. On each SM the pipes run its groups one after
another, and so does its traffic: a group's loads stream while the previous
group computes (the kernels double-buffer), and a unit is never idle while a
piece is waiting, so its total time is its bytes over its bandwidth, whatever
the number of SMs.

DRAM bytes are integers on the tasks, distributed over a kernel's groups by
cumulative rounding, so an op's total is its kernels' exact total.

Units (timeline lanes): ``sm7`` (the SM's pipes), ``hbm`` and ``l2`` (the
shared memories), ``stream`` (kernel launches, in order), ``pcie`` (host
transfers), ``nvlink`` (the all-reduce ring).
"""

from __future__ import annotations

import heapq
import math
import sys
from dataclasses import dataclass, field
from functools import cached_property
from itertools import groupby
from operator import itemgetter
from types import MappingProxyType

from hwsim.engine import Task, group_name

from .spec import VoltaSpec

HBM_UNIT = "hbm"
L2_UNIT = "l2"
MAX_CHUNKS_PER_SM = 6  # merged SM tasks per SM and kernel (keeps ops to ~1000 tasks)
PIECES_PER_KERNEL = 160  # pieces of a kernel's traffic on each shared unit (fair sharing)
CONSTANTS_KEPT = 100_000  # kernels' pipe constants a Gpu keeps (Gpu._constants)


_new_task = tuple.__new__  # a Task from its ten fields (Builder._pieces)
_EMPTY = MappingProxyType({})  # a piece's bytes or actions when it has none (read-only)


def cdiv(a: int, b: int) -> int:
    return -(-int(a) // int(b))


@dataclass
class Work:
    """What one thread block (or a group of them) does, in counts (:data:`WORK_FIELDS`,
    in this order; :attr:`Kernel.matrix` reads them as ``vars(work)``)."""

    tensor_flops: float = 0.0
    cuda_flops: float = 0.0
    sfu_ops: float = 0.0
    smem_bytes: float = 0.0  # bytes read and written in shared memory
    smem_wavefront_bytes: float = 0.0  # the same in 128-B wavefronts, bank conflicts included
    l2_bytes: float = 0.0  # traffic between the SM and L2 (HBM traffic included)
    hbm_read: float = 0.0
    hbm_write: float = 0.0
    l1_bytes: float = 0.0  # loads that hit in L1 (a working set within l1_bytes)

    def scaled(self, k: float) -> "Work":
        return Work(self.tensor_flops * k, self.cuda_flops * k, self.sfu_ops * k,
                    self.smem_bytes * k, self.smem_wavefront_bytes * k, self.l2_bytes * k,
                    self.hbm_read * k, self.hbm_write * k, self.l1_bytes * k)

    def add(self, other: "Work") -> None:
        self.tensor_flops += other.tensor_flops
        self.cuda_flops += other.cuda_flops
        self.sfu_ops += other.sfu_ops
        self.smem_bytes += other.smem_bytes
        self.smem_wavefront_bytes += other.smem_wavefront_bytes
        self.l2_bytes += other.l2_bytes
        self.hbm_read += other.hbm_read
        self.hbm_write += other.hbm_write
        self.l1_bytes += other.l1_bytes

    @property
    def hbm_bytes(self) -> float:
        return self.hbm_read + self.hbm_write

    def key(self) -> tuple:
        """The counts as a tuple (equal works, equal keys)."""
        return (self.tensor_flops, self.cuda_flops, self.sfu_ops, self.smem_bytes,
                self.smem_wavefront_bytes, self.l2_bytes, self.hbm_read, self.hbm_write,
                self.l1_bytes)


WORK_FIELDS = ("tensor_flops", "cuda_flops", "sfu_ops", "smem_bytes", "smem_wavefront_bytes",
               "l2_bytes", "hbm_read", "hbm_write", "l1_bytes")  # Work's, in its order
# _fields' columns of a Work matrix (WORK_FIELDS order)
TERM_COLUMNS = (0, 1, 2, 4, 5, 6, 7, 8)
MANY = 16  # classes from which the planners work on numpy arrays
MANY_SUMS = 256  # ... and sum each SM's classes there (below, Python's adds are quicker)
# ... once numpy is loaded; before, only from this many classes (a kernel's tiles):
# numpy's import (about 0.1 s on the 2-core machine) is more than the Python loops
# cost below that (a 4K causal attention's 1,024 classes: about 0.4 ms more a kernel)
ARRAYS_UNLOADED = 4096


def arrays(n: int) -> bool:
    """Whether ``n`` classes (or tiles) are worth numpy arrays, where a planner has
    both ways (they give the same floats; tests hold each pair equal): always once
    numpy is loaded, which then costs nothing more; before, from
    :data:`ARRAYS_UNLOADED` on, so that a run whose kernels are all smaller never
    loads it."""
    return "numpy" in sys.modules or n >= ARRAYS_UNLOADED


def running_sum(rows) -> list[float]:
    """The sum of a matrix's rows, added one after another as :meth:`Work.add` adds them
    (numpy's ``cumsum`` is sequential; ``sum`` pairs): the same floats."""
    return rows.cumsum(axis=0)[-1].tolist() if len(rows) else [0.0] * rows.shape[1]


SEGMENT_ROWS = 1 << 18  # rows gathered at once by segment_sums (bounds its memory)


def segment_sums(m, segments: list[list[int]]):
    """:func:`running_sum` of ``m[seg]`` for every (non-empty) ``seg`` of ``segments``,
    as one numpy array (a row per segment), in a few calls instead of one per segment:
    the segments' rows gathered into one block, each padded at its end with rows of
    -0.0 (``x + -0.0`` is ``x`` for every float ``x``, -0.0 included) and summed
    along it by ``cumsum``, which adds one row after another: the same floats."""
    import numpy as np  # noqa: PLC0415

    if not segments:
        return np.zeros((0, m.shape[1]))
    pad = len(m)
    padded = np.concatenate([m, np.full((1, m.shape[1]), -0.0)])
    out = []
    i = 0
    while i < len(segments):  # batches of at most SEGMENT_ROWS gathered rows
        width = len(segments[i])
        j = i + 1
        while j < len(segments) and (j + 1 - i) * max(width, len(segments[j])) <= SEGMENT_ROWS:
            width = max(width, len(segments[j]))
            j += 1
        idx = np.full((j - i, width), pad)
        for r, seg in enumerate(segments[i:j]):
            idx[r, :len(seg)] = seg
        out.append(padded[idx].cumsum(axis=1)[:, -1])
        i = j
    return np.concatenate(out) if len(out) > 1 else out[0]


def _fields(w: Work) -> tuple[float, ...]:
    """The counts the pipe terms read (:meth:`Gpu._terms`), in its order."""
    return (w.tensor_flops, w.cuda_flops, w.sfu_ops, w.smem_wavefront_bytes, w.l2_bytes,
            w.hbm_read, w.hbm_write, w.l1_bytes)


class _FLOATS:
    """numpy's element operations that :meth:`Gpu._terms` uses, on plain floats."""

    @staticmethod
    def where(cond, a, b):
        return a if cond else b

    maximum = staticmethod(max)
    minimum = staticmethod(min)

    @staticmethod
    def logical_and(a, b):
        return bool(a) and bool(b)

    @staticmethod
    def logical_not(a):
        return not a


def _memory_bound(x: dict) -> str:
    """What limits the loads of :meth:`Gpu.memory_time`, from its terms."""
    if x["none"] or x["trip"]:
        return "latency"
    return "memory" if x["dram_part"] >= x["chip_part"] else "onchip"


def _pipes_bound(x: dict) -> str:
    """What limits :meth:`Gpu._pipes`, from its terms."""
    if x["pipes"]:
        return ("latency" if x["busy"] <= x["first_s"] else
                "compute" if x["compute_s"] >= x["smem_s"] else "onchip")
    return _memory_bound(x)


@dataclass
class Kernel:
    """A grid of thread blocks; ``blocks`` lists (count, work per block) in launch order."""

    name: str
    tile: str  # block tile, e.g. "128x128x32"
    threads: int
    regs: int  # per thread
    smem: int  # bytes per block
    blocks: list[tuple[int, Work]]
    dtype: str = "fp16"  # compute dtype (rates and energy)
    tensor: bool = True  # tensor cores (else CUDA cores) for the matrix work
    bound_hint: str = ""  # forced bound (e.g. "latency") when set
    pcie_bytes: float = 0.0  # host transfers overlapped with the kernel
    serial_operands: bool = False  # fragments loaded just before use (no register double buffer)
    detail: str = ""  # what the op's one-line description adds for this kernel
    notes: dict = field(default_factory=dict)
    # bytes of global loads one thread has issued before it waits on the first (its
    # memory-level parallelism): one 128-bit load unless the kernel says more
    inflight_bytes_per_thread: float = 16.0
    # the matrix pipe's share of a GEMM main loop's issue slots (.mainloop); 1 for
    # kernels whose matrix work is not such a loop
    loop_efficiency: float = 1.0
    # loaded L2 round trips a block waits out with nothing to issue, per FLOP of its
    # matrix work (a main loop's prologue: its first slice loaded from global memory,
    # stored and waited for at a barrier before the first MMA). Other resident blocks
    # work meanwhile, so they cost a group nothing but stay on a block's own path: the
    # floor of one block alone (Gpu.group_time) and a group of one (occupancy 1)
    exposed_trips_per_flop: float = 0.0

    @cached_property
    def grid(self) -> int:
        """Thread blocks in all (``blocks`` is not changed once the kernel is built)."""
        return sum(map(itemgetter(0), self.blocks))  # (ints: exact in any order)

    @cached_property
    def matrix(self):
        """The classes' counts as a numpy matrix (a row per class, :data:`WORK_FIELDS`),
        for the planners that treat thousands of classes at once."""
        import numpy as np  # noqa: PLC0415 (loaded on first need)

        rows: dict[int, int] = {}  # a work listed for many blocks (one per unit): one row
        distinct: list[list[float]] = []
        index = []
        for _, w in self.blocks:
            r = rows.get(id(w))
            if r is None:
                r = rows[id(w)] = len(distinct)
                distinct.append(list(vars(w).values()))  # a dataclass's fields, in order
            index.append(r)
        return np.array(distinct, dtype=float)[index]

    def total(self) -> Work:
        """The blocks' work summed; kept (a kernel is not changed once built; the
        callers only read it: a split-KV candidate's estimate and its build ask)."""
        got = self.__dict__.get("_total")
        if got is not None:
            return got
        if len(self.blocks) < MANY or not arrays(len(self.blocks)):
            # Work().add(work.scaled(count)) block after block, its adds inline (a
            # causal attention's thousand classes); x * 1 is x, so a single block's
            # counts are added as they are
            t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = t8 = 0.0
            for c, w in self.blocks:
                if c == 1:
                    t0 += w.tensor_flops
                    t1 += w.cuda_flops
                    t2 += w.sfu_ops
                    t3 += w.smem_bytes
                    t4 += w.smem_wavefront_bytes
                    t5 += w.l2_bytes
                    t6 += w.hbm_read
                    t7 += w.hbm_write
                    t8 += w.l1_bytes
                else:
                    t0 += w.tensor_flops * c
                    t1 += w.cuda_flops * c
                    t2 += w.sfu_ops * c
                    t3 += w.smem_bytes * c
                    t4 += w.smem_wavefront_bytes * c
                    t5 += w.l2_bytes * c
                    t6 += w.hbm_read * c
                    t7 += w.hbm_write * c
                    t8 += w.l1_bytes * c
            got = Work(t0, t1, t2, t3, t4, t5, t6, t7, t8)
        else:
            import numpy as np  # noqa: PLC0415

            counts = np.array([c for c, _ in self.blocks], dtype=float)
            got = Work(*running_sum(self.matrix * counts[:, None]))
        self.__dict__["_total"] = got
        return got

    def traffic(self) -> tuple[float, float]:
        """(HBM bytes, L2 bytes) of all the blocks: :meth:`total`'s ``hbm_bytes`` and
        ``l2_bytes``, the same floats (the same adds in the same order), its other
        counts not summed: the builder and :func:`estimate` read only these. Kept."""
        got = self.__dict__.get("_traffic")
        if got is not None:
            return got
        kept = self.__dict__.get("_total")
        if kept is None and (len(self.blocks) < MANY or not arrays(len(self.blocks))):
            r = w_ = b = 0.0  # (total's t6, t7 and t5)
            for c, w in self.blocks:
                if c == 1:
                    r += w.hbm_read
                    w_ += w.hbm_write
                    b += w.l2_bytes
                else:
                    r += w.hbm_read * c
                    w_ += w.hbm_write * c
                    b += w.l2_bytes * c
            got = (r + w_, b)
        else:
            t = self.total()
            got = (t.hbm_bytes, t.l2_bytes)
        self.__dict__["_traffic"] = got
        return got


@dataclass(frozen=True)
class Occupancy:
    """Thread blocks of a kernel resident on one SM together, and what limits them."""

    blocks_per_sm: int
    limiter: str  # blocks | threads | registers | shared memory


class Gpu:
    """Derived rates of a spec."""

    def __init__(self, spec: VoltaSpec):
        self.spec = spec
        s = spec
        self._occupancy: dict[tuple[int, int, int], Occupancy] = {}  # (threads, regs, smem)
        self._constants_of: dict[tuple, tuple] = {}  # _constants, by what they depend on
        self.clock = s.clock_hz
        self.tensor_clock = s.tensor_clock_hz or s.clock_hz
        self.smem_bw_sm = s.smem_banks * s.smem_bank_bytes * s.clock_hz * s.smem_efficiency
        self.sfu_rate_sm = s.sfu_ops_per_cycle_per_sm * s.clock_hz
        self.hbm_bw = s.dram_bw_bytes_per_s
        self.l2_bw = s.l2_bw_bytes_per_s
        self.dram_latency_s = s.dram_latency_cycles / s.clock_hz
        self.l2_latency_s = s.l2_latency_cycles / s.clock_hz
        self.l1_latency_s = s.l1_latency_cycles / s.clock_hz
        self.turnover_s = s.block_turnover_cycles / s.clock_hz
        self.smem_latency_s = s.smem_latency_cycles / s.clock_hz

    # ------------------------------------------------------------ rates
    def tensor_rate_sm(self, dtype: str, loop_efficiency: float = 1.0) -> float:
        """FLOP/s of one SM's tensor cores on ``dtype``: the per-clock peak at the clock
        the board holds under a tensor load (``tensor_clock_hz``), times the HMMA
        pipe's sustained fraction and a main loop's ``loop_efficiency`` (its issue
        slots, :mod:`.mainloop`; 1 for kernels without one)."""
        per_clock = self.spec.tensor_flops_per_cycle_per_sm.get(dtype, 0.0)
        return per_clock * self.tensor_clock * self.spec.hmma_pipe_efficiency * loop_efficiency

    def cuda_rate_sm(self, dtype: str, loop_efficiency: float = 1.0) -> float:
        """FLOP/s of one SM's CUDA cores on ``dtype`` (fp32's rate for a type they do
        not list) at the boost clock, times the FMA pipe's sustained fraction and a
        main loop's ``loop_efficiency``."""
        per_clock = self.spec.cuda_flops_per_cycle_per_sm.get(dtype)
        if per_clock is None:
            per_clock = self.spec.cuda_flops_per_cycle_per_sm.get("fp32", 128.0)
        return per_clock * self.clock * self.spec.cuda_pipe_efficiency * loop_efficiency

    def has_tensor(self, dtype: str) -> bool:
        return self.spec.tensor_flops_per_cycle_per_sm.get(dtype, 0.0) > 0

    # ------------------------------------------------------------ occupancy
    def occupancy(self, threads: int, regs: int, smem: int) -> Occupancy:
        key = (threads, regs, smem)
        got = self._occupancy.get(key)
        if got is None:
            got = self._occupancy[key] = self._occupancy_of(threads, regs, smem)
        return got

    def _occupancy_of(self, threads: int, regs: int, smem: int) -> Occupancy:
        s = self.spec
        warps = cdiv(threads, 32)
        regs_per_warp = cdiv(regs * 32, s.register_alloc_unit) * s.register_alloc_unit
        smem_alloc = cdiv(max(smem, 1), s.smem_alloc_unit_bytes) * s.smem_alloc_unit_bytes
        limits = {
            "blocks": s.max_blocks_per_sm,
            "threads": s.max_threads_per_sm // (warps * 32),
            "registers": s.registers_per_sm // (regs_per_warp * warps),
            "shared memory": int(s.smem_per_sm_bytes // smem_alloc) if smem else 10**9,
        }
        limiter = min(limits, key=lambda k: limits[k])
        return Occupancy(max(0, limits[limiter]), limiter)

    # ------------------------------------------------------------ group time
    def group_time(self, kernel: Kernel, work: Work, n_blocks: int,
                   longest: Work | None = None) -> tuple[float, str]:
        """(seconds on the SM, bound) of ``n_blocks`` resident together: the SM's own
        pipes, its own L2 and HBM draw included (the shared units come on top).

        Never less than the ``longest`` block (default: their average) would take
        alone: more resident warps hide latency and vector work, but a block cannot
        finish sooner because others share its SM."""
        t, bound = self._pipes(kernel, work, n_blocks)
        if n_blocks > 1:
            one = longest if longest is not None else work.scaled(1.0 / n_blocks)
            alone, alone_bound = self._pipes(kernel, one, 1)
            if alone > t:
                return alone, alone_bound
        return t, bound

    # ------------------------------------------------------------ memory (Little's law)
    def level_of(self, working_set_bytes: float) -> str:
        """Where loads over a working set of this size hit: ``l1``, ``l2`` or ``dram``."""
        if working_set_bytes <= self.spec.l1_bytes:
            return "l1"
        return "l2" if working_set_bytes <= self.spec.l2_bytes else "dram"

    def inflight_bytes(self, kernel: Kernel, n_blocks: int) -> float:
        """Bytes of loads an SM has in flight with ``n_blocks`` of ``kernel`` resident:
        its threads times what each issues before it waits (resident warps set it)."""
        return max(1, n_blocks) * kernel.threads * kernel.inflight_bytes_per_thread

    def loaded_latency(self, kernel: Kernel, n_blocks: int) -> tuple[float, float, float]:
        """(L1, L2, DRAM) load latency in seconds while ``kernel`` runs with ``n_blocks``
        resident per SM.

        L2 and DRAM loads cross the SM-to-L2 crossbar and the L2 slices, which serve
        every SM's requests at ``l2_bw``: a load waits behind the bytes in flight on all
        busy SMs (processor sharing), ``Q / l2_bw`` on top of the unloaded latency. At
        low occupancy the pointer-chase latencies hold; as bytes in flight grow the
        latency stretches and each SM's draw, ``inflight / latency``, bends over before
        the HBM unit caps the sum (RRZE's gpu-stream read kernel on a V100 bends the same
        way, within 5 % up to half occupancy: ``calibration.py``)."""
        occ = max(1, n_blocks, self.occupancy(kernel.threads, kernel.regs,
                                              kernel.smem).blocks_per_sm)
        return self._latencies(kernel.grid, n_blocks, occ, self.inflight_bytes(kernel, 1))

    def _latencies(self, grid: int, n_blocks: int, occ: int, inflight_one: float
                   ) -> tuple[float, float, float]:
        """:meth:`loaded_latency` of a grid of ``grid`` blocks, ``occ`` resident per SM
        at most, each block keeping ``inflight_one`` bytes of loads in flight."""
        grid, slots = max(grid, 1), self.spec.sms * occ
        # blocks on the GPU: a full wave, or the tail's (a group smaller than the
        # occupancy is the last, partial wave)
        tail = grid % slots
        resident = tail if n_blocks < occ and tail else min(grid, slots)
        queue_s = inflight_one * resident / self.l2_bw
        return (self.l1_latency_s, self.l2_latency_s + queue_s,
                self.dram_latency_s + queue_s)

    def memory_time(self, kernel: Kernel, work: Work, n_blocks: int) -> tuple[float, str]:
        """(seconds, bound) of ``work``'s loads on one SM by Little's law: every byte
        holds an in-flight slot for its level's loaded latency, so the time is the
        bytes' summed latency over the bytes in flight, and at least one round trip of
        the slowest level touched. Stores are posted (they hold no slot); their cost
        is on the shared units. ``bound``: ``memory`` (DRAM latency dominates),
        ``onchip`` (L1/L2), ``latency`` (one round trip or less)."""
        x = self._terms(kernel, _fields(work), n_blocks, _FLOATS)
        return x["mem_s"], _memory_bound(x)

    def _pipes(self, kernel: Kernel, work: Work, n_blocks: int) -> tuple[float, str]:
        """(seconds, bound) of ``n_blocks`` resident together on one SM: the largest of
        the compute pipes (after the first operands arrive: one load latency) and the
        loads by Little's law (:meth:`memory_time`), plus one block turnover (the slots
        are refilled when the group ends)."""
        return self._pipes_of(kernel, _fields(work), n_blocks)

    def _pipes_of(self, kernel: Kernel, w, n_blocks: int) -> tuple[float, str]:
        """:meth:`_pipes` of the counts ``w`` (:func:`_fields`), on plain floats: the
        operations of :meth:`_terms` one by one, in its order (the same floats and
        bound, a test holds them equal), with what depends only on the kernel and the
        resident blocks worked out once per kernel (:meth:`_constants`). The planners
        and the GEMM selector ask for thousands of these."""
        tensor, cuda, sfu, smem_wf, l2b, hbm_r, hbm_w, l1b = w
        (matrix_rate, alu_rate, sfu_rate, n, serial, warps, l1_s, l2_s, dram_s,
         inflight) = self._constants(kernel, n_blocks)
        if matrix_rate is None:  # no tensor cores: the matrix work on the CUDA cores
            matrix_s = cuda / alu_rate
            alu_s = 0.0 * cuda
        else:
            matrix_s = tensor / matrix_rate
            alu_s = cuda / alu_rate
        alu_s = alu_s + sfu / sfu_rate
        smem_s = smem_wf / self.smem_bw_sm
        compute_s = matrix_s + alu_s / n
        busy = max(compute_s, smem_s)
        if serial:
            hidden = max(0.0, 1.0 - 4.0 / max(warps, 1))
            busy = busy + (1.0 - hidden) * min(compute_s, smem_s)
        trips = kernel.exposed_trips_per_flop
        if trips and n_blocks == 1:  # a block alone waits out its prologues' loads
            busy = busy + trips * (tensor if matrix_rate is not None else cuda) * l2_s
        first_s = (self.dram_latency_s if hbm_r != 0 else
                   self.l2_latency_s if l2b != 0 else 0.0)
        misses = hbm_r
        loads = max(l2b - hbm_w, misses)
        hits = loads - misses
        dram_part = misses * dram_s
        chip_part = hits * l2_s + l1b * l1_s
        t_mem = (dram_part + chip_part) / inflight
        one_trip = dram_s if misses != 0 else l2_s if hits != 0 else l1_s
        none = loads == 0 and l1b == 0
        trip = not none and t_mem <= one_trip
        mem_s = 0.0 if none else one_trip if trip else t_mem
        start = busy + first_s
        if start >= mem_s:
            return start + self.turnover_s, ("latency" if busy <= first_s else
                                             "compute" if compute_s >= smem_s else "onchip")
        return mem_s + self.turnover_s, ("latency" if none or trip else
                                         "memory" if dram_part >= chip_part else "onchip")

    def _constants(self, kernel: Kernel, n_blocks: int) -> tuple:
        """What :meth:`_pipes_of` reads of ``kernel`` with ``n_blocks`` resident: the
        matrix, CUDA-core and SFU rates at the warps' fill (``None`` for the matrix rate
        without tensor cores, whose matrix work the CUDA-core rate of the kernel's type
        then takes), the vector work's divisor, serial operands, the warps, the loaded
        latencies and the bytes in flight. All but the loaded latencies are kept by
        what they depend on (the kernel's shape, type and bytes in flight), for every
        kernel alike: a GEMM's candidate tiles, the layers of a model and a sweep's
        points ask for the same ones again with other grids; the latencies, which
        depend on the grid too (:meth:`loaded_latency`), are worked out from them. The
        whole tuple is kept on the kernel by ``n_blocks`` (a kernel is not changed
        once built): a planner asks for it thousands of times."""
        mine = kernel.__dict__.get("_constants")  # (self, {n_blocks: constants})
        if mine is not None and mine[0] is self:
            got = mine[1].get(n_blocks)
            if got is not None:
                return got
        else:
            mine = kernel.__dict__["_constants"] = (self, {})
        key = (kernel.threads, kernel.regs, kernel.smem, kernel.tensor, kernel.dtype,
               kernel.serial_operands, kernel.inflight_bytes_per_thread, n_blocks,
               kernel.loop_efficiency)
        shape = self._constants_of.get(key)
        if shape is None:
            warps = n_blocks * cdiv(kernel.threads, 32)
            fill = min(1.0, warps / self.spec.warps_for_peak)
            if kernel.tensor:
                matrix_rate = self.tensor_rate_sm(kernel.dtype, kernel.loop_efficiency) * fill
                alu_rate = self.cuda_rate_sm("fp32") * fill
            else:
                matrix_rate = None
                alu_rate = self.cuda_rate_sm(kernel.dtype, kernel.loop_efficiency) * fill
            # (loaded_latency's occupancy and bytes in flight of one block)
            occ = max(1, n_blocks, self.occupancy(kernel.threads, kernel.regs,
                                                  kernel.smem).blocks_per_sm)
            shape = ((matrix_rate, alu_rate, self.sfu_rate_sm * fill, max(1, n_blocks),
                      kernel.serial_operands, warps), occ, self.inflight_bytes(kernel, 1),
                     self.inflight_bytes(kernel, n_blocks))
            if len(self._constants_of) >= CONSTANTS_KEPT:  # (a long sweep: start afresh)
                self._constants_of.clear()
            self._constants_of[key] = shape
        rates, occ, inflight_one, inflight = shape
        out = mine[1][n_blocks] = (*rates, *self._latencies(kernel.grid, n_blocks, occ,
                                                            inflight_one), inflight)
        return out

    def _terms(self, kernel: Kernel, w, n_blocks: int, xp) -> dict:
        """The terms of :meth:`_pipes` and :meth:`memory_time` for the counts ``w``
        (:func:`_fields`), floats (``xp`` = :data:`_FLOATS`) or numpy arrays of many
        works (``xp`` = numpy), element by element: one formula for both."""
        tensor, cuda, sfu, smem_wf, l2b, hbm_r, hbm_w, l1b = w
        warps = n_blocks * cdiv(kernel.threads, 32)
        fill = min(1.0, warps / self.spec.warps_for_peak)
        if kernel.tensor:
            matrix_s = tensor / (self.tensor_rate_sm(kernel.dtype, kernel.loop_efficiency)
                                 * fill)
            alu_s = cuda / (self.cuda_rate_sm("fp32") * fill)
        else:
            matrix_s = cuda / (self.cuda_rate_sm(kernel.dtype, kernel.loop_efficiency)
                               * fill)
            alu_s = 0.0 * cuda
        alu_s = alu_s + sfu / (self.sfu_rate_sm * fill)
        smem_s = smem_wf / self.smem_bw_sm
        # vector work (softmax between the two GEMMs of attention) overlaps with the
        # other resident blocks' matrix work, not with its own block's
        compute_s = matrix_s + alu_s / max(1, n_blocks)
        busy = xp.maximum(compute_s, smem_s)
        if kernel.serial_operands:
            # fragments loaded from shared memory right before the MMAs that use them: a
            # warp's own loads and MMAs serialize; other resident warps (per SM partition)
            # hide the rest
            hidden = max(0.0, 1.0 - 4.0 / max(warps, 1))
            busy = busy + (1.0 - hidden) * xp.minimum(compute_s, smem_s)
        l1_s, l2_s, dram_s = self.loaded_latency(kernel, n_blocks)
        trips = kernel.exposed_trips_per_flop
        if trips and n_blocks == 1:
            # a block alone waits out its main loops' prologues (Kernel.exposed_trips_
            # per_flop): with other blocks resident they fill the wait, and the floor of
            # one block alone (group_time) keeps the wait on the block's own path
            busy = busy + trips * (tensor if kernel.tensor else cuda) * l2_s
        # the first operands arrive after one load latency
        first_s = xp.where(hbm_r != 0, self.dram_latency_s,
                           xp.where(l2b != 0, self.l2_latency_s, 0.0))
        # Little's law over the loads (memory_time)
        misses = hbm_r
        loads = xp.maximum(l2b - hbm_w, misses)
        hits = loads - misses
        inflight = self.inflight_bytes(kernel, n_blocks)
        dram_part = misses * dram_s
        chip_part = hits * l2_s + l1b * l1_s
        t_mem = (dram_part + chip_part) / inflight
        one_trip = xp.where(misses != 0, dram_s, xp.where(hits != 0, l2_s, l1_s))
        none = xp.logical_and(loads == 0, l1b == 0)  # no loads at all
        trip = xp.logical_and(xp.logical_not(none), t_mem <= one_trip)  # one round trip
        mem_s = xp.where(none, 0.0, xp.where(trip, one_trip, t_mem))
        start = busy + first_s
        pipes = start >= mem_s  # the pipes (after the first load), not the loads, decide
        return {"t": xp.where(pipes, start, mem_s) + self.turnover_s, "mem_s": mem_s,
                "pipes": pipes, "busy": busy, "first_s": first_s, "compute_s": compute_s,
                "smem_s": smem_s, "none": none, "trip": trip, "dram_part": dram_part,
                "chip_part": chip_part}

    def kernel_floor(self, total: Work) -> tuple[float, str]:
        """The shared units' time for a kernel's whole traffic, and its bound."""
        return self.traffic_floor(total.hbm_bytes, total.l2_bytes)

    def traffic_floor(self, hbm_bytes: float, l2_bytes: float) -> tuple[float, str]:
        """:meth:`kernel_floor` of a kernel's HBM and L2 bytes (:meth:`Kernel.traffic`)."""
        hbm_s = hbm_bytes / self.hbm_bw
        l2_s = l2_bytes / self.l2_bw
        return (hbm_s, "memory") if hbm_s >= l2_s else (l2_s, "onchip")

    # ------------------------------------------------------------ schedule
    def block_share(self, kernel: Kernel, work: Work, occ: int) -> tuple[float, str]:
        """(seconds, bound) of the SM one block of ``work`` takes while ``occ`` blocks
        like it share the SM: its share of a full group."""
        occ = max(1, occ)
        f = _fields(work)
        if occ == 1:  # (x * 1 is x and t / 1 is t, for every float)
            return self._pipes_of(kernel, f, 1)
        # the counts of work.scaled(occ), each field times occ
        t, bound = self._pipes_of(kernel, tuple([x * occ for x in f]), occ)
        return t / occ, bound

    def block_shares(self, kernel: Kernel, works: list[Work], occ: int
                     ) -> list[tuple[float, str]]:
        """:meth:`block_share` of every work in ``works`` at once (the same terms on
        numpy arrays, element by element: the same floats, a test holds them equal): a
        causal attention has thousands of block classes."""
        return self._block_shares(kernel, works, occ, *_first_of(works))

    def _block_shares(self, kernel: Kernel, works: list[Work], occ: int, ids: list[int],
                      first: dict[int, int]) -> list[tuple[float, str]]:
        """:meth:`block_shares`, the works' identities and first places given
        (:func:`_first_of`)."""
        occ = max(1, occ)
        # a work listed for many classes (one per unit, :func:`.attention._classes`) is
        # costed once: the distinct ones, by identity
        if len(first) < MANY or not arrays(len(works)):
            if len(first) == len(works):
                return [self.block_share(kernel, w, occ) for w in works]
            got = {i: self.block_share(kernel, works[c], occ) for i, c in first.items()}
            return list(map(got.__getitem__, ids))
        import numpy as np  # noqa: PLC0415 (loaded on first need)

        cols = np.array([_fields(w) for w in works], dtype=float).T
        t, bounds = self.share_arrays(kernel, cols, occ)
        return list(zip(t.tolist(), bounds.tolist()))

    def share_arrays(self, kernel: Kernel, cols, occ: int):
        """:meth:`block_shares` on the columns of many works (:func:`_fields` rows):
        (seconds, bounds) as numpy arrays."""
        import numpy as np  # noqa: PLC0415

        x = self._terms(kernel, cols * occ, occ, np)  # scaled(occ)
        n = cols.shape[1]

        def full(v):
            return np.broadcast_to(np.asarray(v), (n,))

        memory = np.where(full(x["none"]) | full(x["trip"]), "latency",
                          np.where(full(x["dram_part"] >= x["chip_part"]), "memory", "onchip"))
        pipes = np.where(full(x["busy"] <= x["first_s"]), "latency",
                         np.where(full(x["compute_s"] >= x["smem_s"]), "compute", "onchip"))
        return full(x["t"] / occ), np.where(full(x["pipes"]), pipes, memory).astype(object)

    def group_times(self, kernel: Kernel, works: list[Work], n_blocks: int) -> list[float]:
        """:meth:`group_time` (its seconds) of every work in ``works`` at once, as
        :meth:`block_shares` does it: the same floats."""
        import numpy as np  # noqa: PLC0415 (loaded on first need)

        cols = np.array([_fields(w) for w in works], dtype=float).T
        return self.group_times_cols(kernel, cols, n_blocks)

    def group_times_cols(self, kernel: Kernel, cols, n_blocks: int) -> list[float]:
        """:meth:`group_times` on the columns of many works (:func:`_fields` rows)."""
        import numpy as np  # noqa: PLC0415

        t = self._terms(kernel, cols, n_blocks, np)["t"]
        if n_blocks > 1:  # never faster than one block alone (the average one)
            alone = self._terms(kernel, cols * (1.0 / n_blocks), 1, np)["t"]
            t = np.where(alone > t, alone, t)
        return np.broadcast_to(t, (cols.shape[1],)).tolist()

    def block_cost(self, kernel: Kernel, work: Work, occ: int,
                   sm_s: float | None = None) -> float:
        """:meth:`block_share` (``sm_s`` when already known), or the block's share of the
        shared units, if longer."""
        occ = max(1, occ)
        if sm_s is None:
            sm_s = self.block_share(kernel, work, occ)[0]
        resident = max(1, min(kernel.grid, self.spec.sms * occ))
        share_s = max(work.hbm_bytes * resident / self.hbm_bw,
                      work.l2_bytes * resident / self.l2_bw) / occ
        return max(sm_s, share_s)

    def block_costs(self, kernel: Kernel, occ: int, sm_s: list[float]) -> list[float]:
        """:meth:`block_cost` of every class of ``kernel`` at once (``sm_s``: their
        shares): the same floats."""
        import numpy as np  # noqa: PLC0415

        occ = max(1, occ)
        m = kernel.matrix
        resident = max(1, min(kernel.grid, self.spec.sms * occ))
        hbm = m[:, 6] + m[:, 7]  # hbm_read + hbm_write
        share_s = np.maximum(hbm * resident / self.hbm_bw, m[:, 5] * resident / self.l2_bw) / occ
        return np.maximum(np.array(sm_s, dtype=float), share_s).tolist()

    def assign(self, kernel: Kernel, occ: int,
               shares: list[tuple[float, str]] | None = None) -> list[list[int]]:
        """Block classes per SM, in the order each SM runs them.

        A uniform grid goes round robin. Blocks of different lengths (causal tiles)
        go, longest first, each to the SM with the least work so far: the hardware
        hands a block to whichever SM has a slot free first, and an SM's resident
        blocks share its pipes, so the SMs end up about equally loaded
        (work-conserving), as longest-processing-time-first balances them. Each SM
        runs its blocks longest first (:func:`plan_groups`). ``shares``: each class's
        :meth:`block_share` at ``occ``, when the caller has them."""
        return self._assign(kernel, occ, shares)

    def _assign(self, kernel: Kernel, occ: int, shares: list[tuple[float, str]] | None,
                ids: list[int] | None = None, first: dict[int, int] | None = None
                ) -> list[list[int]]:
        """:meth:`assign`; ``ids`` and ``first``: the classes' works' identities and
        first places (:func:`_first_of`), when the caller has them."""
        sms = self.spec.sms
        per_sm: list[list[int]] = [[] for _ in range(sms)]
        if len(kernel.blocks) == 1:
            count = kernel.blocks[0][0]
            base, extra = divmod(count, sms)
            for i in range(sms):
                per_sm[i] = [0] * (base + (1 if i < extra else 0))
            return per_sm
        order = None
        if shares is not None and len(kernel.blocks) >= MANY_SUMS and arrays(len(kernel.blocks)):
            import numpy as np  # noqa: PLC0415

            est = self.block_costs(kernel, occ, [t for t, _ in shares])
            # longest first, ties by class: a stable sort of the negated estimates (the
            # order of the sorts below; a NaN, which they would place otherwise, is left
            # to them)
            neg = -np.array(est)
            if not np.isnan(neg).any():
                order = np.argsort(neg, kind="stable").tolist()
        else:  # (a work listed for many classes costed once: its share is one too)
            blocks = kernel.blocks
            if ids is None:
                ids, first = _first_of(list(map(itemgetter(1), blocks)))
            costs = {i: self.block_cost(kernel, blocks[c][1], occ,
                                        shares[c][0] if shares else None)
                     for i, c in first.items()}
            est = list(map(costs.__getitem__, ids))
        heap = [(0.0, i) for i in range(sms)]
        heapq.heapify(heap)
        replace = heapq.heapreplace
        # longest first (LPT): the balance a scheduler that refills free slots reaches
        # (ties by class: a stable sort of the negated estimates)
        nan = any(map(math.isnan, est))  # (x != x, in C: a causal attention's 881 classes)
        if order is None:
            # a reversed sort is stable too (equal estimates keep their class order), so
            # it is the sort by (-estimate, class); a NaN, which has no order, is left to
            # the sort by both, as the planner always did where estimates repeat
            order = sorted(range(len(est)), key=est.__getitem__, reverse=True) \
                if not nan or len(set(est)) == len(est) else \
                sorted(range(len(est)), key=lambda c: (-est[c], c))
        blocks = kernel.blocks
        if not nan and min(est) >= 0.0:  # (the heap's steps by SMs of equal loads)
            _longest_first(order, est, [c for c, _ in blocks], per_sm)
            return per_sm
        put = [classes.append for classes in per_sm]  # (each SM's list, looked up once)
        for cls in order:
            d = est[cls]
            count = blocks[cls][0]
            if count == 1:  # (a causal attention's classes: one tile each)
                t, sm = heap[0]
                put[sm](cls)
                replace(heap, (t + d, sm))
                continue
            for _ in range(count):
                t, sm = heap[0]
                put[sm](cls)
                replace(heap, (t + d, sm))
        # each SM runs its blocks longest first: they were handed out in that order (ties
        # by class), so its list is sorted already, as a stable sort would leave it; with
        # a NaN estimate, which has no order, the sort says what it makes of it
        if nan:
            for classes in per_sm:  # (a stable sort, reversed: ties keep their order)
                classes.sort(key=est.__getitem__, reverse=True)
        return per_sm


def _longest_first(order: list[int], est: list[float], counts: list[int],
                   per_sm: list[list[int]]) -> None:
    """:meth:`Gpu.assign`'s handout of the classes in ``order`` (each ``counts[c]``
    blocks of ``est[c]`` seconds) to the SMs' lists ``per_sm``, each block to the least
    loaded SM, ties to the lower SM: what the heap of (load, SM) gives, step for step,
    where no estimate is NaN or below 0.

    SMs given the same blocks in the same order hold the same load to the last bit (a
    causal attention's 1,024 tiles are 32 rows of 32 heads: its 80 SMs move in two or
    three such groups), so the SMs are kept by load, each load's SMs in order, and a
    run of equal estimates goes to a load's SMs at once: while blocks of the run are
    left, the least load's lowest SMs take one each (the heap would pop them in that
    order, and each comes back at load + estimate, above the load it left) and move,
    in order, to the load + estimate's SMs (merged there in order). Where load +
    estimate rounds to the load itself (an estimate of 0, or one below the load's last
    bit), the SM the heap pops keeps the least load, so it takes the run's rest."""
    put = [classes.append for classes in per_sm]
    by_load = {0.0: list(range(len(per_sm)))}  # load -> its SMs, in order
    loads = [0.0]  # the loads held, a heap
    pop, push = heapq.heappop, heapq.heappush
    ones = all(c == 1 for c in counts)
    for d, run in groupby(order, est.__getitem__):  # (runs of equal estimates)
        items = list(run)
        if not ones:  # (a class of many blocks: as many items)
            items = [c for c in items for _ in range(counts[c])]
        pos, n = 0, len(items)
        while pos < n:
            t = loads[0]
            sms = by_load[t]
            u = t + d
            if u == t:  # the lowest SM stays the least loaded: the run's rest is its
                add = put[sms[0]]
                for cls in items[pos:]:
                    add(cls)
                break
            j = len(sms)
            if n - pos < j:  # the run ends within this load's SMs
                j = n - pos
                taken = sms[:j]
                by_load[t] = sms[j:]
            else:
                taken = sms
                pop(loads)
                del by_load[t]
            for sm, cls in zip(taken, items[pos:pos + j]):
                put[sm](cls)
            pos += j
            got = by_load.get(u)
            if got is None:
                by_load[u] = taken
                push(loads, u)
            else:  # (two sorted lists: a merge)
                got.extend(taken)
                got.sort()


@dataclass
class KernelReport:
    """What ``VoltaTarget.kernels`` returns for one kernel."""

    name: str
    grid: int
    block_tile: str
    threads: int
    regs: int
    smem_bytes: int
    occupancy: int
    limiter: str
    waves: float
    bound: str
    est_s: float = 0.0
    detail: str = ""
    notes: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(vars(self))  # (its fields, in their order)

    def renamed(self, name: str, detail: str, notes: dict) -> "KernelReport":
        """This report under another kernel's name, detail and notes (as
        ``dataclasses.replace`` makes it, in a fifth of its time: the fields named)."""
        return KernelReport(name, self.grid, self.block_tile, self.threads, self.regs,
                            self.smem_bytes, self.occupancy, self.limiter, self.waves,
                            self.bound, self.est_s, detail, notes)


class _Counter:
    """Cumulative rounding of float byte counts to integers: the integers handed out
    sum to the rounded float total, whatever the number of parts."""

    def __init__(self):
        self.acc = 0.0
        self.given = 0

    def take(self, x: float) -> int:
        self.acc += x
        n = int(round(self.acc)) - self.given
        self.given += n
        return n

    def share(self, x: float, members: int) -> int:
        """Each of ``members``' whole share of ``x`` bytes each: what the members take
        together, split equally; the remainder goes to later takes (or :meth:`left`)."""
        # (take, inline: a kernel's every chunk shares three counts)
        self.acc += x if members == 1 else x * members
        together = int(round(self.acc)) - self.given
        self.given += together
        if members == 1:
            return together
        each = together // members
        self.given -= together - each * members  # not handed out yet
        return each

    def left(self) -> int:
        """Whole bytes taken in total but not handed out by :meth:`share`."""
        return int(round(self.acc)) - self.given


class Builder:
    """Turns kernels into tasks, one kernel after another.

    With a ``sink`` (an :class:`hwsim.engine.Accumulator`: the ``analytical`` fidelity,
    which reads only the tasks' summary) each task's fields go to it as they are
    found and no :class:`Task` is made: :attr:`tasks` stays empty, the indices handed
    back are those the tasks would have had, and what only the event timeline reads
    (the labels) is never formatted. The sums are the same, in the same order, so the
    summary is :func:`hwsim.engine.summarize` of the tasks to the last bit (a test
    holds the two equal on every op kind, with and without an on-chip carry)."""

    def __init__(self, gpu: Gpu, energy: "callable", label: str, *, grouping: bool = True,
                 sink=None):
        self.gpu = gpu
        self.energy = energy  # (kernel, work) -> actions
        self.label = label
        # SMs with the same runs emitted as one group (Task.copies; their traffic as
        # serial copies on the shared units); False: one lane per SM (the tests' reference)
        self.grouping = grouping
        self.sink = sink
        self.tasks: list[Task] = []
        self.reports: list[KernelReport] = []
        self._last: tuple[int, ...] = ()
        self._stream: int | None = None  # the last task of the stream lane (launch, gap)

    def add(self, task: Task) -> int:
        sink = self.sink
        if sink is not None:
            return sink.add_task(task)
        self.tasks.append(task)
        return len(self.tasks) - 1

    def start(self, name: str) -> int:
        """The task a kernel's blocks wait for. The op's first kernel waits for its
        launch (``kernel_launch_s``). A later kernel was enqueued right behind the one
        before it: the stream takes its launch in once that kernel has started, while
        it runs, and the kernel starts ``kernel_gap_s`` after both its launch and the
        kernel before it are done (a queued launch hides behind a kernel at least as
        long as the launch; :func:`queued_start_s` is the same rule without tasks)."""
        spec = self.gpu.spec
        if self._stream is None:
            self._stream = self.launch(name, self._last)
            return self._stream
        launch = self.launch(name, (self._stream,))
        deps = self._last + (launch,)
        sink = self.sink
        self._stream = (
            sink.add("stream", spec.kernel_gap_s, None, None, deps, "latency")
            if sink is not None else
            self.add(Task("stream", spec.kernel_gap_s, deps=deps, bound="latency",
                          label=f"{self.label}: gap before {name}")))
        return self._stream

    def launch(self, name: str, deps=()) -> int:
        spec = self.gpu.spec
        sink = self.sink
        if sink is not None:
            return sink.add("stream", spec.kernel_launch_s, None, None, tuple(deps), "latency")
        return self.add(Task("stream", spec.kernel_launch_s, deps=tuple(deps), bound="latency",
                             label=f"{self.label}: launch {name}"))

    def _pieces(self, unit: str, nbytes: float, piece: float, rate: float, deps, bound: str,
                label: str, first_bytes: dict, copies: int = 1) -> int:
        """``nbytes`` on a shared unit as a chain of pieces; returns the last task.
        ``copies``: the pieces of that many SMs with the same work, taking turns."""
        n = max(1, int(round(nbytes / piece))) if piece > 0 else 1
        dur = nbytes / rate / n
        serial = copies > 1
        sink = self.sink
        if sink is not None:  # the same tasks' sums, none made
            return sink.add_pieces(unit, dur, n, first_bytes, deps, bound, copies, serial)
        tasks = self.tasks
        first = len(tasks)
        # (Task's fields in order, without its keyword-parsing constructor: a kernel has
        # hundreds of pieces; no bytes and no actions are one read-only empty mapping)
        tasks.append(_new_task(Task, (unit, dur, first_bytes or _EMPTY, _EMPTY, tuple(deps),
                                      bound, "", label, copies, serial)))
        # the rest: the same fields but the dependency
        tasks.extend([_new_task(Task, (unit, dur, _EMPTY, _EMPTY, (i,), bound, "", label,
                                       copies, serial)) for i in range(first, first + n - 1)])
        return len(tasks) - 1

    def kernel(self, k: Kernel) -> KernelReport:
        gpu, spec = self.gpu, self.gpu.spec
        occ = gpu.occupancy(k.threads, k.regs, k.smem)
        if occ.blocks_per_sm < 1:
            from hwsim.errors import InputError

            raise InputError(f"kernel {k.name} ({k.tile}) does not fit on an SM: "
                             f"{k.threads} threads, {k.regs} registers, {k.smem} B shared",
                             field="tiling")
        per = occ.blocks_per_sm
        grid = k.grid
        waves = grid / (spec.sms * per)
        start = self.start(k.name)
        ends: list[int] = []
        bounds: dict[str, float] = {}
        hbm_total, l2_total = k.traffic()  # (the blocks' total work's bytes)
        est = 0.0
        sink = self.sink
        if grid and sink is not None:  # the same sums, no task made (_summed)
            est = self._summed(k, per, start, hbm_total, l2_total, bounds, ends)
        elif grid:
            # the timeline's labels
            tag = f"{self.label}: {k.name} {k.tile} occ={per} ({occ.limiter}) waves={waves:.2f}"
            hbm_label, l2_label = f"{tag} HBM", f"{tag} L2"
            hbm_piece = hbm_total / PIECES_PER_KERNEL
            l2_piece = l2_total / PIECES_PER_KERNEL
            rd, wr, l2c = _Counter(), _Counter(), _Counter()
            hbm_bw, l2_bw = gpu.hbm_bw, gpu.l2_bw
            per_sm = self._groups(k, per)
            for members in self._sm_groups(per_sm):
                sm, copies = members[0], len(members)
                runs = per_sm[sm]
                unit = group_name("sm", members)
                chunks = []
                for reps, w, n, sm_s, bound in runs:
                    made: dict[int, tuple] = {}  # equal parts of a run: one chunk (read only)
                    for r in _split(reps):
                        chunk = made.get(r)
                        if chunk is None:  # (a part of one: the run's own work, read only)
                            chunk = made[r] = (sm_s * r, w.scaled(r) if r > 1 else w, n * r,
                                               {bound: sm_s * r})
                        chunks.append(chunk)
                # each lane of the SM, its pipes and its traffic on the shared units,
                # runs its parts in turn: a group's loads stream while the previous
                # group computes (double buffering), and the units serve the SMs' chains
                # round robin, never idle while a piece is waiting
                acts: dict[int, dict] = {}  # a chunk's actions (its tasks only read them)
                sm_lane = hbm_lane = l2_lane = (start,)
                sm_total = 0.0
                for sm_s, w, nblocks, by in _merge(chunks):
                    for b, t in by.items():
                        bounds[b] = bounds.get(b, 0.0) + t * copies
                    bound = max(by, key=by.get) if len(by) > 1 else next(iter(by))
                    nbytes = {"l2_read": l2c.share(w.l2_bytes, copies)}
                    got = acts.get(id(w))
                    if got is None:
                        got = acts[id(w)] = self.energy(k, w)
                    self.tasks.append(_new_task(Task, (unit, sm_s, nbytes, got, sm_lane, bound,
                                                       "", f"{tag} x{nblocks}", copies,
                                                       False)))
                    sm_lane = (len(self.tasks) - 1,)
                    hbm_bytes = w.hbm_read + w.hbm_write  # (Work.hbm_bytes)
                    if hbm_bytes > 0:
                        nb = {"dram_read": rd.share(w.hbm_read, copies),
                              "dram_write": wr.share(w.hbm_write, copies)}
                        hbm_lane = (self._pieces(HBM_UNIT, hbm_bytes, hbm_piece, hbm_bw,
                                                 hbm_lane, "memory", hbm_label, nb,
                                                 copies),)
                    l2_bytes = w.l2_bytes
                    if l2_bytes > 0:
                        l2_lane = (self._pieces(L2_UNIT, l2_bytes, l2_piece, l2_bw, l2_lane,
                                                "onchip", l2_label, _EMPTY, copies),)
                    sm_total += sm_s
                if sm_total:
                    ends.extend(sorted({*sm_lane, *hbm_lane, *l2_lane}))
                est = max(est, sm_total)
            # what the groups' equal shares of whole bytes left over (under one per member)
            left = {"dram_read": rd.left(), "dram_write": wr.left(), "l2_read": l2c.left()}
            if any(left.values()):
                self.add(Task(HBM_UNIT, 0.0, {n: b for n, b in left.items() if b}, {}, (start,),
                              "memory", "", f"{tag} bytes left over by the groups' shares"))
        if k.pcie_bytes:
            ends.extend(self.pcie(k.pcie_bytes, (start,), k.name))
        if not ends:
            ends = [start]
        self._last = tuple(ends)
        bound = k.bound_hint or (max(bounds, key=bounds.get) if bounds else "latency")
        floor_s, floor_bound = gpu.traffic_floor(hbm_total, l2_total)
        if floor_s > est and not k.bound_hint:
            bound = floor_bound
        pcie_s = k.pcie_bytes / spec.pcie_bw_bytes_per_s
        est = max(est, floor_s, pcie_s)
        if k.pcie_bytes and pcie_s >= est:
            bound = "interconnect"
        rep = KernelReport(k.name, grid, k.tile, k.threads, k.regs, k.smem, per, occ.limiter,
                           round(waves, 3), bound, est + spec.kernel_launch_s, k.detail,
                           dict(k.notes))
        self.reports.append(rep)
        return rep

    def _summed(self, k: Kernel, per: int, start: int, hbm_total: float, l2_total: float,
                bounds: dict, ends: list) -> float:
        """:meth:`kernel`'s SM groups, handed to the sink (:class:`hwsim.engine.Accumulator`)
        as the tasks' fields, none made: the same sums in the same order as the tasks
        would give (:meth:`~hwsim.engine.Accumulator.add_chunk`, one call per chunk for
        its SM task and its HBM and L2 pieces), so the same floats. What a chunk's calls
        share whatever its place (its bound, actions, HBM and L2 pieces) is worked out
        once per distinct chunk (a run's equal parts are one chunk); each chunk then
        takes only its whole bytes (:class:`_Counter`'s cumulative rounding, inline:
        three counters a chunk) and its dependencies. Adds the SMs' bound seconds to
        ``bounds`` and the last tasks to ``ends``; returns the busiest group's seconds."""
        gpu, sink, energy = self.gpu, self.sink, self.energy
        add_chunk = sink.add_chunk
        hbm_piece = hbm_total / PIECES_PER_KERNEL
        l2_piece = l2_total / PIECES_PER_KERNEL
        hbm_bw, l2_bw = gpu.hbm_bw, gpu.l2_bw
        # the three _Counter's (HBM reads, HBM writes, L2 reads): bytes taken, handed out
        rd_acc = wr_acc = l2_acc = 0.0
        rd_given = wr_given = l2_given = 0
        bget = bounds.get
        est = 0.0
        per_sm = self._groups(k, per)
        groups = (uniform_groups(k.blocks[0][0], len(per_sm))
                  if self.grouping and len(k.blocks) == 1 else self._sm_groups(per_sm))
        for members in groups:
            copies = len(members)
            serial = copies > 1
            unit = group_name("sm", members)
            chunks = []
            for reps, w, n, sm_s, bound in per_sm[members[0]]:
                made: dict[int, tuple] = {}  # equal parts of a run: one chunk (read only)
                for r in _split(reps):
                    chunk = made.get(r)
                    if chunk is None:  # (a part of one: the run's own work, read only;
                        # its counts times 1 are themselves, to the last bit)
                        chunk = made[r] = (sm_s * r, w.scaled(r) if r > 1 else w, n * r,
                                           {bound: sm_s * r})
                    chunks.append(chunk)
            parts: dict[int, tuple] = {}  # id(chunk) -> what its calls share
            sm_i = hbm_i = l2_i = start  # each lane's last task
            sm_total = 0.0
            for chunk in _merge(chunks):
                got = parts.get(id(chunk))
                if got is None:
                    sm_s, w, _, by = chunk
                    hbm_bytes = w.hbm_read + w.hbm_write  # (Work.hbm_bytes)
                    hbm_n = (max(1, int(round(hbm_bytes / hbm_piece))) if hbm_piece > 0
                             else 1) if hbm_bytes > 0 else 0
                    l2_bytes = w.l2_bytes
                    l2_n = (max(1, int(round(l2_bytes / l2_piece))) if l2_piece > 0
                            else 1) if l2_bytes > 0 else 0
                    got = parts[id(chunk)] = (
                        sm_s, [(b, t * copies) for b, t in by.items()],
                        max(by, key=by.get) if len(by) > 1 else next(iter(by)),
                        energy(k, w),
                        # _Counter.share's bytes taken: x, or x times the members
                        l2_bytes if copies == 1 else l2_bytes * copies,
                        w.hbm_read if copies == 1 else w.hbm_read * copies,
                        w.hbm_write if copies == 1 else w.hbm_write * copies,
                        hbm_n, hbm_bytes / hbm_bw / hbm_n if hbm_n else 0.0,
                        l2_n, l2_bytes / l2_bw / l2_n if l2_n else 0.0)
                sm_s, by_s, bound, acts, l2_x, rd_x, wr_x, hbm_n, hbm_d, l2_n, l2_d = got
                for b, t in by_s:
                    bounds[b] = bget(b, 0.0) + t
                # _Counter.share: the members' whole bytes together, split equally
                l2_acc += l2_x
                l2_b = round(l2_acc) - l2_given
                if serial:
                    l2_b //= copies
                l2_given += l2_b * copies
                rd_b = wr_b = 0
                if hbm_n:
                    rd_acc += rd_x
                    rd_b = round(rd_acc) - rd_given
                    wr_acc += wr_x
                    wr_b = round(wr_acc) - wr_given
                    if serial:
                        rd_b //= copies
                        wr_b //= copies
                    rd_given += rd_b * copies
                    wr_given += wr_b * copies
                # the chunk on its SMs, its HBM pieces, its L2 pieces: one call
                sm_i, hbm_i, l2_i = add_chunk(unit, sm_s, l2_b, acts, sm_i, bound, copies,
                                              serial, HBM_UNIT, hbm_d, hbm_n, rd_b, wr_b,
                                              hbm_i, L2_UNIT, l2_d, l2_n, l2_i)
                sm_total += sm_s
            if sm_total:
                ends.extend(sorted({sm_i, hbm_i, l2_i}))
            est = max(est, sm_total)
        # what the groups' equal shares of whole bytes left over (under one per member)
        left = {"dram_read": round(rd_acc) - rd_given, "dram_write": round(wr_acc) - wr_given,
                "l2_read": round(l2_acc) - l2_given}
        if any(left.values()):
            sink.add(HBM_UNIT, 0.0, {n: b for n, b in left.items() if b}, {}, (start,),
                     "memory")
        return est

    def _groups(self, k: Kernel, per: int) -> list[list[Run]]:
        return plan_groups(self.gpu, k, per)

    def _sm_groups(self, per_sm: list[list[Run]]) -> list[list[int]]:
        """The SMs in groups of equal runs, in order of their first member (each SM
        alone when grouping is off)."""
        if not self.grouping:
            return [[sm] for sm in range(len(per_sm))]
        # SMs of one share hold the same runs list: each list keyed once, its SMs found
        # by identity (a uniform grid's 80 SMs hold one or two lists)
        # each list's SMs, lists in order of their first SM: the SMs taken by stretches of
        # one list (a uniform grid's plan is two stretches)
        sms_of: dict[int, tuple[list, list[int]]] = {}
        sm = 0
        for i, stretch in groupby(map(id, per_sm)):
            n = len(list(stretch))
            got = sms_of.get(i)
            if got is None:
                sms_of[i] = (per_sm[sm], list(range(sm, sm + n)))
            else:
                got[1].extend(range(sm, sm + n))
            sm += n
        # lists whose runs' times differ cannot be equal: the full keys (the works' counts
        # too) only where the times repeat (a causal attention's 80 lists all differ)
        times = [tuple([t for _, _, _, t, _ in runs]) for runs, _ in sms_of.values()]
        if len(set(times)) == len(times):
            return [members for _, members in sms_of.values()]
        groups: dict[tuple, list[int]] = {}
        for runs, members in sms_of.values():
            key = tuple([(reps, w.key(), n, t, b) for reps, w, n, t, b in runs])
            if key in groups:  # equal runs in another list: the same group, SMs in order
                members = sorted(groups[key] + members)
            groups[key] = members
        return list(groups.values())

    def pcie(self, nbytes: float, deps, name: str, chunks: int = 8) -> list[int]:
        """Host transfers in chunks on the ``pcie`` lane (overlapping the SMs)."""
        spec = self.gpu.spec
        out = []
        prev = tuple(deps)
        part = nbytes / chunks
        step_s = spec.pcie_latency_s / chunks + part / spec.pcie_bw_bytes_per_s
        for i in range(chunks):
            if self.sink is not None:
                t = self.sink.add("pcie", step_s, {"pcie": int(part)}, {"pcie_byte": part},
                                  prev, "interconnect")
            else:
                t = self.add(Task("pcie", step_s, {"pcie": int(part)}, {"pcie_byte": part},
                                  prev, "interconnect",
                                  label=f"{self.label}: {name} host KV {i + 1}/{chunks}"))
            prev = (t,)
            out.append(t)
        return out[-1:]


Run = tuple[int, Work, int, float, str]  # repetitions, work, blocks, seconds each, bound




def plan_groups(gpu: Gpu, k: Kernel, per: int) -> list[list[Run]]:
    """Per SM, what it runs: (repetitions, work, blocks, seconds of one repetition, bound).

    A uniform grid runs in groups of ``per`` blocks resident together (the last
    possibly smaller). Blocks of different lengths share the SM as they come and
    go (a slot freed is refilled at once): the SM's time is its blocks' shares of
    a full SM, added up (work-conserving), and never less than its longest block
    alone; it is cut into at most ``MAX_CHUNKS_PER_SM - 1`` runs, longest first.

    The plan is kept on the kernel for its GPU and ``per`` (a kernel is not changed once
    built): an attention's tile choice plans each candidate (:func:`estimate`), and the
    builder then plans the chosen one again."""
    kept = k.__dict__.setdefault("_plans", {})
    got = kept.get(per)
    if got is not None and got[0] is gpu:
        return got[1]
    out = _plan_groups(gpu, k, per)
    kept[per] = (gpu, out)
    return out


def _plan_groups(gpu: Gpu, k: Kernel, per: int) -> list[list[Run]]:
    """:func:`plan_groups`, planned."""
    sms = gpu.spec.sms
    out: list[list[Run]] = []
    if len(k.blocks) == 1:
        count, w = k.blocks[0]
        base, extra = divmod(count, sms)
        groups: dict[int, tuple] = {}  # a group of n blocks: its work, time and bound

        alone: list[tuple[float, str]] = []  # (a block on its own: group_time's floor)

        def runs_of(c: int) -> list[Run]:  # SMs with as many blocks run the same
            full, rest = divmod(c, per)
            runs = []
            for reps, n in ((full, per), (1 if rest else 0, rest)):
                if reps:
                    g = groups.get(n)
                    if g is None:  # (the full group is the same for both counts)
                        # gpu.group_time(k, wn, n, w), the block alone worked out once
                        wn = w.scaled(n)
                        t, bound = gpu._pipes(k, wn, n)
                        if n > 1:
                            if not alone:
                                alone.append(gpu._pipes(k, w, 1))
                            if alone[0][0] > t:
                                t, bound = alone[0]
                        g = groups[n] = (wn, t, bound)
                    runs.append((reps, g[0], n, g[1], g[2]))
            return runs

        # the first ``extra`` SMs take one block more (round robin), each count's
        # runs one list shared by its SMs
        return ([runs_of(base + 1)] * extra if extra else []) + [runs_of(base)] * (sms - extra)
    works = list(map(itemgetter(1), k.blocks))
    many = len(works) >= MANY_SUMS and arrays(len(works))
    if many:  # thousands of classes (a causal attention's tiles): numpy, the same floats
        m = k.matrix
        # each distinct work's share once (a work listed for many classes: its rows)
        index: dict[int, int] = {}
        rows = []
        for c, w in enumerate(works):
            if id(w) not in index:
                index[id(w)] = len(rows)
                rows.append(c)
        t_arr, b_arr = gpu.share_arrays(k, m[rows][:, TERM_COLUMNS].T, max(1, per))
        distinct = list(zip(t_arr.tolist(), b_arr.tolist()))
        shares = distinct if len(rows) == len(works) else [distinct[index[id(w)]]
                                                            for w in works]
        assigned = gpu.assign(k, per, shares)  # longest first
    else:
        wid, first_class = _first_of(works)  # (one pass for the share, the cost, the keys)
        shares = gpu._block_shares(k, works, per, wid, first_class)
        assigned = gpu._assign(k, per, shares, wid, first_class)  # longest first
    # SMs given the same works in the same order run the same: each such list is planned
    # once (its runs shared by those SMs; every step below is per SM). A class's share,
    # cost and counts are its work's, and a work listed for many classes is one object
    # (a causal attention's tile of every head, .attention._classes): the lists are
    # keyed by their works' identities, so SMs given the same tiles of other heads
    # share one list
    if many:
        wid = list(map(id, works))
    keys = [tuple(map(wid.__getitem__, classes)) for classes in assigned]
    first: dict[tuple, int] = {}  # a list of works -> its place among the distinct ones
    busy = []
    for key, classes in zip(keys, assigned):
        if classes and key not in first:
            first[key] = len(busy)
            busy.append(classes)
    # one block at a time per SM (per == 1): the fluid schedule runs its blocks one after
    # another, each at the ratio of one block's time to itself, 1.0; its time is then
    # the running sum of the shares, to the last bit (:func:`_shared_sm_time`; a test
    # holds the two equal), and no ratio is needed
    alone = per == 1
    # every list's ratios (its sum in one call, segment_sums, with many classes)
    ratios = None if alone else _all_ratios(gpu, k, m if many else None, works, busy, per)
    if many:  # every run's sum, in one call
        run_sums = iter(segment_sums(m, [classes[c0:c0 + _run_size(classes)]
                                         for classes in busy
                                         for c0 in range(0, len(classes), _run_size(classes))]
                                     ).tolist())
    share_s = list(map(itemgetter(0), shares))
    share_b = list(map(itemgetter(1), shares))
    planned: dict[tuple, list[Run]] = {}
    for key, classes in zip(keys, assigned):
        if not classes:
            out.append([])
            continue
        runs = planned.get(key)
        if runs is not None:
            out.append(runs)
            continue
        vals = list(map(share_s.__getitem__, classes))
        total = sum(vals)
        if alone and math.isfinite(total):
            sm_s = 0.0
            for v in vals:  # (as the schedule adds them: not sum(), which may compensate)
                sm_s += v
        else:
            if ratios is None:  # (an infinite share: the schedule says what it makes of it)
                ratios = _all_ratios(gpu, k, m if many else None, works, busy, per)
            sm_s = _shared_sm_time(ratios[first[key]], [v * per for v in vals], per)
        stretch = sm_s / total if total else 1.0
        size = _run_size(classes)
        runs = planned[key] = []
        for c0 in range(0, len(classes), size):
            members = classes[c0:c0 + size]
            part = vals[c0:c0 + size]
            if many:
                w = Work(*next(run_sums))
            else:
                w = Work()
                for c in members:
                    w.add(works[c])
            by: dict[str, float] = {}
            for c, v in zip(members, part):
                b = share_b[c]
                by[b] = by.get(b, 0.0) + v
            t = sum(part) * stretch
            runs.append((1, w, len(members), t, max(by, key=by.get)))
        out.append(runs)
    return out


def uniform_groups(count: int, sms: int) -> list[list[int]]:
    """:meth:`Builder._sm_groups` of a uniform grid of ``count`` blocks, without looking
    at its plan: the first ``count % sms`` SMs hold one list of runs, the others another
    (:func:`plan_groups`), never equal (their blocks differ in number); a test holds
    the two equal."""
    extra = count % sms
    return [list(range(extra)), list(range(extra, sms))] if extra else [list(range(sms))]


def _first_of(works: list[Work]) -> tuple[list[int], dict[int, int]]:
    """The works' identities, and each distinct work's first place among them: a work
    listed for many classes (a causal attention's tile of every head) is costed once."""
    ids = list(map(id, works))
    # found in C: the pairs reversed, so that a work's first place is written last
    return ids, dict(zip(reversed(ids), range(len(ids) - 1, -1, -1)))


def _all_ratios(gpu: Gpu, k: Kernel, m, works: list[Work], busy: list[list[int]], per: int
                ) -> list[dict[int, float]]:
    """:func:`_tail_ratios` of every SM list in ``busy``, from the kernel's matrix ``m``
    (many classes) or its works."""
    if m is None:
        return _tail_ratios(gpu, k, [[works[c] for c in classes] for classes in busy], per)
    import numpy as np  # noqa: PLC0415

    sums = segment_sums(m, busy)
    return _ratios(gpu, k, sums * (1.0 / np.array([len(c) for c in busy], dtype=float)
                                   )[:, None], per)


def _run_size(classes: list[int]) -> int:
    """Classes per run of an SM's list (:func:`plan_groups`: at most
    ``MAX_CHUNKS_PER_SM - 1`` runs)."""
    return math.ceil(len(classes) / (MAX_CHUNKS_PER_SM - 1))


def _shared_sm_time(ratio: dict[int, float], full: list[float], per: int) -> float:
    """Seconds an SM takes for blocks of unequal length, ``per`` slots refilled as
    blocks finish. ``full[i]`` is block i's time while ``per`` blocks share the SM;
    with fewer resident (the SM's tail) a block runs as fast as a group of that many
    blocks lets it: ``ratio[r]``, the group time of r average blocks over that of
    ``per`` (:func:`_tail_ratios`): a fluid schedule, event by event."""
    waiting = list(full)
    waiting.reverse()  # pop() takes the next block in run order
    resident = [waiting.pop() for _ in range(min(per, len(waiting)))]
    t = 0.0
    while resident:
        step = min(resident)
        t += step * ratio[len(resident)]
        resident = [x - step for x in resident if x - step > 1e-15]
        while waiting and len(resident) < per:
            resident.append(waiting.pop())
    return t


def _tail_ratios(gpu: Gpu, k: Kernel, per_sm: list[list[Work]], per: int
                 ) -> list[dict[int, float]]:
    """Per SM (its blocks' works): the group time of r of its average blocks over that
    of ``per`` of them, r = 1..per; every SM at once (:meth:`Gpu.group_times`)."""
    avgs = []
    for works in per_sm:
        avg = Work()
        for w in works:
            avg.add(w)
        avgs.append(_fields(avg.scaled(1.0 / len(works))))
    return _ratios(gpu, k, avgs, per)


def _ratios(gpu: Gpu, k: Kernel, avgs: list, per: int) -> list[dict[int, float]]:
    """:func:`_tail_ratios` from each SM's average block, as :func:`_fields` rows or
    as full :data:`WORK_FIELDS` rows (the matrix path)."""
    rows = avgs if isinstance(avgs, list) else avgs.tolist()  # (a numpy array's rows)
    # SMs with the same average block have the same ratios: each distinct one once
    index: dict[tuple, int] = {}
    distinct = []
    for row in rows:
        key = tuple(row)
        if key not in index:
            index[key] = len(distinct)
            distinct.append(key)
    if len(distinct[0]) == len(WORK_FIELDS):
        distinct = [tuple([row[c] for c in TERM_COLUMNS]) for row in distinct]
    # over a full group's pipes without the lone block's floor: the blocks' shares
    # (Gpu.block_share, what _shared_sm_time is given) are without it too, so a full
    # group whose lone block takes longer than its pipes (a one-warp decode tile) keeps
    # that floor, as a uniform grid's group does (Gpu.group_time)
    if len(distinct) * per <= FEW_RATIOS or not arrays(len(distinct) * per):
        # one by one (Gpu.group_time's floats)
        times = {r: [_group_time_of(gpu, k, tuple([x * r for x in row]), r) for row in distinct]
                 for r in range(1, per + 1)}
        full = [gpu._pipes_of(k, tuple([x * per for x in row]), per)[0] for row in distinct]
    else:
        import numpy as np  # noqa: PLC0415

        cols = np.array(distinct, dtype=float).T
        times = {r: gpu.group_times_cols(k, cols * r, r) for r in range(1, per + 1)}
        full = np.broadcast_to(gpu._terms(k, cols * per, per, np)["t"],
                               (cols.shape[1],)).tolist()
    each = []
    for i in range(len(distinct)):
        t_full = full[i]
        each.append({r: (times[r][i] / t_full if t_full else 1.0) for r in range(1, per + 1)})
    return [each[index[tuple(row)]] for row in rows]


FEW_RATIOS = 12  # group times below which _ratios takes them one by one (numpy's calls cost more)


def _group_time_of(gpu: Gpu, k: Kernel, f: tuple, n: int) -> float:
    """:meth:`Gpu.group_time`'s seconds for the counts ``f`` (:func:`_fields` order) of
    ``n`` blocks, the average block alone as its floor: the floats of
    :meth:`Gpu.group_times_cols` for one column."""
    t = gpu._pipes_of(k, f, n)[0]
    if n > 1:
        alone = gpu._pipes_of(k, tuple([x * (1.0 / n) for x in f]), 1)[0]
        if alone > t:
            t = alone
    return t


def queued_start_s(spec, start_s: float, end_s: float, first: bool) -> float:
    """When a kernel starts in an op's stream (:meth:`Builder.start`): the first after
    its launch; a later one ``kernel_gap_s`` after both the kernel before it (which
    started at ``start_s`` and ends at ``end_s``) and its own launch, taken in from
    ``start_s`` on."""
    if first:
        return spec.kernel_launch_s
    return max(start_s + spec.kernel_launch_s, end_s) + spec.kernel_gap_s


def estimate(gpu: Gpu, kernels: list[Kernel]) -> float:
    """Seconds of ``kernels`` run one after another, without a simulation: per kernel
    the busiest SM's groups or the shared units' floor, whichever is longer, after its
    launch or, for a later kernel, its queued start (:func:`queued_start_s`; what a
    library's heuristic would estimate; the tasks refine it)."""
    start = end = 0.0
    for j, k in enumerate(kernels):
        occ = gpu.occupancy(k.threads, k.regs, k.smem).blocks_per_sm
        if occ < 1:
            return float("inf")
        busiest = estimate_busiest(gpu, k, occ)
        floor_s, _ = gpu.traffic_floor(*k.traffic())
        start = queued_start_s(gpu.spec, start, end, j == 0)
        end = start + max(busiest, floor_s, k.pcie_bytes / gpu.spec.pcie_bw_bytes_per_s)
    return end


def estimate_busiest(gpu: Gpu, k: Kernel, occ: int) -> float:
    """:func:`estimate`'s busiest SM of ``k`` (``occ`` blocks resident): its planned
    runs' seconds (:func:`plan_groups`), summed."""
    busiest = 0.0
    seen: dict[int, float] = {}  # SMs that share a runs list (plan_groups) share its sum
    for runs in plan_groups(gpu, k, occ):
        sm_s = seen.get(id(runs))
        if sm_s is None:
            sm_s = seen[id(runs)] = sum([reps * t for reps, _, _, t, _ in runs])
        busiest = max(busiest, sm_s)
    return busiest


def _split(reps: int) -> list[int]:
    """A run of identical groups cut into at most MAX_CHUNKS_PER_SM - 1 parts."""
    k = MAX_CHUNKS_PER_SM - 1
    if reps <= k:
        return [1] * reps
    size = math.ceil(reps / k)
    return [min(size, reps - i) for i in range(0, reps, size)]


def _merge(chunks: list) -> list:
    """At most MAX_CHUNKS_PER_SM chunks per SM: consecutive chunks summed, the last
    (the tail wave's) kept on its own."""
    if len(chunks) <= MAX_CHUNKS_PER_SM:
        return chunks
    head, last = chunks[:-1], chunks[-1]
    size = math.ceil(len(head) / (MAX_CHUNKS_PER_SM - 1))
    out = []
    for i in range(0, len(head), size):
        part = head[i:i + size]
        w = Work()
        by: dict[str, float] = {}
        for c in part:
            w.add(c[1])
            for b, t in c[3].items():
                by[b] = by.get(b, 0.0) + t
        out.append((sum([c[0] for c in part]), w, sum([c[2] for c in part]), by))
    return out + [last]
