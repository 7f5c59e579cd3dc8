"""Identical ops as one row, and sums by op kind and by layer, for people to read.

A 32-layer model runs the same query projection 32 times; a table of its ops by
latency is then 32 equal rows and says nothing else. :func:`group_ops` puts
*identical* ops in one :class:`OpGroup` with their count. Two ops are identical
when they are the same work and cost the same:

- the same work: the same kind, attributes, and input and output tensors (shape,
  dtype, kind) in the report's graph. This is the signature under which the
  simulator costs an op once and reuses the cost (:mod:`hwsim.simulate`), so a
  group is "one simulation, run ``count`` times";
- the same cost: equal latency, FLOPs, executed FLOPs, DRAM bytes read and
  written, energy, bound and the target's description. A target whose cost
  depends on data besides the shapes (SpAtten's scores) splits a group there.

A row of an op that runs ``count`` times (an ``ops:`` entry's ``repeat``) holds
all its runs; it joins its group as ``count`` ops, with one run's figures (the
row's over its count) as the group's "each".

The op's name is not part of the key: ``layers.3.self_attn.q_proj`` and
``layers.4.self_attn.q_proj`` are one group, shown as ``layers.*.self_attn.q_proj``
(:func:`name_pattern`), with the layers it runs in (``0-31``).

:func:`by_kind` and :func:`by_layer` sum one device's ops (the op rows are one
device's, as in :attr:`Report.layers`) with each part's share of the run's
latency. They read the report's rows directly: pandas stays unloaded for a table.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

# the figures of one op that must be equal for two ops to be one group
COST_FIELDS = ("latency_s", "flops", "executed_flops", "dram_read_bytes", "dram_write_bytes",
               "energy_j", "bound", "detail")


@dataclass
class OpGroup:
    """``count`` identical ops; the figures are one op's (multiply by ``count``, or use
    the ``total_`` properties, for the group's). ``runs[i]``: how many times the op
    ``ids[i]`` ran (its ``repeat``, usually 1)."""

    kind: str
    ids: list[int] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)
    layers: list[int | None] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    latency_s: float = 0.0
    flops: int = 0
    executed_flops: int = 0
    dram_read_bytes: int = 0
    dram_write_bytes: int = 0
    energy_j: float = 0.0
    bound: str = ""
    detail: str = ""
    pruning: str = ""
    shapes: str = ""  # the op's input and output shapes, "1x512x768, 768x768 -> 1x512x768"

    @property
    def count(self) -> int:
        return sum(self.runs) if self.runs else len(self.ids)

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes

    @property
    def total_latency_s(self) -> float:
        return self.latency_s * self.count

    @property
    def total_energy_j(self) -> float:
        return self.energy_j * self.count

    @property
    def name(self) -> str:
        return name_pattern(self.names)

    @property
    def layer_label(self) -> str:
        return compact_numbers(self.layers)


def _signature(op, graph) -> tuple:
    """The simulator's notion of "the same op" (hwsim.simulate._signature, without
    an all-reduce's producer: equal costs decide that case)."""
    t = graph.tensors
    return (op.kind, tuple(sorted((k, str(v)) for k, v in op.attrs.items())),
            tuple((t[i].shape, t[i].dtype, t[i].kind) for i in op.inputs),
            tuple((t[o].shape, t[o].dtype, t[o].kind) for o in op.outputs))


def _shapes(op, graph) -> str:
    t = graph.tensors

    def one(i) -> str:
        return "x".join(str(d) for d in t[i].shape) or "scalar"

    return (", ".join(one(i) for i in op.inputs) + " -> "
            + ", ".join(one(o) for o in op.outputs))


