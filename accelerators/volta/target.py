"""The Volta target: ops to kernels, kernels to tasks, pools, energy, headline."""

from __future__ import annotations

from pathlib import Path

from hwsim.collectives import ring_allreduce
from hwsim.energy import EnergyTable
from hwsim.engine import Task
from hwsim.errors import UnsupportedOpError
from hwsim.ir.kinds import read_bytes, write_bytes
from hwsim.targets import Target

from . import attention, memops
from .energy import actions, energy_table
from .gemm import Gemm
from .gemm import kernels as gemm_kernels
from .gpu import HBM_POOL, Builder, Gpu, Kernel
from .memory import volta_footprint
from .spec import VoltaSpec

MEMORY_KINDS = ("softmax", "layernorm", "rmsnorm", "elementwise", "reduce", "rope", "topk",
                "gather", "embedding", "concat", "kv_write")


class VoltaTarget(Target):
    name = "volta"
    description = ("NVIDIA Volta (V100): kernels of thread blocks on 80 SMs, occupancy and "
                   "waves, tensor cores (m8n8k4), shared-memory banks, L2, HBM2, PCIe, NVLink")
    spec_class = VoltaSpec
    default_preset = "volta-v100-sxm2"
    presets_dir = Path(__file__).parent / "presets"
    capacity_field = "hbm_bytes"
    memory_name = "HBM"

    def __init__(self):
        self._gpu: tuple[VoltaSpec, Gpu] | None = None

    def gpu(self, spec: VoltaSpec) -> Gpu:
        if self._gpu is None or self._gpu[0] is not spec:
            self._gpu = (spec, Gpu(spec))
        return self._gpu[1]

    def pools(self, spec: VoltaSpec) -> dict[str, int]:
        return {HBM_POOL: self.gpu(spec).hbm_streams}

    # ------------------------------------------------------------ lowering
    def kernels_of(self, op, graph, spec: VoltaSpec, tiling=None) -> list[Kernel]:
        """The kernels ``op`` runs as (no tasks)."""
        gpu = self.gpu(spec)
        kind = op.kind
        if kind == "matmul":
            return gemm_kernels(gpu, self._gemm(op, graph))
        if kind == "attention":
            strategy = attention.choose(getattr(tiling, "attention", "auto"),
                                        op.attrs["q_len"], op.attrs["kv_len"])
            return attention.lower(gpu, op, graph, strategy, getattr(tiling, "block_q", 0),
                                   getattr(tiling, "block_kv", 0), spec.host_kv_fraction)
        if kind in MEMORY_KINDS:
            return memops.lower(op, graph)
        raise UnsupportedOpError(self.name, kind, op.line(graph))

    def lower(self, op, graph, spec: VoltaSpec, tiling=None) -> list[Task]:
        if op.kind == "view":
            return []
        if op.kind == "allreduce":
            return [self._allreduce(op, graph, spec)]
        bld = self._build(op, graph, spec, tiling)
        return bld.tasks

    def kernels(self, op, graph, spec: VoltaSpec, tiling=None) -> list[dict]:
        """Per-kernel report of ``op``: grid, block tile, occupancy and its limiter,
        waves, bound, the selector's time estimate, and notes (split-K, bank conflicts)."""
        if op.kind in ("view", "allreduce"):
            return []
        return [r.to_dict() for r in self._build(op, graph, spec, tiling).reports]

    def describe(self, op, graph, spec: VoltaSpec, tiling=None) -> str:
        """Per kernel: name, block tile, grid, occupancy and its limiter, waves, bound."""
        return "; ".join(
            f"{k['name'].rsplit(':', 1)[-1]} {k['block_tile']} grid {k['grid']} "
            f"occ {k['occupancy']} ({k['limiter']}) {k['waves']:g} waves {k['bound']}"
            for k in self.kernels(op, graph, spec, tiling))

    def _build(self, op, graph, spec, tiling) -> Builder:
        bld = Builder(self.gpu(spec), actions, op.name or op.kind)
        for k in self.kernels_of(op, graph, spec, tiling):
            bld.kernel(k)
        return bld

    def footprint(self, graph, spec: VoltaSpec, tiling):
        return volta_footprint(graph, spec, tiling)

    def capacity_hint(self, spec: VoltaSpec) -> str:
        return ("; keep part of the KV cache in host memory with "
                "--set target.host_kv_fraction=F" if spec.host_kv_fraction < 1 else "")

    def _gemm(self, op, graph) -> Gemm:
        a = op.attrs
        t = graph.tensors
        ta, tb = t[op.inputs[0]], t[op.inputs[1]]
        batch, m, n, k = a["batch"], a["m"], a["n"], a["k"]
        return Gemm(batch, m, n, k, ta.dtype, t[op.outputs[0]].dtype,
                    a_shared=batch > 1 and ta.numel == m * k,
                    b_shared=batch > 1 and tb.numel == k * n, name=op.name or "matmul")

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
        per_clock = max(spec.tensor_flops_per_clock_per_sm.get(dtype, 0.0),
                        spec.cuda_flops_per_clock_per_sm.get(dtype, 0.0))
        return per_clock * spec.sms * spec.clock_hz

    def peak_dram_bw_bytes_per_s(self, spec: VoltaSpec) -> float:
        return float(spec.hbm_peak_bw_bytes_per_s)

    # ------------------------------------------------------------ energy, headline
    def energy_table(self, spec: VoltaSpec) -> EnergyTable:
        return energy_table(spec)

    def headline(self, spec: VoltaSpec) -> str:
        fp16 = spec.tensor_flops_per_clock_per_sm.get("fp16", 0) * spec.sms * spec.clock_hz
        fp32 = spec.cuda_flops_per_clock_per_sm.get("fp32", 0) * spec.sms * spec.clock_hz
        return (f"{spec.sms} SMs at {spec.clock_hz / 1e9:.2f} GHz; fp16 tensor "
                f"{fp16 / 1e12:.0f} TFLOP/s, fp32 {fp32 / 1e12:.1f}; HBM2 "
                f"{spec.hbm_peak_bw_bytes_per_s / 1e9:.0f} GB/s peak "
                f"({spec.hbm_bw_bytes_per_s / 1e9:.0f} achievable), "
                f"{spec.hbm_bytes / 1e9:.0f} GB; L2 {spec.l2_bytes / 2**20:.0f} MiB")


TARGET = VoltaTarget()
