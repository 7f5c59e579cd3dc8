"""Roofline spec, lowering and energy table (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hwsim.collectives import ring_allreduce
from hwsim.energy import EnergyTable, Price
from hwsim.engine import Task
from hwsim.errors import InputError
from hwsim.ir.kinds import KINDS, executed_flops, read_bytes, write_bytes
from hwsim.spec import spec_field
from hwsim.targets import Target

# Which peak an op of a given dtype runs at: integer and boolean bookkeeping runs
# at the int32 rate; every float type needs its own entry (no silent fallback).
_DTYPE_CLASS = {"int64": "int32", "int16": "int32", "uint8": "int32", "bool": "int32"}


@dataclass(frozen=True)
class RooflineSpec:
    """A roofline machine: peak arithmetic per data type and one DRAM bandwidth (each
    field's ``help`` says what it is)."""

    peak_flops_per_s: dict[str, float] = spec_field(
        help="peak arithmetic rate per data type (fp16, bf16, fp32, int8, int32, ...)")
    dram_bw_bytes_per_s: float = spec_field(help="DRAM bandwidth", minimum=1.0)  # divides
    kernel_launch_s: float = spec_field(
        0.0, help="launch cost: the device's side of an op's launch, one kernel each, paid "
                  "whole by an op the device meets unqueued (the first; behind a host, one "
                  "issued after the op before ended); the host's call is in the host lane")
    kernel_gap_s: float = spec_field(
        0.0, help="gap the device keeps between two queued kernels: an op enqueued while "
                  "the op before it ran (without a host, every op after the first: all are "
                  "enqueued at t = 0) takes its launch in behind that op, all but this gap "
                  "(0, the default, hides the whole launch: the loosest bound)")
    host: str = spec_field(
        "none", help="the host that issues the ops (hwsim.runtime): none (the default: an "
                 "ideal host that enqueued every op at t = 0 at no cost, whatever the "
                 "runtime; the roofline is a bound of the device alone), or cuda, cann, "
                 "cpu, for the workload's runtime to put its ops behind that host's lane as "
                 "on the detailed targets", choices=("none", "cuda", "cann", "cpu"))
    dram_pj_per_byte: float = spec_field(0.0, help="DRAM access energy per byte")
    pj_per_flop: dict[str, float] = spec_field(
        {}, help="arithmetic energy per FLOP, per data type")
    static_power_w: float = spec_field(0.0, help="power drawn whenever the machine runs")
    dram_bytes: float = spec_field(0.0, help="DRAM capacity (0: not checked)")
    link_bw_bytes_per_s: float = spec_field(
        0.0, help="per-direction bandwidth a device has for an all-reduce ring (0: no links)")
    link_latency_s: float = spec_field(0.0, help="latency of one ring step")
    link_pj_per_byte: float = spec_field(0.0, help="energy per byte sent over a link")


class RooflineTarget(Target):
    name = "roofline"
    description = "max(compute, memory) per op, from peak FLOP/s and DRAM bandwidth"
    spec_class = RooflineSpec
    default_preset = "roofline-v100"
    presets_dir = Path(__file__).parent / "presets"
    memory_name = "DRAM"

    def host_platform(self, spec: RooflineSpec) -> str:
        """The spec's ``host``: none by default (a bound of the device alone, whatever the
        workload's ``runtime``: no host lane, every op enqueued at t = 0, so each op after
        the first takes its launch in behind the op before, :meth:`queued_launch_s`); a
        real machine's host when the spec names one."""
        return "" if spec.host == "none" else spec.host

    def queued_launch_s(self, spec: RooflineSpec) -> float:
        """An op's launch is a task of its own before its work (:meth:`lower`), so an op
        enqueued while the op before it ran takes the launch in behind that op, all but
        ``kernel_gap_s`` of it, as the V100 and Ascend targets do
        (:func:`hwsim.runtime.schedule`): behind a host, an op its host issued early;
        without one (``host: none``), every op after the first, all enqueued at t = 0
        (:func:`hwsim.simulate.issue_from_host`). Without that the bound would pay a
        whole launch per queued op where the detailed targets pay a gap, and rise above
        them (a graph of small ops behind a CUDA host: 0.68 ms on ``roofline-v100``, 0.58
        on ``volta``; 20 GEMMs of 16^3 without a host: 58.0 us, against 29.5 us on
        ``volta-v100-sxm2`` in a captured graph)."""
        return max(0.0, spec.kernel_launch_s - spec.kernel_gap_s)

    def compute_dtype(self, op, graph) -> str:
        tid = op.inputs[0] if op.kind in ("matmul", "attention") and op.inputs else (
            op.outputs[0] if op.outputs else None)
        dtype = graph.tensors[tid].dtype if tid is not None else "fp32"
        return _DTYPE_CLASS.get(dtype, dtype)

    def lower(self, op, graph, spec: RooflineSpec, tiling=None) -> list[Task]:
        if op.kind not in KINDS:
            from hwsim.errors import UnsupportedOpError
            raise UnsupportedOpError(self.name, op.kind, op.line(graph))
        if op.kind == "allreduce":
            return [self._allreduce(op, graph, spec)]
        n_flops = executed_flops(op)  # an ideal kernel skips every masked score
        rd, wr = read_bytes(op, graph), write_bytes(op, graph)
        compute_s = 0.0
        actions: dict[str, float] = {}
        if n_flops:
            dtype = self.compute_dtype(op, graph)
            peak = spec.peak_flops_per_s.get(dtype)
            if not peak:
                raise InputError(
                    f"no peak_flops_per_s for dtype {dtype!r}, needed by op: {op.line(graph)}",
                    field="spec.peak_flops_per_s")
            compute_s = n_flops / peak
            actions[f"flop_{dtype}"] = n_flops
        memory_s = (rd + wr) / spec.dram_bw_bytes_per_s
        actions["dram_byte"] = rd + wr
        work_s = max(compute_s, memory_s)
        nbytes = {"dram_read": rd, "dram_write": wr}
        if not work_s:
            bound = "latency"
        else:
            bound = "compute" if compute_s >= memory_s else "memory"
        if op.kind == "view" or not spec.kernel_launch_s:  # (a view launches nothing)
            return [Task("chip", work_s, nbytes, actions, (), bound)]
        # the launch (the device's side: enqueue to start) on its own lane, then the
        # work: a launch the host queued early overlaps the op before it
        # (queued_launch_s), the work never does; an op shorter than its launch is
        # bound by it (the stream lane is the busiest)
        return [Task("stream", spec.kernel_launch_s, bound="latency", label="launch"),
                Task("chip", work_s, nbytes, actions, (0,), bound)]

    def peak_flops_per_s(self, spec: RooflineSpec, dtype: str) -> float:
        return float(spec.peak_flops_per_s.get(_DTYPE_CLASS.get(dtype, dtype), 0.0))

    def peak_dram_bw_bytes_per_s(self, spec: RooflineSpec) -> float:
        return float(spec.dram_bw_bytes_per_s)

    def _allreduce(self, op, graph, spec: RooflineSpec) -> Task:
        """Ring all-reduce: 2(N-1) steps, each moving 1/N of the tensor per device."""
        ring = ring_allreduce(graph.tensors[op.inputs[0]].bytes, op.attrs["devices"],
                              spec.link_bw_bytes_per_s, spec.link_latency_s)
        sent = ring.sent_bytes
        rd, wr = read_bytes(op, graph), write_bytes(op, graph)
        return Task("link", ring.time_s + spec.kernel_launch_s,
                    {"dram_read": rd, "dram_write": wr, "link": int(sent)},
                    {"link_byte": sent, "dram_byte": rd + wr}, (), "interconnect")

    def energy_table(self, spec: RooflineSpec) -> EnergyTable:
        prices = {"dram_byte": Price(spec.dram_pj_per_byte, "dram", "preset dram_pj_per_byte"),
                  "link_byte": Price(spec.link_pj_per_byte, "interconnect",
                                     "preset link_pj_per_byte")}
        for dtype in spec.peak_flops_per_s:
            prices[f"flop_{dtype}"] = Price(spec.pj_per_flop.get(dtype, 0.0), "compute",
                                            "preset pj_per_flop")
        return EnergyTable(prices, spec.static_power_w, "preset static_power_w")

    def headline(self, spec: RooflineSpec) -> str:
        peaks = ", ".join(f"{k} {v / 1e12:.1f}" for k, v in spec.peak_flops_per_s.items()
                          if not k.startswith("int"))
        return f"peak TFLOP/s: {peaks}; DRAM {spec.dram_bw_bytes_per_s / 1e9:.0f} GB/s"


TARGET = RooflineTarget()
