"""The SpAtten target: ops to stages, stages to tasks, pools, energy, metrics."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hwsim.energy import EnergyTable
from hwsim.engine import Accumulator, Task
from hwsim.errors import UnsupportedOpError
from hwsim.ir.kinds import KINDS
from hwsim.targets import Target

from . import attention, ops
from .context import Context, score_source
from .energy import energy_table
from .residency import plan as residency_plan
from .roles import analyse
from .spec import SpattenSpec
from .work import FETCH_POOL, Work

CLASSES = ("key", "value", "query", "lsb", "weight", "act")


class SpattenTarget(Target):
    name = "spatten"
    description = ("SpAtten (HPCA 2021): Q·K and prob·V multiplier arrays, softmax lanes, "
                   "a quick-select top-k engine, progressive quantization, HBM2 channels "
                   "behind fetchers and a crossbar")
    spec_class = SpattenSpec
    default_preset = "spatten"
    presets_dir = Path(__file__).parent / "presets"
    memory_name = "HBM"

    def __init__(self):
        self._ctx: tuple | None = None
        self._work: tuple | None = None  # the last op's plan: lower, then describe, ask twice

    # ------------------------------------------------------------ protocol
    def context(self, graph, spec: SpattenSpec) -> Context:
        """Roles and scores of ``graph`` (computed once per graph and spec)."""
        c = self._ctx  # holding the graph keeps its id from being reused
        if c is None or c[0] is not graph or c[1] is not spec:
            ctx = Context(spec, graph, analyse(graph), residency_plan(graph, spec),
                          score_source(graph))
            self._ctx = (graph, spec, ctx)
            return ctx
        return c[2]

    def work(self, op, graph, spec: SpattenSpec, tiling=None) -> Work | None:
        """The stages ``op`` runs as (None for a free ``view``)."""
        if op.kind == "view":
            return None
        if op.kind not in KINDS:
            raise UnsupportedOpError(self.name, op.kind, op.line(graph))
        w = self._work  # (its stages are read, never changed, by tasks and describe)
        if w is None or w[0] is not op or w[1] is not graph or w[2] is not spec:
            w = self._work = (op, graph, spec, ops.plan(op, self.context(graph, spec), self.name))
        return w[3]

    def lower(self, op, graph, spec: SpattenSpec, tiling=None) -> list[Task]:
        w = self.work(op, graph, spec, tiling)
        return [] if w is None else w.tasks()

    def lower_summary(self, op, graph, spec: SpattenSpec, tiling=None, carry=None):
        """The ``analytical`` fidelity's reading of :meth:`lower`'s tasks without making
        them: :meth:`.work.Work.summary` (the same summary to the last bit)."""
        if carry:
            return super().lower_summary(op, graph, spec, tiling, carry)
        w = self.work(op, graph, spec, tiling)
        if w is None:
            return Accumulator().summary(self.pools(spec)), 0
        return w.summary(self.pools(spec))

    def cache_key(self, op, graph, spec: SpattenSpec):
        """Besides its shapes, an op's cost follows where its tensors live (HBM or a
        buffer, :mod:`.residency`), the activation buffer a matrix product has left
        for partial sums, and, in seeded mode on real scores, its layer's scores."""
        ctx = self.context(graph, spec)
        res = ctx.residency
        key: tuple = (res.places(op.inputs), res.places(op.outputs))
        if op.kind == "matmul":
            key += (res.free_bytes(op.id),)
        if spec.topk_mode != "expected" and op.layer is not None and ctx.scores is not None:
            key += (("layer", op.layer),)
        return key

    def executed_flops(self, op, graph, spec: SpattenSpec, tiling=None) -> int:
        """An attention executes exactly the rows its arrays compute (:mod:`.attention`);
        SpAtten's in-line machinery (importance accumulation, flatness check) none of
        its own: its adds happen in the accumulators beside the softmax lanes while the
        attention streams; other ops their counted FLOPs."""
        if op.kind == "attention":
            return attention.executed_flops(op)
        if ops.in_line(op, self.context(graph, spec)):
            return 0  # executed by the attention's datapath as it streams (see its detail)
        return super().executed_flops(op, graph, spec, tiling)

    def pools(self, spec: SpattenSpec) -> dict[str, int]:
        return {FETCH_POOL: spec.fetch_channels}

    def describe(self, op, graph, spec: SpattenSpec, tiling=None) -> str:
        w = self.work(op, graph, spec, tiling)
        if w is None:
            return ""
        parts = list(w.notes)
        by_where: dict[str, list[str]] = {}
        for what, nbytes, where in w.resident:
            by_where.setdefault(where, []).append(f"{what} {_si(nbytes)}B")
        parts += [f"resident: {', '.join(v)} {where}" for where, v in by_where.items()]
        by_class = w.bytes_by_class()
        for way in ("read", "write"):
            head = f"dram_{way}_"
            split = {k[len(head):]: v for k, v in by_class.items() if k.startswith(head)}
            if split:
                parts.append(f"DRAM {way} " + ", ".join(f"{c} {_si(v)}B"
                                                       for c, v in split.items()))
        if w.stats.get("dram_transactions"):
            acts = w.stats["dram_activations"]
            slow = [f"{st.cls} x{st.slowdown:.2f}" for st in w.stages
                    if not st.unit and st.slowdown > 1.0005]
            parts.append(f"HBM rows: {acts:,.1f} ACT, {w.stats['dram_row_hits']:,.0f} hits"
                         + (f" (time over peak: {', '.join(slow)})" if slow else ""))
        return "; ".join(parts)

    def summary_lines(self, report) -> list[str]:
        from hwsim.report.table import si  # noqa: PLC0415

        return summary(self.metrics(report), si)

    def peak_flops_per_s(self, spec: SpattenSpec, dtype: str) -> float:
        """Both multiplier arrays at one multiply-accumulate (2 FLOP) per cycle."""
        return 2.0 * (spec.qk_multipliers + spec.pv_multipliers) * spec.clock_hz

    def peak_dram_bw_bytes_per_s(self, spec: SpattenSpec) -> float:
        return float(spec.dram_bw_bytes_per_s)

    def energy_table(self, spec: SpattenSpec) -> EnergyTable:
        return energy_table(spec)

    def headline(self, spec: SpattenSpec) -> str:
        return (f"{spec.qk_multipliers}+{spec.pv_multipliers} {spec.multiplier_bits}-bit "
                f"multipliers at {spec.clock_hz / 1e9:g} GHz ({spec.qk_lanes} keys/cycle at "
                f"d={spec.dot_width}), {spec.softmax_units} softmax lanes, top-k P="
                f"{spec.topk_parallelism}; HBM2 {spec.dram_channels} ch "
                f"{spec.dram_bw_bytes_per_s / 1e9:.0f} GB/s, {spec.fetch_channels} fetchers; "
                f"K/V buffers {spec.key_buffer_tokens} tokens")

    # ------------------------------------------------------------ metrics
    def metrics(self, report) -> dict[str, Any]:
        """Figures the generic report does not have, from a report on this target.

        DRAM bytes by tensor class (``dram_read_<class>_bytes`` and
        ``dram_write_<class>_bytes`` for key, value, query, lsb, weight, act),
        ``kv_bits`` (key, value and key-LSB bits fetched), HBM row activations
        and row hits (``dram_activations``, ``dram_row_hits``,
        ``dram_row_hit_rate`` of the 32-byte bursts), the top-k engine's
        cycles (``topk_cycles``; ``topk_select_cycles`` for its quick-select
        passes alone), the LSB re-fetches (``refetch_ops``, ``refetch_rows``),
        attention-only latency, energy and DRAM bytes (the attention ops, the
        matrix products a pruning pass split them into, softmax, top-k and the
        pruning machinery) beside the whole model's, average power (``power_w``;
        ``chip_power_w`` without the HBM), DRAM bandwidth utilization, the share
        of latency in memory-bound ops, and attention throughput: executed
        (``attention_ops_per_s``, 2 ops per multiply-accumulate) and effective
        (``effective_attention_ops_per_s``: the dense attention's operations,
        from a trace's header or the unpruned baseline when it was simulated,
        per second of attention time).
        """
        spec = report.target.spec
        graph = report.graph
        rows = report.ops
        ctx = self.context(graph, spec)
        out: dict[str, Any] = {f"dram_read_{c}_bytes": 0 for c in CLASSES}
        out.update({f"dram_write_{c}_bytes": 0 for c in CLASSES})
        stats: dict[str, float] = {}
        cache: dict[tuple, Work | None] = {}
        limits: dict[tuple, str] = {}
        limited: dict[str, float] = {}
        att_lat = att_energy = att_dram = att_ops = 0.0
        lat = rows["latency_s"].tolist()
        energy = rows["energy_j"].tolist()
        dram_r, dram_w = rows["dram_read_bytes"].tolist(), rows["dram_write_bytes"].tolist()
        for i, op in enumerate(graph.ops):
            key = _key(op, graph) + (self.cache_key(op, graph, spec),)
            if key not in cache:
                cache[key] = self.work(op, graph, spec)
                limits[key] = limiting_unit(cache[key], spec) if cache[key] else ""
            w = cache[key]
            if w is None:
                continue
            limited[limits[key]] = limited.get(limits[key], 0.0) + lat[i]
            n = op.repeat  # the row is all the op's runs; its work is one run's
            for k, v in w.bytes_by_class().items():
                out[f"{k}_bytes"] = out.get(f"{k}_bytes", 0) + v * n
            for k, v in w.stats.items():
                stats[k] = stats.get(k, 0.0) + v * n
            if _is_attention(op, ctx):
                att_lat += lat[i]
                att_energy += energy[i]
                att_dram += dram_r[i] + dram_w[i]
                att_ops += 2 * w.stats.get("macs", 0.0) * n \
                    if op.kind in ("attention", "matmul") else 0.0
        t = report.totals
        latency = t["latency_s"] or float("nan")
        out["kv_bits"] = 8 * (out["dram_read_key_bytes"] + out["dram_read_value_bytes"]
                              + out["dram_read_lsb_bytes"])
        out["topk_cycles"] = stats.get("topk_cycles", 0.0)
        out["topk_select_cycles"] = stats.get("topk_select_cycles", 0.0)
        out["refetch_ops"] = int(stats.get("refetch_ops", 0))
        out["refetch_rows"] = int(stats.get("refetch_rows", 0))
        out["dram_activations"] = stats.get("dram_activations", 0.0)
        out["dram_row_hits"] = stats.get("dram_row_hits", 0.0)
        bursts = stats.get("dram_transactions", 0.0)
        out["dram_row_hit_rate"] = out["dram_row_hits"] / bursts if bursts else 0.0
        # the HBM refreshes every bank once per tREFI while the run lasts, busy or not
        out["dram_bank_refreshes"] = (
            0.0 if spec.dram_refresh == "none" or spec.dram_trefi_s <= 0
            else t["latency_s"] * spec.dram_channels * spec.dram_pseudo_channels
            * spec.dram_bank_groups * spec.dram_banks_per_group / spec.dram_trefi_s)
        out["attention_latency_s"] = att_lat
        out["attention_energy_j"] = att_energy
        out["attention_dram_bytes"] = att_dram
        out["attention_share"] = att_lat / latency
        out["power_w"] = t["energy_j"] / latency
        out["chip_power_w"] = (t["energy_j"] - t["energy_breakdown_j"]["dram"]) / latency
        dram = t["dram_read_bytes"] + t["dram_write_bytes"]
        out["dram_utilization"] = dram / (latency * spec.dram_bw_bytes_per_s)
        mem = rows.loc[rows["bound"] == "memory", "latency_s"].sum()
        out["memory_bound_share"] = float(mem) / latency
        out["limiting_units"] = {u: v / latency for u, v in
                                 sorted(limited.items(), key=lambda kv: -kv[1])}
        out["limiting_unit"] = next(iter(out["limiting_units"]), "")
        out["limiting_unit_share"] = out["limiting_units"].get(out["limiting_unit"], 0.0)
        out["attention_ops_per_s"] = att_ops / att_lat if att_lat else 0.0
        dense_ops = (graph.header.get("trace") or {}).get("dense_attention_ops")
        baseline = getattr(report, "baseline", None)
        if dense_ops is None and baseline is not None:
            dense_ops = self.metrics(baseline)["attention_ops"]
        out["attention_ops"] = att_ops
        out["effective_attention_ops_per_s"] = (dense_ops or att_ops) / att_lat if att_lat \
            else 0.0
        return out


