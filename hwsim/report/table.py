"""Terminal tables: one plain-text table formatter, and the report's table.

:func:`format_table` lays out any rows under headers, each column padded to its
widest cell (left- or right-aligned), and is what every table hwsim prints is
made with. It is hand-written on purpose (docs/architecture.md, "Decisions"): the
libraries that do this are not dependencies of hwsim (``tabulate``), or arrive only
with the optional ``trace`` extra and fold wide rows to an 80-column console
when the output is not a terminal (``rich``); padding columns is a few lines.

:func:`format_report` is a :class:`~hwsim.report.Report`'s table
(:meth:`Report.table`): the totals, the target's own figures, the pruning
schedule and its comparison with the unpruned run, then where the time goes: by
op kind, by layer (equal consecutive layers in one row), and the ops by latency
with identical ops (same kind, shapes and cost, :mod:`hwsim.report.groups`) in one
row with their count; a closing line says what the fidelity means.
"""

from __future__ import annotations

import textwrap
from typing import Sequence

# what each fidelity means, for the table's last line, the HTML report and the docs
FIDELITY = {
    "event": ("each op's tasks ran on a discrete-event schedule of the machine's units "
              "and shared pools, so overlap, double buffering and DRAM queueing come out "
              "of the run; ops run one after another"),
    "analytical": ("each op's time is a bound computed from its tasks without a schedule "
                   "(the longest of the critical path, the busiest unit, and each shared "
                   "pool's work per slot): never above the event schedule and at most 25 % "
                   "below it; there is no task timeline"),
}


def si(value: float | None, unit: str) -> str:
    """``si(0.00123, "s")`` -> ``"1.23 ms"``."""
    if value is None:
        return "-"
    if value == 0:
        return f"0 {unit}"
    prefixes = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""),
                (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p")]
    for scale, p in prefixes:
        if abs(value) >= scale:
            return f"{value / scale:.3g} {p}{unit}"
    return f"{value:.3g} {unit}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence], align: str | None = None,
                 indent: str = "  ", gap: int = 2) -> str:
    """``rows`` under ``headers``, each column as wide as its widest cell.

    ``align`` has one letter per column, ``l`` (left) or ``r`` (right); by default
    the first column is left-aligned and the others right-aligned (numbers). Cells
    are converted with ``str`` (``None`` prints as ``-``); a left-aligned last column
    is not padded, so no line ends in spaces. Returns the lines joined by newlines,
    each starting with ``indent``::

        >>> print(format_table(["kind", "ops"], [["matmul", 72], ["softmax", 12]]))
          kind     ops
          matmul    72
          softmax   12
    """
    n = len(headers)
    if align is None:
        align = "l" + "r" * (n - 1)
    if len(align) != n or set(align) - {"l", "r"}:
        raise ValueError(f"align must be {n} letters l or r, not {align!r}")
    cells = [[str(h) for h in headers]]
    for row in rows:
        if len(row) != n:
            raise ValueError(f"a row of {len(row)} cells under {n} headers: {row!r}")
        cells.append(["-" if c is None else str(c) for c in row])
    widths = [max(len(r[i]) for r in cells) for i in range(n)]
    sep = " " * gap
    lines = []
    for r in cells:
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)]
        lines.append((indent + sep.join(parts)).rstrip())
    return "\n".join(lines)


def _percent(share: float) -> str:
    return f"{100 * share:.1f}%"


