"""One workload on several targets: a side-by-side table and one file per output.

``hwsim simulate W --target volta,ascend,armv8`` simulates the workload once per
target. :func:`side_by_side` prints their headline figures in one table, a
column per target (latency, throughput, FLOPs, DRAM bytes, energy, power,
memory; a generation's TTFT, TPOT and per-token figures), with each latency
also as a multiple of the fastest and, when the unpruned run was simulated
too (``--baseline``), the speedup pruning gives on each target. :func:`write_ops_csv` and
:func:`write_steps_csv` write one CSV for all targets, whose first columns
``target`` and ``preset`` say which run a row belongs to, so one
``pandas.read_csv`` and a ``groupby("preset")`` compare them; the Chrome trace
of several reports (:func:`hwsim.report.chrome.write_chrome_trace`) is one file
with a process per target, which Perfetto shows one above the other.
"""

from __future__ import annotations

from typing import Callable, Sequence

from .table import si


def _label(report) -> str:
    return f"{report.target.preset} ({report.target.name})"


def _columns(reports) -> list[str]:
    """A column heading per report: its preset, and its target where that differs."""
    return [r.target.preset if r.target.preset == r.target.name else _label(r)
            for r in reports]


def _rows(reports) -> list[tuple[str, Callable]]:
    """(label, report -> cell) of the rows that apply to every report."""
    generation = all("ttft_s" in r.totals for r in reports)
    fastest = min(r.totals["latency_s"] for r in reports) or 0.0

    def rel(r) -> str:
        lat = r.totals["latency_s"]
        return f"{lat / fastest:.2f}x" if fastest > 0 else "-"

    def throughput(r) -> str:
        t = r.totals
        return si(t["executed_flops"] / t["latency_s"], "FLOP/s") if t["latency_s"] > 0 else "-"

    def memory(r) -> str:
        if generation:
            return si(r.totals["peak_memory_bytes"], "B")
        mem = r.memory
        if not mem:
            return "-"
        cap = mem.get("capacity_bytes") or 0
        return si(mem["total_bytes"], "B") + (f" of {si(cap, 'B')}" if cap else "")

    rows: list[tuple[str, Callable]] = [
        ("latency", lambda r: si(r.totals["latency_s"], "s")),
        ("vs fastest", rel),
    ]
    if generation:
        rows += [("TTFT", lambda r: si(r.totals["ttft_s"], "s")),
                 ("TPOT", lambda r: si(r.totals["tpot_s"], "s")),
                 ("tokens/s", lambda r: si(r.totals["tokens_per_s"], "token/s")),
                 ("energy/token", lambda r: si(r.totals["energy_per_token_j"], "J"))]
    rows += [
        ("throughput", throughput),
        ("flops", lambda r: si(r.totals["flops"], "FLOP")),
        ("dram read", lambda r: si(r.totals["dram_read_bytes"], "B")),
        ("dram write", lambda r: si(r.totals["dram_write_bytes"], "B")),
        ("energy", lambda r: si(r.totals["energy_j"], "J")),
        ("power", lambda r: si(r.power_w, "W")),
        ("memory" + (" (peak)" if generation else ""), memory),
        ("ops" + (" (prefill)" if generation else ""), lambda r: f"{r.runs:,}"),
    ]
    if all(r.baseline is not None for r in reports):
        def speedup(r) -> str:
            base, own = r.baseline.totals["latency_s"], r.totals["latency_s"]
            return f"{base / own:.2f}x" if own > 0 else "-"

        rows.append(("pruning speedup", speedup))  # unpruned latency / pruned latency
    return rows


def side_by_side(reports: Sequence) -> str:
    """The headline figures of ``reports`` (one workload, several targets), a column
    per report; the first line names the workload and the fidelity."""
    reports = list(reports)
    if not reports:
        return ""
    heads = _columns(reports)
    rows = [(label, [fn(r) for r in reports]) for label, fn in _rows(reports)]
    first = max(len(label) for label, _ in rows)
    widths = [max(len(h), *(len(cells[i]) for _, cells in rows)) for i, h in enumerate(heads)]
    wl = reports[0].workload
    name = (wl.name if wl is not None else "") or reports[0].graph.header.get("name", "")
    fidelity = ", ".join(dict.fromkeys(r.fidelity for r in reports))
    lines = [f"{name} on {len(reports)} targets, fidelity {fidelity}",
             "  " + " " * first + "  " + "  ".join(h.rjust(w) for h, w in zip(heads, widths))]
    for label, cells in rows:
        lines.append("  " + label.ljust(first) + "  "
                     + "  ".join(c.rjust(w) for c, w in zip(cells, widths)))
    return "\n".join(lines)


def _tagged(frame, report):
    out = frame.copy()
    out.insert(0, "preset", report.target.preset)
    out.insert(0, "target", report.target.name)
    return out


def write_ops_csv(reports: Sequence, path: str) -> None:
    """One row per op of every report, the ``target`` and ``preset`` columns first (the
    columns of :meth:`hwsim.report.Report.to_csv` after them)."""
    import pandas as pd  # noqa: PLC0415

    frames = [_tagged(r.ops[[c for c in r.ops.columns if c != "tasks"]], r) for r in reports]
    ops = pd.concat(frames, ignore_index=True)
    if "pruning" in ops and not ops["pruning"].fillna("").astype(bool).any():
        ops = ops.drop(columns="pruning")  # nothing pruned: as Report.to_csv leaves it out
    ops.to_csv(path, index=False)


def write_steps_csv(reports: Sequence, path: str) -> None:
    """One row per decode step of every generation report, ``target`` and ``preset``
    first."""
    import pandas as pd  # noqa: PLC0415

    pd.concat([_tagged(r.steps, r) for r in reports], ignore_index=True).to_csv(
        path, index=False)