def summary(m: dict[str, Any], si) -> list[str]:
    """The table's lines: DRAM by tensor, top-k, re-fetches, attention-only, power."""
    read = ", ".join(f"{c} {si(m[f'dram_read_{c}_bytes'], 'B')}" for c in CLASSES
                     if m[f"dram_read_{c}_bytes"])
    lines = [f"  dram by tensor  {read or '-'}"]
    if m["topk_cycles"]:
        lines.append(f"  top-k engine    {m['topk_cycles']:,.0f} cycles "
                     f"(quick-select {m['topk_select_cycles']:,.0f})")
    if m["dram_activations"]:
        lines.append(f"  HBM rows        {m['dram_activations']:,.0f} activations, "
                     f"{100 * m['dram_row_hit_rate']:.1f}% of bursts row hits")
    if m["refetch_ops"]:
        lines.append(f"  LSB re-fetch    {m['refetch_ops']} heads, {m['refetch_rows']:,} keys")
    lines.append(f"  attention       {si(m['attention_latency_s'], 's')} "
                 f"({100 * m['attention_share']:.1f}% of latency), "
                 f"{si(m['attention_energy_j'], 'J')}, {si(m['attention_dram_bytes'], 'B')} DRAM, "
                 f"{si(m['attention_ops_per_s'], 'OP/s')}"
                 + (f" (effective {si(m['effective_attention_ops_per_s'], 'OP/s')})"
                    if m["effective_attention_ops_per_s"] != m["attention_ops_per_s"] else ""))
    lines.append(f"  power           {si(m['power_w'], 'W')} ({si(m['chip_power_w'], 'W')} "
                 f"without HBM); DRAM {100 * m['dram_utilization']:.0f}% busy, "
                 f"{100 * m['memory_bound_share']:.0f}% of latency memory-bound")
    if m["limiting_units"]:
        lines.append("  limited by      " + ", ".join(
            f"{u} {100 * v:.0f}%" for u, v in m["limiting_units"].items() if v >= 0.005)
            + " of latency (the busiest unit of each op)")
    return lines