def format_report(report, top: int | None = 10, detail: bool = False) -> str:
    """The report's table (:meth:`Report.table`).

    ``top``: rows of the ops table (None: all). ``detail``: one row per op, in the
    order they ran (largest ``top`` by latency), instead of identical ops grouped."""
    from .groups import by_kind, by_layer, collapse_layers, group_ops, top_groups  # noqa: PLC0415
    from .report import ops_label  # noqa: PLC0415

    t = report.totals
    name = report.graph.header.get("name", "")
    lines = [
        f"{name} on {report.target.preset} ({report.target.name}), "
        f"{ops_label(report)}, fidelity {report.fidelity}",
        f"  latency      {si(t['latency_s'], 's')}"
        + (f"  ({t['cycles']:,} cycles)" if t["cycles"] else ""),
        f"  flops        {si(t['flops'], 'FLOP')}  (dense {si(t['dense_flops'], 'FLOP')})",
        f"  dram read    {si(t['dram_read_bytes'], 'B')}",
        f"  dram write   {si(t['dram_write_bytes'], 'B')}",
        f"  energy       {si(t['energy_j'], 'J')}  ("
        + ", ".join(f"{k} {si(v, 'J')}" for k, v in t["energy_breakdown_j"].items() if v)
        + ")",
    ]
    if t["latency_s"] > 0:
        executed = t.get("executed_flops", t["flops"])
        note = (f"  (executed {si(executed, 'FLOP')}: masked attention tiles skipped)"
                if executed != t["flops"] else "")
        lines.append(f"  throughput   {si(executed / t['latency_s'], 'FLOP/s')}{note}")
        lines.append(f"  power        {si(report.power_w, 'W')} average per device")
    if report.host_wait_s:
        runtime = report.workload.runtime if report.workload is not None else "library"
        lines.append(f"  host         {si(report.host_wait_s, 's')} of the device waiting for "
                     f"the host to issue ops (runtime {runtime})")
    mem = report.memory
    if mem:
        cap = mem.get("capacity_bytes") or 0
        per = " per device" if report.devices > 1 else ""
        lines.append(
            f"  memory       {si(mem['total_bytes'], 'B')}{per}"
            + (f" of {si(cap, 'B')}" if cap else "")
            + f"  (weights {si(mem['weights_bytes'], 'B')}, KV cache "
            f"{si(mem['kv_cache_bytes'], 'B')}, activations {si(mem['activations_bytes'], 'B')})")
    streams = getattr(report, "streams", None)
    if streams:  # ops overlapped on streams: what each mechanism hid, what it gained
        ta, hk = streams.get("tiling_allreduce"), streams.get("host_kv")
        if ta:
            lines.append(
                f"  streams      tiling-AllReduce: {si(ta['comm_s'], 's')} of all-reduce, "
                f"{ta['hidden_share']:.0%} under compute; {si(ta['gain_s'], 's')} faster "
                f"than an all-reduce after each projection ({si(ta['ring_latency_s'], 's')})")
        if hk:
            lines.append(
                f"  streams      host KV ({hk['host_kv_fraction']:g} of the cache): "
                f"{si(hk['copy_s'], 's')} of PCIe copies, {hk['hidden_share']:.0%} under "
                f"compute; {si(streams['plain_latency_s'], 's')} with copies inside the "
                f"attention")
    carried = getattr(report, "onchip", None)
    if carried is not None and carried["tensors"]:  # nothing carried: no line
        kept = sum(1 for x in carried["tensors"] if x["dram_write_skipped"])
        lines.append(
            f"  on chip      {len(carried['tensors'])} tensors carried in "
            f"{si(carried['capacity_bytes'], 'B')} of cache ({kept} never written); DRAM "
            f"{si(carried['dram_read_saved_bytes'], 'B')} read and "
            f"{si(carried['dram_write_saved_bytes'], 'B')} written saved")
    own = getattr(report.target.target, "summary_lines", None)  # the target's own figures
    if own is not None:
        lines.extend(own(report))
    pruning = report.pruning
    if pruning is not None:
        from .pruning import format_comparison, format_pruning  # noqa: PLC0415

        lines.extend(format_pruning(pruning, si))
        if "vs_unpruned" in pruning:
            lines.extend(format_comparison(pruning, si))
    per = " (one device's)" if report.devices > 1 else ""
    kinds = by_kind(report)
    if kinds:
        lines += ["", f"  by op kind{per}:", format_table(
            ["kind", "ops", "latency", "share", "dram", "energy"],
            [[k["kind"], f"{k['ops']:,}", si(k["latency_s"], "s"), _percent(k["share"]),
              si(k["dram_bytes"], "B"), si(k["energy_j"], "J")] for k in kinds],
            indent="    ")]
    layers = collapse_layers(by_layer(report))
    if layers:
        shown = layers[:LAYER_ROWS]
        lines += ["", f"  by layer{per}, each layer's figures (equal consecutive layers in "
                      "one row):", format_table(
            ["layers", "ops", "latency", "share", "dram", "energy"],
            [[label, f"{k['ops']:,}", si(k["latency_s"], "s"), _percent(k["share"]),
              si(k["dram_bytes"], "B"), si(k["energy_j"], "J")] for label, k in shown],
            indent="    ")]
        if len(layers) > len(shown):
            lines.append(f"    ... {len(layers) - len(shown)} more rows (report.layers, --json)")
    total = t["latency_s"] or 1.0
    if detail:
        ranked = sorted(report.rows, key=lambda r: -r["latency_s"])
        chosen = {id(r) for r in (ranked if top is None else ranked[:max(top, 0)])}
        ops = [r for r in report.rows if id(r) in chosen]  # in the order they ran
        if ops:
            which = ("every op" if len(ops) == len(report.rows)
                     else f"the {len(ops)} longest ops")
            repeated = report.runs != len(report.rows)  # a count column only then
            lines += ["", f"  {which}, one row each, in the order they ran"
                          + (" (count: its runs; the row's figures are all of them)"
                             if repeated else "") + ":"]
            table = [[r["id"], r["kind"], r.get("layer"), si(r["latency_s"], "s"),
                      _percent(r["latency_s"] / total), si(r["flops"], "FLOP"),
                      si(r["dram_read_bytes"] + r["dram_write_bytes"], "B"), r["bound"],
                      (r.get("module") or r["name"])
                      + (f"  [{r['detail']}]" if r.get("detail") else "")] for r in ops]
            headers = ["id", "kind", "layer", "latency", "share", "flops", "dram", "bound",
                       "name"]
            if repeated:
                table = [[row[0], f"{r.get('count', 1):,}", *row[1:]]
                         for row, r in zip(table, ops)]
                headers.insert(1, "count")
            lines.append(format_table(headers, table,
                                      align=("rr" if repeated else "r") + "lrrrrrll",
                                      indent="    "))
    else:
        groups = group_ops(report)
        shown_groups = top_groups(groups, top)
        if shown_groups:
            lines += ["", f"  top {len(shown_groups)} ops by latency: identical ops (same kind, "
                          f"shapes and cost) are one row; {len(groups):,} distinct of "
                          f"{report.runs:,} ops"]
            lines.append(format_table(
                ["count", "kind", "layers", "each", "total", "share", "flops", "dram", "bound",
                 "name"],
                [[f"{g.count:,}", g.kind, g.layer_label, si(g.latency_s, "s"),
                  si(g.total_latency_s, "s"), _percent(g.total_latency_s / total),
                  si(g.flops, "FLOP"), si(g.dram_bytes, "B"), g.bound,
                  g.name + (f"  [{g.detail}]" if g.detail else "")] for g in shown_groups],
                align="rllrrrrrll", indent="    "))
            lines.append("    each, flops, dram: one op's; total and share: the row's "
                         "count of ops together")
    lines.append("")
    lines.extend(textwrap.wrap(f"fidelity {report.fidelity}: "
                               f"{FIDELITY.get(report.fidelity, 'as the target defines it')}.",
                               width=100, initial_indent="  ", subsequent_indent="    "))
    return "\n".join(lines)


