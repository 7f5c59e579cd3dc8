"""The physics a report must obey, as checks that return what they found wrong.

Used by tests/test_invariants.py (random workloads on every target and preset)
and by regression tests. Each function returns a list of violations, one line
each, so a failing test prints all of them at once.

What holds (issue 11):

- an op's executed FLOPs over its latency stay under the machine's peak for the
  op's data type (its fastest unit: :meth:`Target.peak_flops_per_s`);
- an op's DRAM bytes over its latency stay under the datasheet DRAM bandwidth;
- an op moves at least its compulsory bytes (each input read once, each output
  written once: :func:`hwsim.ir.kinds.read_bytes`), unless the target says in
  the op's ``detail`` that the tensor stays on chip (``resident``) or moves
  compressed (``quantized``); with tensors carried between ops in the cache
  (:mod:`hwsim.onchip`, the report's ``onchip``), the inputs the plan puts on
  chip and the outputs it keeps there are not compulsory (the plan is made anew
  here from the graph and the target, and the report's per-op savings must be
  that plan's);
- work takes time: an op with FLOPs or bytes has a positive latency;
- no op draws more than the board's power limit (:meth:`Target.power_limit_w`):
  its energy over its time on the device, waits for the host included, stays
  under the board power or TDP (issue 13's power cap);
- the energy breakdown sums to the total.
"""

from __future__ import annotations

import math

from hwsim import onchip
from hwsim.ir.dtypes import dtype_bits

REL = 1e-6  # float round-off of rates computed from rounded byte counts
ON_CHIP_WORDS = ("resident", "on chip", "quantized")


def compute_dtype(op, graph) -> str:
    """The type an op computes in: its first floating-point input (else output)."""
    t = graph.tensors
    for tid in (*op.inputs, *op.outputs):
        dt = t[tid].dtype
        if dt.startswith(("fp", "bf", "tf")):
            return dt
    return t[op.outputs[0]].dtype if op.outputs else "fp32"


def peak_for(report, op) -> float:
    tgt, spec = report.target.target, report.target.spec
    peak = tgt.peak_flops_per_s(spec, compute_dtype(op, report.graph))
    if not peak:  # integer bookkeeping or a type the units widen: the fastest unit bounds it
        peak = max(tgt.peak_flops_per_s(spec, dt) for dt in ("fp16", "fp32", "int8"))
    return peak


def op_violations(report) -> list[str]:
    """Per-op physics of one report."""
    tgt, spec = report.target.target, report.target.spec
    bw = tgt.peak_dram_bw_bytes_per_s(spec)
    limit_w = tgt.power_limit_w(spec)  # an op row is one device's
    graph = report.graph
    out = []
    detail = report.ops["detail"] if "detail" in report.ops else None
    carries = [onchip.NONE] * len(graph.ops)
    if getattr(report, "onchip", None) is not None:
        carries = onchip.plan(graph, tgt.onchip_capacity_bytes(spec), tgt.carries).carries
    for i, (op, row) in enumerate(zip(graph.ops, report.ops.itertuples(index=False))):
        assert row.id == op.id
        where = f"{report.target.preset}: op {op.id} {op.kind} {op.name!r}"
        lat = float(row.latency_s)
        nbytes = int(row.dram_read_bytes) + int(row.dram_write_bytes)
        if not math.isfinite(lat) or lat < 0:
            out.append(f"{where}: latency {lat}")
            continue
        if op.kind == "view":
            continue
        if lat == 0:
            if row.executed_flops or nbytes:
                out.append(f"{where}: {row.executed_flops} FLOP and {nbytes} B in 0 s")
            continue
        # (the device also idles, drawing static power, for the host and for the op's
        # pieces on other streams that compute does not cover: an offloaded attention's
        # copies)
        busy = lat + float(getattr(row, "host_wait_s", 0.0) or 0.0) \
            + float(getattr(row, "stream_wait_s", 0.0) or 0.0)
        if limit_w and row.energy_j / busy > limit_w * (1 + REL):
            out.append(f"{where}: draws {row.energy_j / busy:.4g} W, above the board's "
                       f"{limit_w:.4g} W")
        peak = peak_for(report, op)
        rate = row.executed_flops / lat
        if rate > peak * (1 + REL):
            out.append(f"{where}: {rate / 1e12:.4g} TFLOP/s executed above the peak "
                       f"{peak / 1e12:.4g}")
        if (row.executed_flops > row.flops * (1 + REL) and op.kind == "attention"
                and not op.attrs.get("lsb_bits")):  # re-fetched rows are scored again
            out.append(f"{where}: executes {row.executed_flops} of {row.flops} counted FLOPs")
        if nbytes / lat > bw * (1 + REL):
            out.append(f"{where}: {nbytes / lat / 1e9:.4g} GB/s of DRAM above the peak "
                       f"{bw / 1e9:.4g}")
        if op.kind == "allreduce":
            continue
        why = str(detail.iloc[i]) if detail is not None else ""
        if any(w in why for w in ON_CHIP_WORDS):
            continue
        runs = int(getattr(row, "count", 1))  # a repeated op's row is all its runs
        carry = carries[i]
        saved = (onchip.onchip_read_bytes(op, graph, carry),
                 onchip.kept_write_bytes(op, graph, carry))
        if carry and (int(row.onchip_read_saved_bytes),
                      int(row.onchip_write_saved_bytes)) != saved:
            out.append(f"{where}: reports {row.onchip_read_saved_bytes} B read and "
                       f"{row.onchip_write_saved_bytes} B written saved on chip, not its plan's")
        need_r = onchip.compulsory_read_bytes(op, graph, carry) * runs
        need_w = onchip.compulsory_write_bytes(op, graph, carry) * runs
        if row.dram_read_bytes < need_r * (1 - REL) - 64:
            out.append(f"{where}: reads {row.dram_read_bytes} B of DRAM, fewer than the "
                       f"{need_r} B its inputs hold, and detail says nothing on chip: {why!r}")
        if row.dram_write_bytes < need_w * (1 - REL) - 64:
            out.append(f"{where}: writes {row.dram_write_bytes} B of DRAM, fewer than the "
                       f"{need_w} B of its outputs, and detail says nothing on chip: {why!r}")
    return out


def total_violations(report) -> list[str]:
    t = report.totals
    out = []
    parts = sum(t["energy_breakdown_j"].values())
    if not math.isclose(parts, t["energy_j"], rel_tol=1e-9, abs_tol=1e-18):
        out.append(f"{report.target.preset}: energy breakdown sums to {parts}, total "
                   f"{t['energy_j']}")
    if t["executed_flops"] > t["flops"] * (1 + REL) + 1:
        out.append(f"{report.target.preset}: executed {t['executed_flops']} > counted "
                   f"{t['flops']} FLOPs")
    mem = report.memory
    if mem and mem.get("capacity_bytes") and mem["total_bytes"] > mem["capacity_bytes"]:
        out.append(f"{report.target.preset}: holds {mem['total_bytes']} B of "
                   f"{mem['capacity_bytes']}")
    return out


def violations(report) -> list[str]:
    return op_violations(report) + total_violations(report)


def element_bytes(dtype: str) -> float:
    return dtype_bits(dtype) / 8