def _is_attention(op, ctx: Context) -> bool:
    """Attention proper: the fused op, its split products, softmax, top-k, pruning machinery."""
    return (op.kind in ("attention", "softmax", "topk") or bool(op.attrs.get("pruning"))
            or op.id in ctx.roles.qk_matmuls or op.id in ctx.roles.pv_matmuls)


def limiting_unit(w: Work, spec: SpattenSpec) -> str:
    """The unit that limits an op with ``request_overlap`` (its busiest): a compute unit,
    ``hbm`` (the busiest channel) or ``fetch`` (the fetchers, per fetcher), as the
    report's ``bound`` column judges it."""
    busy = dict(w.unit_cycles())
    tx_cycles = spec.dram_transaction_bytes / spec.dram_channel_bytes_per_cycle
    streams = [st for st in w.stages if not st.unit]
    tx = [math.ceil((st.read_bytes or st.write_bytes) / spec.dram_transaction_bytes)
          for st in streams]
    if tx:  # the busiest channel, each stream starting where the last one ended
        per_channel = [0.0] * spec.dram_channels
        offset = 0
        for t, st in zip(tx, streams):
            for ch, n in w.channel_split(st.read_bytes or st.write_bytes, offset):
                per_channel[ch] += n * tx_cycles * st.slowdown
            offset += t
        busy["hbm"] = max(per_channel)
        reads = sum(t for t, st in zip(tx, streams) if st.read_bytes)
        busy["fetch"] = reads * tx_cycles / spec.fetch_channels
    return max(busy, key=busy.get) if busy else ""


def _key(op, graph) -> tuple:
    t = graph.tensors
    return (op.kind, op.name, op.module if op.kind in ("gather", "topk") else "",
            tuple(sorted((k, str(v)) for k, v in op.attrs.items())),
            tuple((t[i].shape, t[i].dtype, t[i].kind) for i in op.inputs),
            tuple((t[o].shape, t[o].dtype, t[o].kind) for o in op.outputs))


def _si(v: float) -> str:
    for scale, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {p}"
    return f"{v:.0f} "


TARGET = SpattenTarget()
