"""Simulation: a graph, lowered op by op onto a target, scheduled, priced.

:func:`simulate` is the front door of the API::

    import hwsim
    report = hwsim.simulate("workloads/llama2-7b-prefill.yaml", target="roofline")
    report.totals["latency_s"], report.ops.head()

It loads the workload (applying ``sets`` overrides), builds the dense graph,
applies the pruning steps, splits it over the devices and expands its mixture-of-experts
layers by the workload's routing (:func:`prepare`, the one pipeline that
``hwsim validate`` uses too), resolves the target and its spec, lowers each op to
tasks (identical ops are lowered once and reused), schedules them, prices the
actions with the target's energy table, and returns a :class:`~hwsim.report.Report`.

Ops run one after another in graph order (a kernel boundary between them).
Within an op, its tasks are scheduled by the event engine (``fidelity="event"``,
:func:`hwsim.engine.run_events`) or bounded analytically
(``fidelity="analytical"``, :func:`hwsim.engine.analytical_latency`); see
:mod:`hwsim.engine`. Identical ops (same kind, attributes, tensor shapes and
types) are lowered and scheduled once and reused.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from . import capacity, engine, overlap
from .engine.lanes import Lane
from .errors import InputError, UnsupportedOpError
from .ir import Graph
from .ir.kinds import EXPANDED_KINDS
from .ir.kinds import flops as op_flops
from .parallel import tensor_parallel
from .progress import bar
from .pruning import apply as apply_pruning
from .targets import ResolvedTarget, resolve
from .workload import Workload, build_graph, load_workload, parse_sets, split_target
from .workload.logits import select_logits
from .workload.moe import expand as expand_moe
from .workload.zoo import context_warnings

if TYPE_CHECKING:
    from .report import Report

FIDELITIES = ("event", "analytical")


DEFAULT_TARGET = "roofline"


def simulate(workload: str | os.PathLike | Workload | Mapping[str, Any],
             target: str | ResolvedTarget | None = None,
             *, sets: Iterable[str] | Mapping[str, Any] = (),
             fidelity: str = "event", baseline: bool = False) -> Report:
    """Simulate ``workload`` on ``target``.

    ``workload``: a YAML path, a :class:`Workload`, or a mapping of the same fields
    a workload file has (``{"model": "bert-base", "seq_len": 128}``), checked as a
    file is. ``target``: a target, preset or hardware YAML path, or a resolved
    target; ``None`` runs the workload's own ``target:`` field, else roofline.
    ``sets`` are overrides: ``["seq_len=4096", "target.dram_bw_bytes_per_s=1e12"]``
    or the same as a mapping; the workload's name then says which
    (:func:`hwsim.workload.overrides.label`). With ``baseline=True`` the unpruned
    graph is simulated too, as ``report.baseline``, and the report compares the two.
    """
    if fidelity not in FIDELITIES:
        raise InputError(f"expected one of {', '.join(FIDELITIES)}, got {fidelity!r}",
                         source="--fidelity")
    wl, target_sets = load_with_sets(workload, sets)
    resolved = resolve_target(target, wl, target_sets)
    if wl.phase == "generate":
        from .generation import simulate_generation  # noqa: PLC0415

        report = simulate_generation(wl, resolved, fidelity=fidelity, baseline=baseline)
    else:
        pruned, dense = model_graphs(wl)
        dense_flops = expand_moe(dense, wl.routing, wl.source).flops()
        report = run_graph(device_graph(pruned, wl), resolved, wl, dense_flops=dense_flops,
                           fidelity=fidelity)
        if baseline:
            report.baseline = run_graph(device_graph(dense, wl), resolved, wl,
                                        dense_flops=dense_flops, fidelity=fidelity)
    report.warnings = context_warnings(wl, report.graph.header)
    return report


def resolve_target(target: str | ResolvedTarget | None, wl: Workload,
                   target_sets: Mapping[str, Any]) -> ResolvedTarget:
    """The target to run: ``target`` as given, else the workload's ``target:`` field
    (a hardware file's path is relative to the workload file), else roofline."""
    if isinstance(target, ResolvedTarget):
        return target
    if target is None:
        from .workload.loader import target_of  # noqa: PLC0415

        target = target_of(wl) or DEFAULT_TARGET
    elif not isinstance(target, str):
        raise InputError(f"expected a target, preset or hardware YAML path (text), got "
                         f"{type(target).__name__} {target!r}", source="target")
    return resolve(target, target_sets)


def load_with_sets(workload: str | os.PathLike | Workload | Mapping[str, Any],
                   sets: Iterable[str] | Mapping[str, Any]) -> tuple[Workload, list]:
    """The workload with the overrides of ``sets`` that are its own applied (its name
    saying so), and the ``target.`` ones left for the target. A mapping is read as a
    workload file's contents (source ``<workload>``)."""
    from .workload import apply_sets, label, workload_from_dict  # noqa: PLC0415

    pairs = list(sets.items()) if isinstance(sets, Mapping) else parse_sets(sets)
    wl_sets, target_sets = split_target(pairs)
    if isinstance(workload, Mapping):
        data = label(apply_sets(dict(workload), wl_sets), wl_sets, default="workload")
        return workload_from_dict(data, "<workload>"), target_sets
    if not isinstance(workload, (Workload, str, os.PathLike)):
        raise InputError(f"expected a workload: a YAML path, a mapping of workload fields or "
                         f"a hwsim.Workload, got {type(workload).__name__}", source="workload")
    if not isinstance(workload, Workload):
        return load_workload(workload, wl_sets), target_sets
    if wl_sets:
        data = label(apply_sets(workload.to_dict(), wl_sets), wl_sets)
        data.pop("source", None)
        workload = workload_from_dict(data, workload.source)
    return workload, target_sets


def model_graphs(wl: Workload, *, cache_tokens: list[int] | None = None,
                 rows: list[int] | None = None) -> tuple[Graph, Graph]:
    """The workload's model, pruned and unpruned: built (:func:`build_graph`), pruned
    by its steps (the dense one not), the logits' positions selected; whole (not yet
    split over devices) and with its ``moe_experts`` ops as traced. ``cache_tokens``
    and ``rows``: a decode step's cache and query rows per layer
    (:func:`hwsim.pruning.apply`)."""
    dense = build_graph(wl)
    pruned = select_logits(apply_pruning(dense, wl.pruning, wl.source,
                                         cache_tokens=cache_tokens, rows=rows), wl.logits)
    return pruned, select_logits(dense, wl.logits)


def device_graph(graph: Graph, wl: Workload, *, split: bool = True) -> Graph:
    """What one device runs of a model graph: split over ``wl.devices`` (tensor
    parallelism, :mod:`hwsim.parallel`; not with ``split=False``), then every
    ``moe_experts`` op expanded into its per-expert kernels by the workload's routing
    (:mod:`hwsim.workload.moe`). The split comes first so that the expansion sees one
    device's share of each expert."""
    if split:
        graph = tensor_parallel(graph, wl.devices, wl.source)
    return expand_moe(graph, wl.routing, wl.source)


def prepare(wl: Workload, *, split: bool = True) -> tuple[Graph, Graph]:
    """The one pipeline from a workload to the graphs that are costed: (pruned, dense),
    each built, pruned (the dense one not), logits selected, split over the devices
    (unless ``split=False``: graph-level metrics count the whole model) and MoE
    expanded. ``hwsim validate`` and the tests use it; :func:`simulate` runs the same
    two steps (:func:`model_graphs`, then :func:`device_graph` per graph it costs),
    since it also needs the whole model's dense FLOPs and the baseline only on
    request."""
    pruned, dense = model_graphs(wl)
    return device_graph(pruned, wl, split=split), device_graph(dense, wl, split=split)


def _signature(op, graph: Graph) -> tuple:
    """What makes two ops cost the same: kind, attributes, tensor shapes and types."""
    t = graph.tensors
    return (op.kind, tuple(sorted((k, str(v)) for k, v in op.attrs.items())),
            tuple((t[i].shape, t[i].dtype, t[i].kind) for i in op.inputs),
            tuple((t[o].shape, t[o].dtype, t[o].kind) for o in op.outputs))


def run_graph(graph: Graph, resolved: ResolvedTarget, wl: Workload | None = None, *,
              dense_flops: int | None = None, fidelity: str = "event",
              memo: dict | None = None, kv_cache_fraction: float = 1.0) -> Report:
    """Lower, schedule and price every op of ``graph`` on ``resolved``.

    ``memo``: a dict kept between calls that run on the same target, fidelity and
    tiling (a generation's steps): an op costed by one call is not costed again.
    ``kv_cache_fraction``: the share of the graph's KV cache the device holds at its
    peak, for the memory account (a KV policy that cuts each layer's cache as the
    forward passes it, :mod:`hwsim.generation`).

    Ops run one after another on one stream, unless the workload asks for overlap
    (``tiling.tiling_allreduce``): then the chains it cuts into row blocks run on the
    ``compute`` and ``comm`` streams (:func:`schedule_streams`)."""
    tiling = wl.tiling if wl is not None else None
    memory = check_memory(graph, resolved, tiling, kv_cache_fraction)
    memo = {} if memo is None else memo
    price = _Pricer(resolved, tiling, fidelity, memo)
    op_keys = []
    rows = []
    clock = 0.0
    for op in bar(graph.ops, f"simulate on {resolved.preset}", unit="op"):
        key, cost = price(op, graph)
        op_keys.append(key)
        row = {"id": op.id, "name": op.name, "kind": op.kind, "layer": op.layer,
               "module": op.module, "pruning": op.attrs.get("pruning", ""), "count": op.repeat,
               "start_s": clock, "flops": op_flops(op) * op.repeat, **cost}
        if op.repeat != 1:  # the row is all the op's runs (one run: divide by count)
            for name in RUN_SUMS:
                row[name] = cost[name] * op.repeat
        rows.append(row)
        clock += row["latency_s"]
    lanes = [price.timelines[k] for k in op_keys]
    streams = None
    tiled = (overlap.chains(graph) if getattr(tiling, "tiling_allreduce", False)
             and "comm" in price.target.streams(price.spec) else {})
    if tiled:
        host_lane, streams = schedule_streams(rows, lanes, graph, tiled, price, wl)
    else:
        host_lane = issue_from_host(rows, graph, resolved, wl, price.table.static_power_w,
                                    [price.cache[k]["latency_s"] for k in op_keys])
    from .report import Report  # noqa: PLC0415 (pandas: loaded on first need)

    return Report(rows, graph=graph, workload=wl, target=resolved,
                  dense_flops=graph.flops() if dense_flops is None else dense_flops,
                  fidelity=fidelity, lanes=lanes, memory=memory, host_lane=host_lane,
                  streams=streams)


class _Pricer:
    """Costs ops on one target: lowers an op to tasks, schedules them (the fidelity's
    way), prices the actions; an op with the signature of one already costed (in this
    graph or, through ``memo``, an earlier one) is not costed again. ``pricer(op,
    graph)`` gives ``(key, cost)``; the op's task timeline is ``timelines[key]``."""

    def __init__(self, resolved: ResolvedTarget, tiling, fidelity: str, memo: dict):
        self.resolved, self.tiling, self.fidelity = resolved, tiling, fidelity
        self.target, self.spec = resolved.target, resolved.spec
        self.table = self.target.energy_table(self.spec)
        self.cache: dict[tuple, dict] = memo.setdefault("costs", {})
        self.timelines: dict[tuple, list] = memo.setdefault("lanes", {})
        self.memo = memo

    def __call__(self, op, graph: Graph) -> tuple[tuple, dict]:
        target, spec, tiling = self.target, self.spec, self.tiling
        key = _signature(op, graph)
        data_key = target.cache_key(op, graph, spec)
        if data_key is not None:
            key += (data_key,)
        cost = self.cache.get(key)
        if cost is not None:
            return key, cost
        if op.kind in EXPANDED_KINDS:  # no target costs it: expanded before simulation
            raise UnsupportedOpError(target.name, op.kind, op.line(graph))
        try:
            tasks = target.lower(op, graph, spec, tiling)
        except UnsupportedOpError:
            raise
        except InputError as e:
            if e.problems[0].source:
                raise
            p = e.problems[0]
            raise InputError(f"{p.message}", source=self.resolved.source, field=p.field) from None
        pools = target.pools(spec)
        summary = engine.summarize(tasks, pools)
        if self.fidelity == "event":
            sched = engine.run_events(tasks, pools)
            latency = sched.latency_s
        else:
            sched = None
            latency = summary.analytical_latency_s
        nbytes = summary.bytes
        table = self.table
        dyn = table.dynamic_j(summary.actions, target.name)
        latency = power_capped_s(latency, sum(dyn.values()), table.static_power_w,
                                 target.power_limit_w(spec))
        static = table.static_j(latency)
        cost = {
            "latency_s": latency,
            "dram_read_bytes": nbytes.get("dram_read", 0),
            "dram_write_bytes": nbytes.get("dram_write", 0),
            "bound": summary.bound,
            "energy_compute_j": dyn["compute"], "energy_onchip_j": dyn["onchip"],
            "energy_dram_j": dyn["dram"], "energy_interconnect_j": dyn["interconnect"],
            "energy_static_j": static,
            "tasks": len(tasks),
            "executed_flops": int(target.executed_flops(op, graph, spec, tiling)),
            "detail": target.describe(op, graph, spec, tiling),
        }
        self.timelines[key] = Lane([t.unit for t in tasks], [t.label for t in tasks],
                                   sched.starts_s, sched.ends_s) if sched else []
        cost["energy_j"] = sum(dyn.values()) + static
        self.cache[key] = cost
        return key, cost


# A row's figures that are sums over an op's runs: a repeated op's row (``count`` runs)
# is its cost times the count; ``bound``, ``tasks`` and ``detail`` describe one run.
RUN_SUMS = ("latency_s", "dram_read_bytes", "dram_write_bytes", "energy_compute_j",
            "energy_onchip_j", "energy_dram_j", "energy_interconnect_j", "energy_static_j",
            "energy_j", "executed_flops")


def power_capped_s(latency_s: float, dynamic_j: float, static_w: float, limit_w: float) -> float:
    """An op's time under the board's power limit.

    Power management (NVIDIA's board power cap, a CPU's TDP governor) lowers the
    clock until the board draws no more than ``limit_w``; the op's dynamic energy
    (its actions, counted by the target) is then spent over at least
    ``dynamic_j / (limit_w - static_w)`` seconds. To first order the energy per
    action is kept (a lower clock at the same voltage), and the static power is
    drawn for the longer time. No limit (0), or an op under it: unchanged."""
    if limit_w <= static_w or dynamic_j <= 0:
        return latency_s
    return max(latency_s, dynamic_j / (limit_w - static_w))


def schedule_streams(rows: list[dict], lanes: list, graph: Graph, tiled: dict[int, int],
                     price: "_Pricer", wl: Workload | None) -> tuple[list, dict]:
    """Run ``graph`` on streams, with the chains that lead to its all-reduces cut into
    row blocks (tiling-AllReduce, :mod:`hwsim.overlap`; ``tiled``: all-reduce index ->
    its chain).

    Each chain is cut into the number of blocks (:data:`hwsim.overlap.CHUNKS`) whose
    pieces end first on the two streams; every piece is an op the target prices
    (:class:`_Pricer`). Then every op (or piece) is a node of
    :func:`hwsim.engine.streams.run_streams`, in graph order and a chain's block by
    block: an all-reduce block on the ``comm`` stream waiting for its block, the rest
    on ``compute``, each op waiting for the nodes that produce its inputs; the host
    issues each node (:mod:`hwsim.runtime`). ``rows`` and ``lanes`` (the single-stream
    costs and task timelines, one per op) are updated in place: a cut op's figures
    become its pieces' sums, ``start_s``/``end_s`` its first piece's start and its
    last piece's end, and a ``stream`` column says where it ran; an all-reduce block
    draws static power only for the time the compute stream does not cover (the
    device draws it once). Returns the host lane and the report's ``streams``
    account: the run's latency (the last end on any stream), each stream's busy
    time, and what tiling-AllReduce hid and gained over the same ops run one after
    another (``ring_latency_s``)."""
    from . import runtime  # noqa: PLC0415
    from .engine.streams import Node, exposed_s, run_streams  # noqa: PLC0415

    target, spec = price.target, price.spec
    platform = runtime.PLATFORMS.get(target.host_platform(spec))
    runtime_name = wl.runtime if wl is not None else "library"
    static_w = price.table.static_power_w
    chosen = price.memo.setdefault("tiling_allreduce", {})
    plan: dict[int, list] = {}  # first op of a chain -> its blocks: [(row, key, cost), ...]
    in_chain: set[int] = set()
    for ai, chain in tiled.items():
        sig = tuple(price(graph.ops[i], graph)[0] for i in chain)
        best = chosen.get(sig)
        if best is None:
            for c in overlap.candidates(graph, chain):
                blocks = [[(i, *price(piece, g)) for i, (piece, g) in zip(chain, block)]
                          for block in overlap.cut(graph, chain, c)]
                trial = []
                for block in blocks:
                    for n, (i, _, cost) in enumerate(block):
                        trial.append(Node("comm" if i == ai else "compute", cost["latency_s"],
                                          (len(trial) - 1,) if n else ()))
                t = run_streams(trial).latency_s
                if best is None or t < best[0]:
                    best = (t, [[(n, key, cost) for n, (_, key, cost) in enumerate(block)]
                                for block in blocks])
            chosen[sig] = best
        plan[chain[0]] = [[(chain[n], key, cost) for n, key, cost in block] for block in best[1]]
        in_chain.update(chain)

    # the nodes, in graph order: (row, stream, key, cost, deps, repeat, kind)
    made: dict[int, int] = {}  # tensor id -> the node that writes it
    nodes: list[tuple] = []

    def deps_of(op) -> tuple[int, ...]:
        return tuple(sorted({made[t] for t in op.inputs if t in made}))

    for i, op in enumerate(graph.ops):
        if i in plan:  # the chain's pieces, block by block
            outer = deps_of(op)
            for block in plan[i]:
                for n, (row, key, cost) in enumerate(block):
                    kind = graph.ops[row].kind
                    nodes.append((row, "comm" if kind == "allreduce" else "compute", key, cost,
                                  (len(nodes) - 1,) if n else outer, 1, kind))
                    for t in graph.ops[row].outputs:  # read whole once the last block ends
                        made[t] = len(nodes) - 1
            continue
        if i in in_chain:
            continue
        key, cost = price(op, graph)
        nodes.append((i, "compute", key, cost, deps_of(op), op.repeat, op.kind))
        for t in op.outputs:
            made[t] = len(nodes) - 1
    kinds = [n[6] for n in nodes]
    host_s = runtime.host_times(kinds, platform, runtime_name)
    rest_s = runtime.repeat_host_times(kinds, platform, runtime_name)
    sched = run_streams([Node(stream, cost["latency_s"], deps, h, rep, hr, graph.ops[i].name)
                         for (i, stream, _, cost, deps, rep, _), h, hr
                         in zip(nodes, host_s, rest_s)],
                        overlaps=platform.overlaps if platform is not None else True)

    compute = [(sched.start_s[j], sched.end_s[j]) for j, n in enumerate(nodes)
               if n[1] == "compute"]
    by_row: dict[int, list[int]] = {}
    for j, n in enumerate(nodes):
        by_row.setdefault(n[0], []).append(j)
    busy: dict[str, float] = {}
    pieces_at: dict[int, list] = {}  # a cut op's row -> (start_s, end_s) of each piece
    for i, row in enumerate(rows):
        js = by_row[i]
        first, last = js[0], js[-1]
        stream = nodes[first][1]
        row["stream"] = stream
        row["start_s"] = sched.start_s[first]
        row["end_s"] = sched.end_s[last]
        row["host_s"] = sum(host_s[j] + (nodes[j][5] - 1) * rest_s[j] for j in js)
        row["host_wait_s"] = sum(sched.wait_s[j] for j in js) if stream == "compute" else 0.0
        if i in in_chain:  # a cut op: its pieces' sums
            pieces = [nodes[j][3] for j in js]
            for name in RUN_SUMS + ("tasks",):
                row[name] = sum(p[name] for p in pieces)
            row["bound"] = max(pieces, key=lambda p: p["latency_s"])["bound"]
            row["detail"] = "; ".join(filter(None, (
                pieces[-1]["detail"],
                f"tiling-AllReduce: {len(js)} row block{'s' if len(js) > 1 else ''}")))
            spans = [(sched.start_s[j], sched.end_s[j]) for j in js]
            lanes[i] = _shifted([price.timelines[nodes[j][2]] for j in js],
                                [s0 - row["start_s"] for s0, _ in spans])
            pieces_at[i] = spans
        if stream != "compute":  # static power is drawn once, under compute or not
            row["energy_j"] -= row["energy_static_j"]
            row["energy_static_j"] = static_w * exposed_s(
                [(sched.start_s[j], sched.end_s[j]) for j in js], compute)
            row["energy_j"] += row["energy_static_j"]
        elif row["host_wait_s"]:
            row["energy_static_j"] += static_w * row["host_wait_s"]
            row["energy_j"] += static_w * row["host_wait_s"]
        busy[stream] = busy.get(stream, 0.0) + row["latency_s"]

    # the same graph with one all-reduce after each matmul, on one stream
    op_kinds = [op.kind for op in graph.ops]
    plain = run_streams([Node("compute", price(op, graph)[1]["latency_s"], (), h, op.repeat, hr)
                         for op, h, hr in zip(graph.ops,
                                              runtime.host_times(op_kinds, platform, runtime_name),
                                              runtime.repeat_host_times(op_kinds, platform,
                                                                        runtime_name))],
                        overlaps=platform.overlaps if platform is not None else True)
    comm = [(sched.start_s[j], sched.end_s[j]) for j, n in enumerate(nodes) if n[1] == "comm"]
    comm_s = math.fsum(e - s0 for s0, e in comm)
    exposed = exposed_s(comm, compute)
    counts: dict[int, int] = {}
    for blocks in plan.values():
        counts[len(blocks)] = counts.get(len(blocks), 0) + 1
    streams = {
        "latency_s": sched.latency_s,
        "busy_s": busy,
        "tiling_allreduce": {
            "chains": len(plan), "row_blocks": dict(sorted(counts.items())),
            "allreduce_s": comm_s, "exposed_allreduce_s": exposed,
            "hidden_share": 1.0 - exposed / comm_s if comm_s > 0 else 0.0,
            "ring_latency_s": plain.latency_s, "gain_s": plain.latency_s - sched.latency_s,
        },
        "pieces": pieces_at,
    }
    return sched.host_lane, streams


def _shifted(timelines: list, offsets: list[float]) -> Lane | list:
    """Pieces' task timelines as one op's lane, each moved to its piece's start
    (relative to the op's start)."""
    if not any(timelines):
        return []
    units, labels, starts, ends = [], [], [], []
    for lane, off in zip(timelines, offsets):
        units.extend(lane.units)
        labels.extend(lane.labels)
        starts.extend(s + off for s in lane.starts_s)
        ends.extend(e + off for e in lane.ends_s)
    return Lane(units, labels, starts, ends)


def issue_from_host(rows: list[dict], graph: Graph, resolved: ResolvedTarget,
                    wl: Workload | None, static_power_w: float,
                    run_latency_s: list[float] | None = None) -> list:
    """Place the ops behind the host that issues them (:mod:`hwsim.runtime`).

    The host lane and the device lane run as the engine runs two chains of tasks
    (:func:`hwsim.runtime.schedule`); each row's ``start_s``
    becomes its start on the device and ``host_wait_s`` the time the device idled
    before it, waiting for the host (drawing its static power, added to the row's
    energy). A repeated op's row (``count`` runs of ``run_latency_s`` each, default its
    latency) gets its first run's start and the waits before and between its runs.
    Returns the host lane for the timeline ([] when the target has no host or the
    runtime costs nothing)."""
    from . import runtime  # noqa: PLC0415

    target, spec = resolved.target, resolved.spec
    platform = runtime.PLATFORMS.get(target.host_platform(spec))
    name = wl.runtime if wl is not None else "library"
    kinds = [op.kind for op in graph.ops]
    host_s = runtime.host_times(kinds, platform, name)
    repeats = [op.repeat for op in graph.ops]
    rest_s = (runtime.repeat_host_times(kinds, platform, name) if any(n != 1 for n in repeats)
              else [0.0] * len(repeats))
    for row in rows:
        row["host_s"] = 0.0
        row["host_wait_s"] = 0.0
    if not any(host_s) and not any(rest_s):
        return []
    if run_latency_s is None:
        run_latency_s = [r["latency_s"] for r in rows]
    sched = runtime.schedule([op.name for op in graph.ops], host_s, run_latency_s,
                             overlaps=platform.overlaps, repeats=repeats, repeat_host_s=rest_s)
    for row, h, h_rest, n, start, wait in zip(rows, host_s, rest_s, repeats, sched.start_s,
                                              sched.wait_s):
        row["start_s"] = start
        row["host_s"] = h + (n - 1) * h_rest
        row["host_wait_s"] = wait
        if wait:
            row["energy_static_j"] += static_power_w * wait
            row["energy_j"] += static_power_w * wait
    return sched.host_lane


def check_memory(graph: Graph, resolved: ResolvedTarget, tiling,
                 kv_cache_fraction: float = 1.0) -> dict:
    """One device's footprint against its capacity (:mod:`hwsim.capacity`); raises
    when it does not fit, else returns the account for the report. The KV cache
    counts ``kv_cache_fraction`` of the graph's (:func:`run_graph`)."""
    target, spec = resolved.target, resolved.spec
    fp = target.footprint(graph, spec, tiling)
    if kv_cache_fraction != 1.0:
        fp = replace(fp, kv_cache_bytes=fp.kv_cache_bytes * kv_cache_fraction)
    cap = target.capacity_bytes(spec)
    capacity.check(fp, cap, devices=int(graph.header.get("devices", 1)),
                   memory=target.memory_name, source=resolved.source,
                   field=f"spec.{target.capacity_field}", hint=target.capacity_hint(spec))
    return {**fp.to_dict(), "capacity_bytes": cap}
