"""The Volta target: ops to kernels, kernels to tasks, energy, peaks, headline.

An op is lowered once per (op, graph, spec, tiling): ``lower`` (the tasks),
``kernels``/``describe`` (the report) and ``executed_flops`` share that build.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hwsim.collectives import ring_allreduce
from hwsim.energy import EnergyTable
from hwsim.engine import Accumulator, Task
from hwsim.errors import UnsupportedOpError
from hwsim.ir.kinds import executed_flops as counted_executed_flops
from hwsim.ir.kinds import read_bytes, write_bytes
from hwsim.onchip import NONE, Carry
from hwsim.targets import Target

from . import attention, memops
from .dtypes import DATAPATH
from .energy import actions, energy_table
from .gemm import Gemm
from .gemm import kernels as gemm_kernels
from .gpu import Builder, Gpu, Kernel
from .memory import volta_footprint
from .spec import VoltaSpec

SUMMED_CLASSES = 16  # block classes up to which an op's analytical build is kept by its kernels
MEMORY_KINDS = ("softmax", "layernorm", "rmsnorm", "elementwise", "reduce", "rope", "topk",
                "gather", "embedding", "concat", "kv_write")


class VoltaTarget(Target):
    name = "volta"
    description = ("NVIDIA Volta (V100): kernels of thread blocks on 80 SMs, occupancy and "
                   "waves, tensor cores (m8n8k4), shared-memory banks, L2, HBM2, PCIe, NVLink")
    spec_class = VoltaSpec
    default_preset = "volta-v100-sxm2"
    presets_dir = Path(__file__).parent / "presets"
    memory_name = "HBM"

    def __init__(self):
        self._gpu: tuple[VoltaSpec, Gpu] | None = None
        self._built: list[tuple[tuple, tuple, Builder]] = []  # (key, objects kept alive, build)
        self._tiling_repr: tuple | None = None  # (tiling, its repr): the builds' key part
        # SMs with the same work emitted as one group (gpu.Builder); False: one lane per
        # SM, the reference the tests hold the groups to
        self.grouping = True

    def gpu(self, spec: VoltaSpec) -> Gpu:
        if self._gpu is None or (self._gpu[0] is not spec and self._gpu[0] != spec):
            self._gpu = (spec, Gpu(spec))
        return self._gpu[1]

    def queued_launch_s(self, spec: VoltaSpec) -> float:
        """Every op's device time starts with its first kernel's launch
        (``kernel_launch_s``, a task on the ``stream`` lane). When the host enqueued
        the op while the previous one still ran, the command processor takes the
        launch in while that kernel runs, and the new kernel starts ``kernel_gap_s``
        after it ends: the rest of the launch is hidden (hwsim.runtime.schedule)."""
        return max(0.0, spec.kernel_launch_s - spec.kernel_gap_s)

    # ------------------------------------------------------------ lowering
    def kernels_of(self, op, graph, spec: VoltaSpec, tiling=None,
                   carry: Carry = NONE) -> list[Kernel]:
        """The kernels ``op`` runs as (no tasks); ``carry``: what it finds in or leaves
        in the L2 (:mod:`hwsim.onchip`)."""
        gpu = self.gpu(spec)
        kind = op.kind
        if kind == "matmul":
            return gemm_kernels(gpu, self._gemm(op, graph, carry))
        if kind == "attention":
            return attention.lower(gpu, op, graph, self._strategy(op, tiling),
                                   getattr(tiling, "block_q", 0),
                                   getattr(tiling, "block_kv", 0), spec.host_kv_fraction)
        if kind in MEMORY_KINDS:
            return memops.lower(op, graph, carry)
        raise UnsupportedOpError(self.name, kind, op.line(graph))

    def lower(self, op, graph, spec: VoltaSpec, tiling=None) -> list[Task]:
        if op.kind == "view":
            return []
        if op.kind == "allreduce":
            return [self._allreduce(op, graph, spec)]
        bld = self._build(op, graph, spec, tiling)
        return bld.tasks

    # ------------------------------------------------------------ on-chip state
    def onchip_capacity_bytes(self, spec: VoltaSpec) -> float:
        """Half the L2 carries tensors between kernels; the other half is the next
        kernel's own (the half the GEMM's operand reuse counts on, :mod:`.gemm`)."""
        return spec.l2_bytes / 2

    def carries(self, op) -> bool:
        """GEMMs and the streaming kernels that read each input whole
        (:data:`.memops.CARRY_KINDS`); attention and the others read from HBM."""
        return op.kind == "matmul" or op.kind in memops.CARRY_KINDS

    def lower_carried(self, op, graph, spec: VoltaSpec, tiling, carry: Carry) -> list[Task]:
        if not carry:
            return self.lower(op, graph, spec, tiling)
        if not self.carries(op):
            raise ValueError(f"volta does not carry the inputs of a {op.kind} op on chip")
        return self._build(op, graph, spec, tiling, carry).tasks

    def lower_summary(self, op, graph, spec: VoltaSpec, tiling=None, carry=None):
        """The analytical fidelity's summary of :meth:`lower`'s tasks (:meth:`lower_carried`'s
        with a ``carry``), handed to an :class:`~hwsim.engine.Accumulator` as the builder
        finds them, none made and no label formatted (the same floats: a test holds the
        two equal on every op kind, with and without a carry). The build's kernel reports
        are kept for :meth:`describe`, as :meth:`lower`'s are."""
        if op.kind in ("view", "allreduce"):
            return super().lower_summary(op, graph, spec, tiling, carry)
        carry = carry or NONE
        if carry and not self.carries(op):
            raise ValueError(f"volta does not carry the inputs of a {op.kind} op on chip")
        acc = self._build(op, graph, spec, tiling, carry, need="summary").sink
        return acc.summary(self.pools(spec)), acc.count

    def kernels(self, op, graph, spec: VoltaSpec, tiling=None,
                carry: Carry = NONE) -> list[dict]:
        """Per-kernel report of ``op``: grid, block tile, occupancy and its limiter,
        waves, bound, the selector's time estimate, and notes (split-K, bank conflicts).
        ``carry``: what it finds in or leaves in the L2 (the selector may pick another
        tile for it)."""
        if op.kind in ("view", "allreduce"):
            return []
        return [r.to_dict() for r in self._build(op, graph, spec, tiling, carry,
                                                 need="reports").reports]

    def describe(self, op, graph, spec: VoltaSpec, tiling=None, carry: Carry = NONE) -> str:
        """Per kernel: name, block tile, grid, occupancy and its limiter, waves, bound,
        and what the kernel adds (GQA packing, split-KV, key blocks, partials in L2)."""
        if op.kind in ("view", "allreduce"):
            return ""
        # (the build's reports as they are, not kernels()' copies)
        return "; ".join([
            f"{r.name.rsplit(':', 1)[-1]} {r.block_tile} grid {r.grid} "
            f"occ {r.occupancy} ({r.limiter}) {r.waves:g} waves {r.bound}"
            + (f" [{r.detail}]" if r.detail else "")
            for r in self._build(op, graph, spec, tiling, carry, need="reports").reports])

    def executed_flops(self, op, graph, spec: VoltaSpec, tiling=None) -> int:
        """What the kernels compute: an attention's visited tiles, whole
        (:func:`.attention.executed_flops`); other ops their counted FLOPs."""
        if op.kind == "attention":
            return attention.executed_flops(self.gpu(spec), op, graph, self._strategy(op, tiling),
                                            getattr(tiling, "block_q", 0),
                                            getattr(tiling, "block_kv", 0))
        return counted_executed_flops(op)

    @staticmethod
    def _strategy(op, tiling) -> str:
        return attention.choose(getattr(tiling, "attention", "auto"), op.attrs["q_len"],
                                op.attrs["kv_len"])

    def _build(self, op, graph, spec, tiling, carry: Carry = NONE, *,
               need: str = "tasks") -> Builder:
        """The build of ``op``'s kernels, kept for the next few asks (the lowering and the
        report ask for the same op). ``need``: ``tasks`` (made), ``summary`` (their sums
        in an :class:`~hwsim.engine.Accumulator`, ``Builder.sink``, no task made) or
        ``reports`` (the kernel reports, which either build has). A summary build is
        also kept on the GPU by its kernels without their names (:meth:`_summed_key`):
        another op whose kernels are the same but for their names takes its sums (a
        test holds them to the op's own build)."""
        kept = self._tiling_repr  # (a frozen tiling's repr, kept while it is the one asked)
        if kept is None or kept[0] is not tiling:
            kept = self._tiling_repr = (tiling, repr(tiling))
        key = (id(op), id(graph), id(spec), kept[1], self.grouping, carry)
        for k, _, bld in self._built:
            if k == key and (need == "reports" or (bld.sink is not None) == (need == "summary")):
                return bld
        gpu = self.gpu(spec)
        ks = self.kernels_of(op, graph, spec, tiling, carry)
        # an analytical build of the same kernels but for their names: its sums
        summed = self._summed_key(ks) if need == "summary" else None
        kept = gpu.__dict__.setdefault("_summed", {}) if summed is not None else None
        bld = self._renamed(gpu, kept.get(summed), ks) if summed is not None else None
        if bld is None:
            bld = Builder(gpu, actions, op.name or op.kind, grouping=self.grouping,
                          sink=Accumulator() if need == "summary" else None)
            for k in ks:
                bld.kernel(k)
            if summed is not None:
                if len(kept) >= self.SUMMED_KEPT:  # (a long run: start afresh)
                    kept.clear()
                kept[summed] = bld
        # the objects stay referenced while cached, so their ids cannot be reused
        self._built = [(key, (op, graph, spec, tiling), bld)] + self._built[:3]
        return bld

    SUMMED_KEPT = 256  # analytical builds kept per GPU by their kernels (_summed_key)

    def _summed_key(self, ks: list[Kernel]) -> tuple | None:
        """What the sink's sums of ``ks`` depend on: every field of each kernel but the
        names, details and notes (which only the labels and the reports read), with its
        blocks' counts; ``None`` for a kernel of many classes (a causal attention's
        tiles), whose key would cost more than it saves."""
        out = [self.grouping]
        for k in ks:
            if len(k.blocks) > SUMMED_CLASSES:
                return None
            out.append((k.tile, k.threads, k.regs, k.smem, k.dtype, k.tensor, k.bound_hint,
                        k.pcie_bytes, k.serial_operands, k.inflight_bytes_per_thread,
                        k.loop_efficiency, k.exposed_trips_per_flop,
                        tuple([(c, w.key()) for c, w in k.blocks])))
        return tuple(out)

    def _renamed(self, gpu: Gpu, got: Builder | None, ks: list[Kernel]) -> Builder | None:
        """``got``, an analytical build of kernels equal to ``ks`` but for their names
        (an op's K and V cache writes, a q and an o projection of one shape), for
        ``ks``: its sums (the same calls, so the same floats), its kernel reports
        under ``ks``' names, details and notes; ``None`` for none."""
        if got is None:
            return None
        bld = Builder(gpu, actions, "", grouping=self.grouping, sink=got.sink)
        bld.reports = [r.renamed(k.name, k.detail, dict(k.notes))
                       for r, k in zip(got.reports, ks)]
        return bld

    def footprint(self, graph, spec: VoltaSpec, tiling):
        return volta_footprint(graph, spec, tiling)

    def capacity_hint(self, spec: VoltaSpec) -> str:
        return ("; keep part of the KV cache in host memory with "
                "--set target.host_kv_fraction=F" if spec.host_kv_fraction < 1 else "")

    def _gemm(self, op, graph, carry: Carry = NONE) -> Gemm:
        a = op.attrs
        t = graph.tensors
        ta, tb = t[op.inputs[0]], t[op.inputs[1]]
        held = set(carry.inputs)
        batch, m, n, k = a["batch"], a["m"], a["n"], a["k"]
        return Gemm(batch, m, n, k, ta.dtype, t[op.outputs[0]].dtype,
                    a_shared=batch > 1 and ta.numel == m * k,
                    b_shared=batch > 1 and tb.numel == k * n, name=op.name or "matmul",
                    b_dtype=tb.dtype if tb.dtype != ta.dtype else "",
                    extra_read=float(sum(graph.stored_bytes(i)
                                         for p, i in enumerate(op.inputs) if p >= 2
                                         and p not in held)),
                    trans_a=bool(a.get("trans_a", False)), trans_b=bool(a.get("trans_b", False)),
                    a_onchip=0 in held, b_onchip=1 in held, out_onchip=0 in carry.outputs)

    def host_kv_fraction(self, spec: VoltaSpec) -> float:
        return float(spec.host_kv_fraction)

    def without_host_kv(self, spec: VoltaSpec) -> VoltaSpec:
        return replace(spec, host_kv_fraction=0.0) if spec.host_kv_fraction else spec

    def transfer(self, nbytes: float, direction: str, spec: VoltaSpec) -> list[Task]:
        """One host transfer over PCIe (a ``cudaMemcpyAsync`` on the copy engine):
        the link's latency, then the bytes at the achievable pinned bandwidth."""
        return [Task("pcie", spec.pcie_latency_s + nbytes / spec.pcie_bw_bytes_per_s,
                     {"pcie": int(nbytes)}, {"pcie_byte": nbytes}, (), "interconnect",
                     label=f"{direction} copy over PCIe")]

    def _allreduce(self, op, graph, spec: VoltaSpec) -> Task:
        """Ring all-reduce: 2(N-1) steps, each sending 1/N of the tensor per GPU."""
        n = op.attrs["devices"]
        ring = ring_allreduce(graph.tensors[op.inputs[0]].bytes, n, spec.link_bw_bytes_per_s,
                              spec.link_latency_s)
        sent = ring.sent_bytes
        time_s = ring.time_s + spec.kernel_launch_s
        rd, wr = read_bytes(op, graph), write_bytes(op, graph)
        return Task("nvlink", time_s, {"dram_read": rd, "dram_write": wr, "link": int(sent)},
                    {"link_byte": sent, "hbm_byte": rd + wr, "l2_byte": rd + wr}, (),
                    "interconnect", label=f"{op.name or 'allreduce'}: ring over {n} GPUs")

    def peak_flops_per_s(self, spec: VoltaSpec, dtype: str) -> float:
        """The fastest unit for ``dtype``: tensor cores for fp16, the CUDA cores for the
        types sm_70 computes there (bf16 and tf32 in fp32, int8 on dp4a), 0 for none."""
        compute, _ = DATAPATH.get(dtype, (dtype, False))
        per_clock = max(spec.tensor_flops_per_cycle_per_sm.get(compute, 0.0),
                        spec.cuda_flops_per_cycle_per_sm.get(compute, 0.0))
        return per_clock * spec.sms * spec.clock_hz

    def peak_dram_bw_bytes_per_s(self, spec: VoltaSpec) -> float:
        return float(spec.dram_peak_bw_bytes_per_s)

    # ------------------------------------------------------------ energy, headline
    def energy_table(self, spec: VoltaSpec) -> EnergyTable:
        return energy_table(spec)

    def headline(self, spec: VoltaSpec) -> str:
        fp16 = spec.tensor_flops_per_cycle_per_sm.get("fp16", 0) * spec.sms * spec.clock_hz
        fp32 = spec.cuda_flops_per_cycle_per_sm.get("fp32", 0) * spec.sms * spec.clock_hz
        return (f"{spec.sms} SMs at {spec.clock_hz / 1e9:.2f} GHz; fp16 tensor "
                f"{fp16 / 1e12:.0f} TFLOP/s, fp32 {fp32 / 1e12:.1f}; HBM2 "
                f"{spec.dram_peak_bw_bytes_per_s / 1e9:.0f} GB/s peak "
                f"({spec.dram_bw_bytes_per_s / 1e9:.0f} achievable), "
                f"{spec.dram_bytes / 1e9:.0f} GB; L2 {spec.l2_bytes / 2**20:.0f} MiB")


TARGET = VoltaTarget()
