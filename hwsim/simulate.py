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
(``fidelity="analytical"``, :func:`hwsim.engine.analytical_latency`: the target's
``lower_summary``, which may sum the tasks as it emits them without making them); see
:mod:`hwsim.engine`. Identical ops (same kind, attributes, tensor shapes and
types) are lowered and scheduled once and reused.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from . import capacity, engine
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


def _signature(op, graph: Graph, producer: dict | None = None) -> tuple:
    """What makes two ops cost the same: kind, attributes, tensor shapes and types.

    An all-reduce also depends on the op that produced its input (tiling-AllReduce
    hides it behind that op's compute), so its producer's signature is part of it.
    """
    t = graph.tensors
    key = (op.kind, tuple(sorted((k, str(v)) for k, v in op.attrs.items())),
           tuple((t[i].shape, t[i].dtype, t[i].kind) for i in op.inputs),
           tuple((t[o].shape, t[o].dtype, t[o].kind) for o in op.outputs))
    if op.kind == "allreduce" and producer is not None and op.inputs[0] in producer:
        key += (_signature(producer[op.inputs[0]], graph),)
    return key


def run_graph(graph: Graph, resolved: ResolvedTarget, wl: Workload | None = None, *,
              dense_flops: int | None = None, fidelity: str = "event",
              memo: dict | None = None, kv_cache_fraction: float = 1.0) -> Report:
    """Lower, schedule and price every op of ``graph`` on ``resolved``.

    ``memo``: a dict kept between calls that run on the same target, fidelity and
    tiling (a generation's steps): an op costed by one call is not costed again.
    ``kv_cache_fraction``: the share of the graph's KV cache the device holds at its
    peak, for the memory account (a KV policy that cuts each layer's cache as the
    forward passes it, :mod:`hwsim.generation`)."""
    target, spec = resolved.target, resolved.spec
    table = target.energy_table(spec)
    tiling = wl.tiling if wl is not None else None
    memory = check_memory(graph, resolved, tiling, kv_cache_fraction)
    memo = {} if memo is None else memo
    cache: dict[tuple, dict] = memo.setdefault("costs", {})
    timelines: dict[tuple, list] = memo.setdefault("lanes", {})
    op_keys = []
    rows = []
    clock = 0.0
    producer = ({o: op for op in graph.ops for o in op.outputs}
                if any(op.kind == "allreduce" for op in graph.ops) else None)
    for op in bar(graph.ops, f"simulate on {resolved.preset}", unit="op"):
        key = _signature(op, graph, producer)
        data_key = target.cache_key(op, graph, spec)
        if data_key is not None:
            key += (data_key,)
        cost = cache.get(key)
        if cost is None:
            if op.kind in EXPANDED_KINDS:  # no target costs it: expanded before simulation
                raise UnsupportedOpError(target.name, op.kind, op.line(graph))
            try:
                if fidelity == "event":
                    tasks = target.lower(op, graph, spec, tiling)
                    n_tasks = len(tasks)
                else:  # only the tasks' summary is read: the target may make none
                    summary, n_tasks = target.lower_summary(op, graph, spec, tiling)
            except UnsupportedOpError:
                raise
            except InputError as e:
                if e.problems[0].source:
                    raise
                p = e.problems[0]
                raise InputError(f"{p.message}", source=resolved.source, field=p.field) from None
            if fidelity == "event":
                pools = target.pools(spec)
                summary = engine.summarize(tasks, pools)
                sched = engine.run_events(tasks, pools)
                latency = sched.latency_s
            else:
                sched = None
                latency = summary.analytical_latency_s
            nbytes = summary.bytes
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
                "tasks": n_tasks,
                "executed_flops": int(target.executed_flops(op, graph, spec, tiling)),
                "detail": target.describe(op, graph, spec, tiling),
            }
            timelines[key] = Lane([t.unit for t in tasks], [t.label for t in tasks],
                                  sched.starts_s, sched.ends_s) if sched else []
            cost["energy_j"] = sum(dyn.values()) + static
            cache[key] = cost
        op_keys.append(key)
        row = {"id": op.id, "name": op.name, "kind": op.kind, "layer": op.layer,
               "module": op.module, "pruning": op.attrs.get("pruning", ""), "count": op.repeat,
               "start_s": clock, "flops": op_flops(op) * op.repeat, **cost}
        if op.repeat != 1:  # the row is all the op's runs (one run: divide by count)
            for name in RUN_SUMS:
                row[name] = cost[name] * op.repeat
        rows.append(row)
        clock += row["latency_s"]
    host_lane = issue_from_host(rows, graph, resolved, wl, table.static_power_w,
                                [cache[k]["latency_s"] for k in op_keys])
    from .report import Report  # noqa: PLC0415 (pandas: loaded on first need)

    return Report(rows, graph=graph, workload=wl, target=resolved,
                  dense_flops=graph.flops() if dense_flops is None else dense_flops,
                  fidelity=fidelity, lanes=[timelines[k] for k in op_keys], memory=memory,
                  host_lane=host_lane)


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
