"""What pruning did and what it cost: the report's ``pruning`` section.

- ``steps``: the records the pruning passes left in the graph's header: per
  method, its parameters, the tokens, KV entries and heads of each layer of
  the pruned stack after it, the dropped layers, its overhead ops;
- ``overhead``: the ops whose ``pruning`` attribute names a method (its
  scores, top-k, solver iterations, gathers): their latency, energy and DRAM
  bytes, and their share of the run's, in total and per method;
- ``vs_unpruned`` (when the unpruned graph was simulated too, ``hwsim
  simulate --baseline``): each total unpruned and pruned, and their ratio;
- ``published_quality``: what the method's sources report at exactly this setting
  (:func:`hwsim.accuracy.for_graph`: each benchmark's score, the dense model's score
  from the same table, the source), or a note saying there is no such row.
"""

from __future__ import annotations

from typing import Any

COMPARED = ("latency_s", "energy_j", "flops", "dram_read_bytes", "dram_write_bytes")


def pruning_summary(report) -> dict[str, Any] | None:
    """The section, or None when the workload prunes nothing."""
    steps = list(report.graph.header.get("pruning") or [])
    baseline = getattr(report, "baseline", None)
    if not steps and baseline is None:
        return None
    out: dict[str, Any] = {"steps": steps, "overhead": _overhead(report)}
    if steps:
        from ..accuracy import for_graph  # noqa: PLC0415 - the table is read when first needed

        out["published_quality"] = for_graph(report.graph.header)
    if baseline is not None:
        t, b = report.totals, baseline.totals
        out["vs_unpruned"] = {k: {"unpruned": b[k], "pruned": t[k],
                                  "ratio": (t[k] / b[k]) if b[k] else None} for k in COMPARED}
    return out


def _overhead(report) -> dict[str, Any]:
    ops = report.ops
    n = report.devices
    total_latency = float(ops["latency_s"].sum()) if len(ops) else 0.0
    total_energy = float(ops["energy_j"].sum()) if len(ops) else 0.0
    if "pruning" in ops:
        marked = ops[ops["pruning"].fillna("").astype(str) != ""]
    else:
        marked = ops.iloc[0:0]

    def part(rows) -> dict[str, Any]:
        lat, en = float(rows["latency_s"].sum()), float(rows["energy_j"].sum())
        return {"ops": int(len(rows)), "latency_s": lat, "energy_j": n * en,
                "dram_bytes": n * int(rows["dram_read_bytes"].sum()
                                      + rows["dram_write_bytes"].sum()),
                "flops": n * int(rows["flops"].sum()),
                "latency_share": lat / total_latency if total_latency else 0.0,
                "energy_share": en / total_energy if total_energy else 0.0}

    out = part(marked)
    out["by_method"] = {m: part(rows) for m, rows in marked.groupby("pruning", sort=True)}
    return out


def compact_layers(values: list, first: int = 0) -> str:
    """``[640, 640, 352, 352]`` -> ``"L0-1 640, L2-3 352"`` (``-`` for a dropped layer)."""
    parts, start = [], 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            lo, hi = start + first, i - 1 + first
            label = f"L{lo}" if lo == hi else f"L{lo}-{hi}"
            v = values[start]
            parts.append(f"{label} {'-' if v is None else v}")
            start = i
    return ", ".join(parts)


def format_pruning(summary: dict[str, Any], si) -> list[str]:
    """Lines of the terminal table's pruning section."""
    lines = []
    for rec in summary["steps"]:
        params = ", ".join(f"{k}={v}" for k, v in rec.get("params", {}).items())
        lines.append(f"  pruning      {rec['method']}({params})"
                     f"  [{rec.get('stack', '')} stack, {rec.get('overhead_ops', 0)} overhead ops]")
        lines.append(f"    tokens/layer  {compact_layers(rec['tokens_per_layer'])}")
        if rec.get("phase") == "decode":
            lines.append(f"    keys/layer    {compact_layers(rec['kv_per_layer'])}")
        heads = rec.get("heads_per_layer") or []
        varied = len(set(heads) - {None}) > 1
        if varied or rec["method"] in ("heads", "spatten-heads") or \
                rec.get("params", {}).get("heads_keep") is not None:
            lines.append(f"    heads/layer   {compact_layers(heads)}")
        if rec.get("dropped_layers"):
            lines.append(f"    dropped       layers {rec['dropped_layers']}")
    lines.extend(format_quality(summary.get("published_quality")))
    o = summary["overhead"]
    lines.append(f"  overhead     {si(o['latency_s'], 's')} ({100 * o['latency_share']:.2f}% of "
                 f"latency), {si(o['energy_j'], 'J')} ({100 * o['energy_share']:.2f}% of "
                 f"energy), {o['ops']} ops")
    for m, p in o["by_method"].items():
        if len(o["by_method"]) > 1:
            lines.append(f"    {m:<14} {si(p['latency_s'], 's')} ({100 * p['latency_share']:.2f}%"
                         f"), {si(p['energy_j'], 'J')} ({100 * p['energy_share']:.2f}%)")
    return lines


QUALITY_SHOWN = 4  # benchmarks the terminal table lists (the JSON has them all)


def format_quality(q: dict[str, Any] | None) -> list[str]:
    """The published quality lines: a few benchmarks with the dense score, and the source."""
    if not q:
        return []
    if not q["rows"]:
        return [f"  published    {q['note']}"]
    rows = q["rows"]
    shown = ", ".join(f"{r['benchmark']} {r['score']:g} (dense {r['dense_score']:g})"
                      for r in rows[:QUALITY_SHOWN])
    more = f", +{len(rows) - QUALITY_SHOWN} more in JSON" if len(rows) > QUALITY_SHOWN else ""
    sources = "; ".join(sorted({r["source"] for r in rows}))
    notes = "; ".join(dict.fromkeys(part for r in rows for part in r["note"].split("; ")
                                    if part))
    lines = [f"  published    {shown}{more}", f"    source      {sources}"]
    if notes:
        lines.append(f"    note        {notes}")
    return lines


def format_comparison(summary: dict[str, Any], si) -> list[str]:
    """Unpruned and pruned side by side, with their ratio."""
    units = {"latency_s": "s", "energy_j": "J", "flops": "FLOP", "dram_read_bytes": "B",
             "dram_write_bytes": "B"}
    names = {"latency_s": "latency", "energy_j": "energy", "flops": "flops",
             "dram_read_bytes": "dram read", "dram_write_bytes": "dram write"}
    from .table import format_table  # noqa: PLC0415

    rows = [[names[k], si(v["unpruned"], units[k]), si(v["pruned"], units[k]),
             f"{v['ratio']:.3f}" if v["ratio"] is not None else "-"]
            for k, v in summary["vs_unpruned"].items()]
    return ["", *format_table(["", "unpruned", "pruned", "ratio"], rows).splitlines()]
