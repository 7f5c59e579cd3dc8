"""The terminal table: totals, then the top operators by latency."""

from __future__ import annotations


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


def format_table(report, top: int = 10) -> str:
    t = report.totals
    name = report.graph.header.get("name", "")
    lines = [
        f"{name} on {report.target.preset} ({report.target.name}), "
        f"{len(report.rows)} ops, fidelity {report.fidelity}",
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
    own = getattr(report.target.target, "summary_lines", None)  # the target's own figures
    if own is not None:
        lines.extend(own(report))
    pruning = report.pruning
    if pruning is not None:
        from .pruning import format_comparison, format_pruning  # noqa: PLC0415

        lines.extend(format_pruning(pruning, si))
        if "vs_unpruned" in pruning:
            lines.extend(format_comparison(pruning, si))
    # the top ops from the report's rows (no DataFrame: pandas stays unloaded); ties in
    # the order of the ops, as a stable sort of the table would give them
    ops = sorted(report.rows, key=lambda r: -r["latency_s"])[:top]
    if ops:
        lines.append("")
        lines.append(f"  top {len(ops)} ops by latency:")
        lines.append(f"  {'id':>5}  {'kind':<11} {'layer':>5}  {'latency':>10}  {'share':>6}  "
                     f"{'flops':>10}  {'dram':>10}  {'bound':<8} name")
        total = t["latency_s"] or 1.0
        for r in ops:
            layer = "-" if r.get("layer") is None else str(r["layer"])
            lines.append(
                f"  {r['id']:>5}  {r['kind']:<11} {layer:>5}  {si(r['latency_s'], 's'):>10}  "
                f"{100 * r['latency_s'] / total:5.1f}%  {si(r['flops'], 'FLOP'):>10}  "
                f"{si(r['dram_read_bytes'] + r['dram_write_bytes'], 'B'):>10}  {r['bound']:<8} "
                f"{r.get('module') or r['name']}"
                + (f"  [{r['detail']}]" if r.get("detail") else ""))
    return "\n".join(lines)


def format_generation(report, top: int = 10) -> str:
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
    lines.extend("  " + line for line in format_table(report.prefill, top).splitlines())
    return "\n".join(lines)