def group_ops(report) -> list[OpGroup]:
    """The report's ops with identical ones merged, in the order each first ran.

    An op the report's graph does not hold (a report built by hand) is a group of
    its own: without its shapes, equal figures are no proof of the same work."""
    graph = getattr(report, "graph", None)
    by_id = {op.id: op for op in graph.ops} if graph is not None else {}
    groups: dict[tuple, OpGroup] = {}
    for r in report.rows:
        op = by_id.get(r["id"])
        n = int(r.get("count", 1))
        one = r if n == 1 else _one_run(r, n)
        cost = tuple(one.get(f, "") for f in COST_FIELDS)
        key = (_signature(op, graph), cost) if op is not None else ("id", r["id"])
        g = groups.get(key)
        if g is None:
            g = groups[key] = OpGroup(
                kind=r["kind"], latency_s=one["latency_s"], flops=int(one["flops"]),
                executed_flops=int(one.get("executed_flops", one["flops"])),
                dram_read_bytes=int(one["dram_read_bytes"]),
                dram_write_bytes=int(one["dram_write_bytes"]), energy_j=one["energy_j"],
                bound=r.get("bound", ""), detail=r.get("detail") or "",
                pruning=r.get("pruning") or "",
                shapes=_shapes(op, graph) if op is not None else "")
        g.ids.append(int(r["id"]))
        g.runs.append(n)
        g.layers.append(r.get("layer"))
        g.names.append(r.get("module") or r["name"])
    return list(groups.values())


def _one_run(row: dict, n: int) -> dict:
    """One run's figures of a row that holds ``n`` runs (whole numbers stay exact)."""
    out = dict(row)
    for f in ("latency_s", "energy_j"):
        out[f] = row[f] / n
    for f in ("flops", "executed_flops", "dram_read_bytes", "dram_write_bytes"):
        if f in row:
            out[f] = int(row[f]) // n
    return out


def top_groups(groups: list[OpGroup], top: int | None) -> list[OpGroup]:
    """The groups by their total latency, largest first (ties: first run first)."""
    ranked = sorted(groups, key=lambda g: -g.total_latency_s)
    return ranked if top is None else ranked[:max(top, 0)]


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def by_kind(report) -> list[dict[str, Any]]:
    """One row per op kind, largest latency first: ``kind``, ``ops``, ``latency_s``,
    ``share`` (of the run's latency), ``flops``, ``dram_bytes``, ``energy_j``; one
    device's figures."""
    total = report.totals["latency_s"]
    rows: dict[str, dict[str, Any]] = {}
    for r in report.rows:
        k = rows.setdefault(r["kind"], {"kind": r["kind"], "ops": 0, "latency": [],
                                        "flops": 0, "dram_bytes": 0, "energy": []})
        k["ops"] += int(r.get("count", 1))
        k["latency"].append(r["latency_s"])
        k["flops"] += int(r["flops"])
        k["dram_bytes"] += int(r["dram_read_bytes"]) + int(r["dram_write_bytes"])
        k["energy"].append(r["energy_j"])
    out = []
    for k in rows.values():
        latency = math.fsum(k.pop("latency"))
        out.append({**k, "latency_s": latency, "share": _share(latency, total),
                    "energy_j": math.fsum(k.pop("energy"))})
    return sorted(out, key=lambda row: -row["latency_s"])


def by_layer(report) -> list[dict[str, Any]]:
    """One row per layer in order, then the ops outside any layer (``layer`` None):
    ``layer``, ``ops``, ``latency_s`` (with the device's waits for the host, as
    :attr:`Report.layers`), ``share``, ``flops``, ``dram_bytes``, ``energy_j``; one
    device's figures. Empty when no op belongs to a layer."""
    total = report.totals["latency_s"]
    rows: dict[int | None, dict[str, Any]] = {}
    for r in report.rows:
        layer = r.get("layer")
        k = rows.setdefault(layer, {"layer": layer, "ops": 0, "latency": [], "flops": 0,
                                    "dram_bytes": 0, "energy": []})
        k["ops"] += int(r.get("count", 1))
        k["latency"].append(r["latency_s"] + r.get("host_wait_s", 0.0))
        k["flops"] += int(r["flops"])
        k["dram_bytes"] += int(r["dram_read_bytes"]) + int(r["dram_write_bytes"])
        k["energy"].append(r["energy_j"])
    if set(rows) <= {None}:
        return []
    out = []
    for layer in [*sorted(x for x in rows if x is not None), *([None] if None in rows else [])]:
        k = rows[layer]
        latency = math.fsum(k.pop("latency"))
        out.append({**k, "latency_s": latency, "share": _share(latency, total),
                    "energy_j": math.fsum(k.pop("energy"))})
    return out