# rows of the terminal table's per-layer section (after equal layers are merged)
LAYER_ROWS = 40


def format_generation(report, top: int | None = 10, detail: bool = False) -> str:
    """A request: its figures, then the prefill's table, then the steps in brief."""
    t = report.totals
    wl = report.workload
    name = wl.name or report.graph.header.get("name", "")
    n = report.n_steps
    between = int(n - report.columns["simulated"].sum()) if n else 0
    bound = (f"{t['simulated_steps']:,} cache length{'s' if t['simulated_steps'] != 1 else ''} "
             f"simulated for {n:,} steps")
    if between:
        bound += (f"; {between:,} steps interpolated between them, each within "
                  f"{100 * t['step_error']:g} %")
    lines = [
        f"{name} on {report.target.preset} ({report.target.name}): a {wl.seq_len:,}-token "
        f"prompt, {wl.new_tokens:,} new tokens, batch {wl.batch}, fidelity {report.fidelity}",
        f"  latency      {si(t['latency_s'], 's')}  (TTFT {si(t['ttft_s'], 's')} + "
        f"{t['decode_steps']:,} decode steps)",
        f"  TPOT         {si(t['tpot_s'], 's')} mean, p50 {si(t['tpot_p50_s'], 's')}, "
        f"p90 {si(t['tpot_p90_s'], 's')}, p99 {si(t['tpot_p99_s'], 's')}",
        f"  throughput   {si(t['tokens_per_s'], 'token/s')}",
        f"  per token    {si(t['energy_per_token_j'], 'J')}, "
        f"{si(t['dram_bytes_per_token'], 'B')} of DRAM traffic",
        f"  energy       {si(t['energy_j'], 'J')}",
        f"  KV cache     {si(t['kv_cache_bytes'], 'B')} at most; peak memory "
        f"{si(t['peak_memory_bytes'], 'B')}" + (" per device" if report.devices > 1 else ""),
        f"  steps        {bound}",
    ]
    if n:
        first, last = report.step(0), report.step(-1)
        lines.append(f"  step 1       cache {first['kv_len']:,} tokens, "
                     f"{si(first['latency_s'], 's')};  step {last['step']:,}: cache "
                     f"{last['kv_len']:,} tokens, {si(last['latency_s'], 's')}")
    base = report.baseline
    if base is not None:
        b = base.totals
        lines.append(f"  unpruned     TTFT {si(b['ttft_s'], 's')} -> {si(t['ttft_s'], 's')}, "
                     + (f"TPOT {si(b['tpot_s'], 's')} -> {si(t['tpot_s'], 's')}, "
                        if t["tpot_s"] and b["tpot_s"] else "")
                     + f"peak memory {si(b['peak_memory_bytes'], 'B')} -> "
                       f"{si(t['peak_memory_bytes'], 'B')}")
    lines.append("")
    lines.append("  the prefill (first token):")
    lines.extend("  " + line for line in
                 format_report(report.prefill, top, detail).splitlines())
    return "\n".join(lines)
