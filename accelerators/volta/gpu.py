"""The GPU as the lowering sees it: kernels, occupancy, waves, and their tasks.

A *kernel* is a grid of thread blocks of one shape (threads, registers per
thread, shared memory per block). How many blocks an SM holds at once, its
*occupancy*, is the smallest of four limits: resident blocks, threads,
registers (allocated per warp in units of 256) and shared memory. A kernel
runs in *waves* of ``sms x occupancy`` blocks; a last, partial wave (the tail)
leaves SMs idle.

Each SM runs its blocks in *groups*: the blocks resident together. A group's
time on the SM is the largest of its tensor-core, CUDA-core, shared-memory and
L2 times (a software-pipelined main loop overlaps them), plus the exposed
part of its vector work and one memory latency to fill the pipeline. Its HBM
traffic is a separate task on the SM's memory lane that holds one stream of
the shared ``hbm`` pool: ``hbm_bw / sm_hbm_bw`` streams, each at the rate one
SM can draw alone. So a lone SM streams at its own rate, all SMs together at
most at the achievable HBM bandwidth, and the queueing comes out of the event
run. The next group on an SM starts when both tasks of the previous one are
done (a block slot frees when the block ends).

Units (timeline lanes): ``sm7`` (the SM's pipes), ``sm7.mem`` (its HBM
stream), ``stream`` (kernel launches, in order), ``pcie`` (host transfers),
``nvlink`` (the all-reduce ring).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field, fields

from hwsim.engine import Task

from .spec import VoltaSpec

HBM_POOL = "hbm"
MAX_CHUNKS_PER_SM = 6  # merged task pairs per SM and kernel (keeps ops to ~1000 tasks)


def cdiv(a: int, b: int) -> int:
    return -(-int(a) // int(b))


@dataclass
class Work:
    """What one thread block (or a group of them) does, in counts."""

    tensor_flops: float = 0.0
    cuda_flops: float = 0.0
    sfu_ops: float = 0.0
    smem_bytes: float = 0.0  # bytes read and written in shared memory
    smem_wavefront_bytes: float = 0.0  # the same in 128-B wavefronts, bank conflicts included
    l2_bytes: float = 0.0  # traffic between the SM and L2 (HBM traffic included)
    hbm_read: float = 0.0
    hbm_write: float = 0.0

    def scaled(self, k: float) -> "Work":
        return Work(*(getattr(self, f.name) * k for f in fields(Work)))

    def add(self, other: "Work") -> None:
        for f in fields(Work):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


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
    notes: dict = field(default_factory=dict)

    @property
    def grid(self) -> int:
        return sum(c for c, _ in self.blocks)

    def total(self) -> Work:
        w = Work()
        for count, work in self.blocks:
            w.add(work.scaled(count))
        return w


@dataclass(frozen=True)
class Occupancy:
    blocks_per_sm: int
    limiter: str  # blocks | threads | registers | shared memory


class Gpu:
    """Derived rates of a spec."""

    def __init__(self, spec: VoltaSpec):
        self.spec = spec
        s = spec
        self.clock = s.clock_hz
        self.smem_bw_sm = s.smem_banks * s.smem_bank_bytes * s.clock_hz * s.smem_efficiency
        self.sfu_rate_sm = s.sfu_ops_per_clock_per_sm * s.clock_hz
        self.hbm_streams = max(1, round(s.hbm_bw_bytes_per_s / s.sm_hbm_bw_bytes_per_s))
        self.stream_bw = s.hbm_bw_bytes_per_s / self.hbm_streams
        self.dram_latency_s = s.dram_latency_cycles / s.clock_hz
        self.l2_latency_s = s.l2_latency_cycles / s.clock_hz
        self.smem_latency_s = s.smem_latency_cycles / s.clock_hz

    # ------------------------------------------------------------ rates
    def tensor_rate_sm(self, dtype: str) -> float:
        per_clock = self.spec.tensor_flops_per_clock_per_sm.get(dtype, 0.0)
        return per_clock * self.clock * self.spec.mma_efficiency

    def cuda_rate_sm(self, dtype: str) -> float:
        per_clock = self.spec.cuda_flops_per_clock_per_sm.get(dtype)
        if per_clock is None:
            per_clock = self.spec.cuda_flops_per_clock_per_sm.get("fp32", 128.0)
        return per_clock * self.clock * self.spec.fp32_efficiency

    def has_tensor(self, dtype: str) -> bool:
        return self.spec.tensor_flops_per_clock_per_sm.get(dtype, 0.0) > 0

    # ------------------------------------------------------------ occupancy
    def occupancy(self, threads: int, regs: int, smem: int) -> Occupancy:
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
    def group_times(self, kernel: Kernel, work: Work, n_blocks: int, active_sms: int
                    ) -> tuple[float, float, str]:
        """(SM-pipe seconds, HBM-stream seconds, bound) of ``n_blocks`` resident together."""
        warps = n_blocks * cdiv(kernel.threads, 32)
        fill = min(1.0, warps / self.spec.warps_for_peak)
        if kernel.tensor:
            matrix_s = work.tensor_flops / (self.tensor_rate_sm(kernel.dtype) * fill)
            alu_s = work.cuda_flops / (self.cuda_rate_sm("fp32") * fill)
        else:
            matrix_s = work.cuda_flops / (self.cuda_rate_sm(kernel.dtype) * fill)
            alu_s = 0.0
        alu_s += work.sfu_ops / (self.sfu_rate_sm * fill)
        smem_s = work.smem_wavefront_bytes / self.smem_bw_sm
        l2_share = self.spec.l2_bw_bytes_per_s / max(1, min(active_sms, self.spec.sms))
        l2_s = work.l2_bytes / l2_share
        # vector work (softmax between the two GEMMs of attention) overlaps with the
        # other resident blocks' matrix work, not with its own block's
        exposed_alu = alu_s / max(1, n_blocks)
        pipes = {"compute": matrix_s + exposed_alu, "onchip": max(smem_s, l2_s)}
        busy = max(pipes["compute"], pipes["onchip"])
        if kernel.serial_operands:
            # operands loaded right before the MMAs that use them: a warp's own loads and
            # MMAs serialize; other resident warps (per SM partition) hide the rest
            hidden = max(0.0, 1.0 - 4.0 / max(warps, 1))
            busy += (1.0 - hidden) * min(pipes["compute"], pipes["onchip"])
        fill_latency = self.dram_latency_s if (work.hbm_read or work.l2_bytes) else 0.0
        sm_s = busy + fill_latency
        hbm_s = (work.hbm_read + work.hbm_write) / self.stream_bw
        # the bound: the SMs running together share the HBM pool, so this group's
        # share of the aggregate bandwidth decides it, not one stream's rate
        share = self.spec.hbm_bw_bytes_per_s / max(1, min(active_sms, self.spec.sms))
        hbm_shared_s = (work.hbm_read + work.hbm_write) / share
        if max(hbm_s, hbm_shared_s) >= busy:
            bound = "memory"
        elif busy <= fill_latency:
            bound = "latency"
        else:
            bound = "compute" if pipes["compute"] >= pipes["onchip"] else "onchip"
        return sm_s, hbm_s, bound

    # ------------------------------------------------------------ schedule
    def assign(self, kernel: Kernel, occ: int) -> list[list[int]]:
        """Block classes per SM, in the order each SM runs them (greedy, like the
        hardware's block scheduler: each block to the slot that frees first)."""
        sms = self.spec.sms
        per_sm: list[list[int]] = [[] for _ in range(sms)]
        if len(kernel.blocks) == 1:
            count = kernel.blocks[0][0]
            base, extra = divmod(count, sms)
            for i in range(sms):
                per_sm[i] = [0] * (base + (1 if i < extra else 0))
            return per_sm
        est = []
        for _, w in kernel.blocks:
            sm_s, hbm_s, _ = self.group_times(kernel, w, 1, sms)
            est.append(max(sm_s, hbm_s * sms / self.hbm_streams / max(occ, 1)))
        heap = [(0.0, i, slot) for slot in range(occ) for i in range(sms)]
        heapq.heapify(heap)
        for cls, (count, _) in enumerate(kernel.blocks):
            d = est[cls]
            for _ in range(count):
                t, sm, slot = heapq.heappop(heap)
                per_sm[sm].append(cls)
                heapq.heappush(heap, (t + d, sm, slot))
        return per_sm


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
    notes: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Builder:
    """Turns kernels into tasks, one kernel after another."""

    def __init__(self, gpu: Gpu, energy: "callable", label: str):
        self.gpu = gpu
        self.energy = energy  # (kernel, work) -> actions
        self.label = label
        self.tasks: list[Task] = []
        self.reports: list[KernelReport] = []
        self._last: tuple[int, ...] = ()

    def add(self, task: Task) -> int:
        self.tasks.append(task)
        return len(self.tasks) - 1

    def launch(self, name: str, deps=()) -> int:
        spec = self.gpu.spec
        return self.add(Task("stream", spec.kernel_launch_s, deps=tuple(deps), bound="latency",
                             label=f"{self.label}: launch {name}"))

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
        start = self.launch(k.name, self._last)
        ends: list[int] = []
        bounds: dict[str, float] = {}
        est = 0.0
        if grid:
            active = min(spec.sms, grid)
            tag = f"{self.label}: {k.name} {k.tile} occ={per} ({occ.limiter}) waves={waves:.2f}"
            plan = []  # per SM: chunks of (sm_s, hbm_s, work, blocks, bound-times)
            for runs in self._groups(k, per):
                chunks = []
                for reps, w, n in runs:
                    sm_s, hbm_s, bound = gpu.group_times(k, w, n, active)
                    for r in _split(reps):
                        chunks.append((sm_s * r, hbm_s * r, w.scaled(r), n * r,
                                       {bound: max(sm_s, hbm_s) * r}))
                plan.append(_merge(chunks))
            n_mem = sum(1 for chunks in plan for c in chunks if c[1] > 0)
            pieces = max(1, -(-32 * gpu.hbm_streams // max(1, n_mem))) if n_mem else 1
            for sm, chunks in enumerate(plan):
                deps = (start,)
                sm_total = 0.0
                for sm_s, hbm_s, w, nblocks, by in chunks:
                    for b, t in by.items():
                        bounds[b] = bounds.get(b, 0.0) + t
                    bound = max(by, key=by.get)
                    a = self.add(Task(f"sm{sm}", sm_s, {"l2_read": int(w.l2_bytes)},
                                      self.energy(k, w), deps, bound, "", f"{tag} x{nblocks}"))
                    last = a
                    if hbm_s > 0:
                        nb = {"dram_read": int(w.hbm_read), "dram_write": int(w.hbm_write)}
                        for i in range(pieces):
                            last = self.add(Task(
                                f"sm{sm}.mem", hbm_s / pieces, nb if i == 0 else {}, {},
                                deps, "memory", HBM_POOL, f"{tag} HBM"))
                    deps = (a, last) if last != a else (a,)
                    sm_total += max(sm_s, hbm_s)
                if chunks:
                    ends.extend(deps)
                est = max(est, sm_total)
        if k.pcie_bytes:
            ends.extend(self.pcie(k.pcie_bytes, (start,), k.name))
        if not ends:
            ends = [start]
        self._last = tuple(ends)
        bound = k.bound_hint or (max(bounds, key=bounds.get) if bounds else "latency")
        total = k.total()
        hbm_floor = (total.hbm_read + total.hbm_write) / spec.hbm_bw_bytes_per_s
        pcie_s = k.pcie_bytes / spec.pcie_bw_bytes_per_s
        est = max(est, hbm_floor, pcie_s)
        if k.pcie_bytes and pcie_s >= est:
            bound = "interconnect"
        rep = KernelReport(k.name, grid, k.tile, k.threads, k.regs, k.smem, per, occ.limiter,
                           round(waves, 3), bound, est + spec.kernel_launch_s, dict(k.notes))
        self.reports.append(rep)
        return rep

    def _groups(self, k: Kernel, per: int) -> list[list[tuple[int, Work, int]]]:
        """Per SM, runs of identical groups: (repetitions, work of one group, blocks)."""
        sms = self.gpu.spec.sms
        out: list[list[tuple[int, Work, int]]] = []
        if len(k.blocks) == 1:
            count, w = k.blocks[0]
            base, extra = divmod(count, sms)
            for i in range(sms):
                c = base + (1 if i < extra else 0)
                full, rest = divmod(c, per)
                runs = []
                if full:
                    runs.append((full, w.scaled(per), per))
                if rest:
                    runs.append((1, w.scaled(rest), rest))
                out.append(runs)
            return out
        works = [w for _, w in k.blocks]
        for classes in self.gpu.assign(k, per):
            runs = []
            for g0 in range(0, len(classes), per):
                members = classes[g0:g0 + per]
                w = Work()
                for c in members:
                    w.add(works[c])
                runs.append((1, w, len(members)))
            out.append(runs)
        return out

    def pcie(self, nbytes: float, deps, name: str, chunks: int = 8) -> list[int]:
        """Host transfers in chunks on the ``pcie`` lane (overlapping the SMs)."""
        spec = self.gpu.spec
        out = []
        prev = tuple(deps)
        part = nbytes / chunks
        step_s = spec.pcie_latency_s / chunks + part / spec.pcie_bw_bytes_per_s
        for i in range(chunks):
            t = self.add(Task("pcie", step_s,
                              {"pcie": int(part)}, {"pcie_byte": part}, prev, "interconnect",
                              label=f"{self.label}: {name} host KV {i + 1}/{chunks}"))
            prev = (t,)
            out.append(t)
        return out[-1:]


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
            w.add(c[2])
            for b, t in c[4].items():
                by[b] = by.get(b, 0.0) + t
        out.append((sum(c[0] for c in part), sum(c[1] for c in part), w,
                    sum(c[3] for c in part), by))
    return out + [last]