def collapse_layers(rows: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Consecutive layers with equal figures as one ``("0-11", row)``: a transformer's
    identical blocks read as one line. The ops outside any layer stay apart."""
    out: list[tuple[str, dict[str, Any]]] = []
    run: list[dict[str, Any]] = []

    def same(a, b) -> bool:
        return all(a[f] == b[f] for f in ("ops", "latency_s", "flops", "dram_bytes", "energy_j"))

    def flush() -> None:
        if run:
            out.append((compact_numbers([r["layer"] for r in run]), run[0]))
            run.clear()

    for row in rows:
        if row["layer"] is None:
            flush()
            out.append(("outside", row))
        elif run and row["layer"] == run[-1]["layer"] + 1 and same(row, run[-1]):
            run.append(row)
        else:
            flush()
            run.append(row)
    flush()
    return out


def compact_numbers(values: list[int | None]) -> str:
    """``[0, 1, 2, 5, None]`` -> ``"0-2, 5, -"``: ranges of consecutive numbers, in
    order, ``-`` for none."""
    nums = sorted({v for v in values if v is not None})
    parts: list[str] = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        parts.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    if any(v is None for v in values):
        parts.append("-")
    return ", ".join(parts)


_NUMBER = re.compile(r"(\d+)")


def name_pattern(names: list[str], most: int = 3) -> str:
    """One name for many. Names that differ only in numbers star them:
    ``layers.0.mlp.up`` and ``layers.7.mlp.up`` -> ``layers.*.mlp.up``. Names of
    different words put the parts that differ in braces, between the prefix and
    suffix they share (cut at a ``.`` or ``_``): ``layers.*.attn.q_proj`` and
    ``layers.*.attn.k_proj`` -> ``layers.*.attn.{q,k}_proj``; past ``most``
    alternatives, how many more there are."""
    distinct = list(dict.fromkeys(names))
    if len(distinct) <= 1:
        return distinct[0] if distinct else ""
    split = [_NUMBER.split(n) for n in distinct]
    if len({len(p) for p in split}) == 1:  # as many numbers in each: star the varying ones
        varying = {i for i in range(1, len(split[0]), 2) if len({p[i] for p in split}) > 1}
        patterns = list(dict.fromkeys("".join("*" if i in varying else x for i, x in
                                              enumerate(p)) for p in split))
    else:  # per set of equal words
        skeletons: dict[tuple, list[list[str]]] = {}
        for p in split:
            skeletons.setdefault(tuple(p[0::2]), []).append(p)
        patterns = ["".join(x if len({q[i] for q in same}) == 1 else "*"
                            for i, x in enumerate(same[0])) for same in skeletons.values()]
    if len(patterns) == 1:
        return patterns[0]
    prefix = os.path.commonprefix(patterns)
    prefix = prefix[:max(prefix.rfind("."), prefix.rfind("_")) + 1]
    suffix = os.path.commonprefix([p[len(prefix):][::-1] for p in patterns])[::-1]
    cut = [i for i, c in enumerate(suffix) if c in "._"]
    suffix = suffix[cut[0]:] if cut else ""
    middles = [p[len(prefix):len(p) - len(suffix)] for p in patterns]
    shown = ",".join(middles[:most]) + (f",+{len(middles) - most} more"
                                        if len(middles) > most else "")
    return f"{prefix}{{{shown}}}{suffix}"
