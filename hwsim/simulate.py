"""Simulation: a graph, lowered op by op onto a target, scheduled, priced.

The pieces behind the API's front door (:func:`hwsim.simulate`, in :mod:`hwsim.api`):
:func:`load_with_sets` loads the workload (applying ``sets`` overrides),
:func:`model_graphs` builds the dense graph and applies the pruning steps,
:func:`device_graph` splits it over the devices and expands its mixture-of-experts
layers by the workload's routing (:func:`prepare`, the one pipeline that ``hwsim
validate`` uses too), :func:`resolve_target` resolves the target and its spec, and
:func:`run_graph` lowers each op to tasks (identical ops are lowered once and
reused), schedules them, prices the actions with the target's energy table, and
returns a :class:`~hwsim.report.Report`. A generation (:mod:`hwsim.generation`) and a
serving run (:mod:`hwsim.serving`) run their forwards through the same pieces.

Ops run one after another in graph order (a kernel boundary between them).
Within an op, its tasks are scheduled by the event engine (``fidelity="event"``,
:func:`hwsim.engine.run_events`) or bounded analytically
(``fidelity="analytical"``, :func:`hwsim.engine.analytical_latency`: the target's
``lower_summary``, which may sum the tasks as it emits them without making them); see
:mod:`hwsim.engine`. Identical ops (same kind, attributes, tensor shapes and
types) are lowered and scheduled once and reused.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import replace
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from . import capacity, engine, onchip, overlap
from .engine.events import gc_paused
from .engine.lanes import Lane
from .errors import InputError, UnsupportedOpError
from .ir import Graph
from .ir.kinds import EXPANDED_KINDS
from .ir.kinds import flops as op_flops
from .moe import expand as expand_moe
from .parallel import tensor_parallel
from .progress import bar
from .pruning import apply as apply_pruning
from .targets import ResolvedTarget, resolve
from .workload import Workload, build_graph, load_workload, parse_sets, split_target
from .workload.logits import select_logits

if TYPE_CHECKING:
    from .report import Report

FIDELITIES = ("event", "analytical")


DEFAULT_TARGET = "roofline"


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
    (:mod:`hwsim.moe`). The split comes first so that the expansion sees one
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
    # (the attributes in the order of their names, which are unique: the order of the
    # (name, text) pairs; the tensors looked up by a map, not a list of their own)
    tensor = graph.tensors.__getitem__
    attrs = op.attrs
    return (op.kind, tuple([(k, str(attrs[k])) for k in sorted(attrs)]),
            tuple([(x.shape, x.dtype, x.kind) for x in map(tensor, op.inputs)]),
            tuple([(x.shape, x.dtype, x.kind) for x in map(tensor, op.outputs)]))


def run_graph(graph: Graph, resolved: ResolvedTarget, wl: Workload | None = None, *,
              dense_flops: int | None = None, fidelity: str = "event",
              memo: dict | None = None, kv_cache_fraction: float = 1.0,
              onchip_carry: bool | None = None) -> Report:
    """Lower, schedule and price every op of ``graph`` on ``resolved``.

    ``memo``: a dict kept between calls that run on the same target, fidelity and
    tiling (a generation's steps): an op costed by one call is not costed again.
    ``kv_cache_fraction``: the share of the graph's KV cache the device holds at its
    peak, for the memory account (a KV policy that cuts each layer's cache as the
    forward passes it, :mod:`hwsim.generation`). ``onchip_carry``: carry tensors
    between ops in the last-level cache (:mod:`hwsim.onchip`); None: the workload's
    ``onchip_carry`` field (its default, on, without a workload).

    Ops run one after another on one stream, unless the run asks for overlap
    (``tiling.tiling_allreduce``, or a KV cache partly in host memory): then the
    chains it cuts into row blocks run on the ``compute`` and ``comm`` streams, and
    the host's KV blocks on the ``copy`` stream (:func:`schedule_streams`)."""
    tiling = wl.tiling if wl is not None else None
    memory = check_memory(graph, resolved, tiling, kv_cache_fraction)
    memo = {} if memo is None else memo
    price = _Pricer(resolved, tiling, fidelity, memo)
    streams_of = price.target.streams(price.spec)
    offloaded = (overlap.cooperative(graph) if "copy" in streams_of
                 and price.target.host_kv_fraction(price.spec) > 0 else [])
    tiled = (overlap.chains(graph) if getattr(tiling, "tiling_allreduce", False)
             and "comm" in streams_of else {})
    for ai, chain in tiled.items():  # an attention whose keys stream in is cut by its keys
        if chain[0] in offloaded:
            tiled[ai] = chain[1:]
    # (an attention split by its host keys reads and writes its tensors in DRAM; a
    # chain's row blocks carry what its whole ops would)
    carry_plan = onchip_plan(graph, resolved, wl, onchip_carry, set(offloaded))
    op_keys = []
    rows = []
    clock = 0.0
    # the collector paused for the whole loop (each op's pricing pauses it too): the
    # ops' tasks are freed as they are priced (no reference cycle: a collection after
    # a 70B prefill finds nothing to free), and each pass would walk the caches and
    # timelines kept so far
    with gc_paused():
        for index, op in enumerate(bar(graph.ops, f"simulate on {resolved.preset}", unit="op")):
            carry = carry_plan.carries[index] if carry_plan is not None else onchip.NONE
            key, cost = price(op, graph, carry)
            op_keys.append(key)
            row = {"id": op.id, "name": op.name, "kind": op.kind, "layer": op.layer,
                   "module": op.module, "pruning": op.attrs.get("pruning", ""), "count": op.repeat,
                   "start_s": clock, "flops": op_flops(op) * op.repeat, **cost}
            if op.repeat != 1:  # the row is all the op's runs (one run: divide by count)
                for name in RUN_SUMS:
                    row[name] = cost[name] * op.repeat
            if carry_plan is not None:
                row.update(onchip_columns(op, graph, carry, carry_plan.stored_bytes) if carry
                           else _NO_ONCHIP)
            rows.append(row)
            clock += row["latency_s"]
    lanes = [price.timelines[k] for k in op_keys]
    streams = None
    if tiled or offloaded:
        plain_keys = op_keys
        if carry_plan is not None:  # the ops one after another carry what they may
            whole_plan = onchip_plan(graph, resolved, wl, onchip_carry)
            plain_keys = [price(op, graph, carry)[0]
                          for op, carry in zip(graph.ops, whole_plan.carries)]
        carries = (carry_plan.carries if carry_plan is not None
                   else [onchip.NONE] * len(graph.ops))
        host_lane, streams = schedule_streams(rows, lanes, graph, tiled, offloaded, price, wl,
                                              op_keys, plain_keys, carries)
    else:
        host_lane = issue_from_host(rows, graph, resolved, wl, price.table.static_power_w,
                                    [price.cache[k]["latency_s"] for k in op_keys],
                                    [price.floors.get(k, 0.0) for k in op_keys])
    from .report import Report  # noqa: PLC0415 (pandas: loaded on first need)

    return Report(rows, graph=graph, workload=wl, target=resolved,
                  dense_flops=graph.flops() if dense_flops is None else dense_flops,
                  fidelity=fidelity, lanes=lanes, memory=memory, host_lane=host_lane,
                  streams=streams,
                  onchip=onchip_summary(carry_plan, rows) if carry_plan is not None else None)


# a task's unit and label, by position (hwsim.engine.Task is a named tuple)
_UNIT = itemgetter(engine.Task._fields.index("unit"))
_LABEL = itemgetter(engine.Task._fields.index("label"))


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
        # the least time each op needs once its launch chain shrinks (its busiest unit's
        # work, its time at the power limit): what a queued launch cannot take off it
        self.floors: dict[tuple, float] = memo.setdefault("floors", {})
        # each key costed -> (that key as kept in the dicts above, its cost): an op
        # priced before gets the kept key, so that the run's later lookups by it
        # (timelines, floors, latencies: three an op) find it by identity, without
        # comparing two equal keys item by item (nested tuples of some 20 items)
        self.priced: dict[tuple, tuple[tuple, dict]] = memo.setdefault("priced", {})
        self.memo = memo

    def without_host_kv(self) -> "_Pricer":
        """A pricer for the same machine with its whole KV cache on the device
        (``target.without_host_kv``): the pieces of an attention whose host blocks
        stream in on their own stream. Its costs are kept apart (their own memo)."""
        spec = self.target.without_host_kv(self.spec)
        if spec is self.spec:
            return self
        return _Pricer(replace(self.resolved, spec=spec), self.tiling, self.fidelity,
                       self.memo.setdefault("device_kv", {}))

    def __call__(self, op, graph: Graph, carry=onchip.NONE) -> tuple[tuple, dict]:
        """``(key, cost)`` of ``op``; ``carry``: the tensors it finds in, or leaves in,
        the last-level cache (:mod:`hwsim.onchip`)."""
        target, spec = self.target, self.spec
        key = _signature(op, graph)
        if carry:
            key += (carry.key(),)
        data_key = target.cache_key(op, graph, spec)
        if data_key is not None:
            key += (data_key,)
        got = self.priced.get(key)
        if got is not None:
            return got
        if op.kind in EXPANDED_KINDS:  # no target costs it: expanded before simulation
            raise UnsupportedOpError(target.name, op.kind, op.line(graph))
        # One pause of the collector for the op's lowering, schedule and pricing (the
        # target's and the engine's pauses inside it leave it to this one): its tasks
        # are freed when _price returns, before the collector is back, so its first
        # pass finds the few objects kept (the cost, the timeline), not the tasks.
        with gc_paused():
            return self._price(key, op, graph, carry)

    def _price(self, key: tuple, op, graph: Graph, carry) -> tuple[tuple, dict]:
        """:meth:`__call__` for an op not priced yet, under ``key``."""
        target, spec, tiling = self.target, self.spec, self.tiling
        try:
            if self.fidelity == "event":
                tasks = (target.lower_carried(op, graph, spec, tiling, carry) if carry
                         else target.lower(op, graph, spec, tiling))
            else:  # only the tasks' summary is read: the target may make none
                tasks = target.lower_summary(op, graph, spec, tiling, carry)
        except UnsupportedOpError:
            raise
        except InputError as e:
            if e.problems[0].source:
                raise
            p = e.problems[0]
            raise InputError(f"{p.message}", source=self.resolved.source, field=p.field) from None
        detail = (target.describe(op, graph, spec, tiling, carry) if carry
                  else target.describe(op, graph, spec, tiling))
        return self.tasks_cost(key, tasks, detail,
                               int(target.executed_flops(op, graph, spec, tiling)))

    def tasks_cost(self, key: tuple, tasks: list | tuple, detail: str,
                   executed_flops: int = 0) -> tuple[tuple, dict]:
        """``(key, cost)`` of ``tasks`` (an op's, or a host transfer's), kept under
        ``key``: scheduled the fidelity's way, priced, with the task timeline. With the
        analytical fidelity ``tasks`` may be a target's ``(summary, count)``
        (``Target.lower_summary``: no task made)."""
        got = self.priced.get(key)
        if got is not None:
            return got
        target, spec = self.target, self.spec
        pools = target.pools(spec)
        if isinstance(tasks, tuple):
            summary, n_tasks = tasks
        else:
            # (the event fidelity reads the schedule's latency, not the critical path)
            summary = engine.summarize(tasks, pools, critical_path=self.fidelity != "event")
            n_tasks = len(tasks)
        if self.fidelity == "event":
            sched = engine.run_events(tasks, pools)
            latency = sched.latency_s
        else:
            sched = None
            latency = summary.analytical_latency_s
        nbytes = summary.bytes
        table = self.table
        dyn = table.dynamic_j(summary.actions, target.name)
        limit_w = target.power_limit_w(spec)
        dyn_j = sum(dyn.values())  # (the same sum each time it is read below: taken once)
        latency = power_capped_s(latency, dyn_j, table.static_power_w, limit_w)
        # an op never runs shorter than its busiest unit's work, nor than its dynamic
        # energy allows under the power limit (a hidden launch takes off neither)
        floor = power_capped_s(0.0, dyn_j, table.static_power_w, limit_w)
        self.floors[key] = floor if floor > summary.work_s else summary.work_s
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
            "executed_flops": executed_flops,
            "detail": detail,
        }
        # (the unit and label columns by item in C: a 32K prefill's ops have 600,000 tasks)
        self.timelines[key] = Lane(list(map(_UNIT, tasks)), list(map(_LABEL, tasks)),
                                   sched.starts_s, sched.ends_s) if sched else []
        cost["energy_j"] = dyn_j + static
        self.cache[key] = cost
        self.priced[key] = (key, cost)
        return key, cost


def onchip_plan(graph: Graph, resolved: ResolvedTarget, wl: Workload | None,
                onchip_carry: bool | None = None, cut: set[int] = frozenset()):
    """The plan of tensors carried between ops in the last-level cache
    (:func:`hwsim.onchip.plan`), or None when carrying is off (``onchip_carry``, else
    the workload's field) or the target has no cache for it. The ops in ``cut`` (run
    in pieces on streams, :func:`schedule_streams`) take no part."""
    if onchip_carry is None:  # the workload's field, or its default without one
        onchip_carry = (wl.onchip_carry if wl is not None
                        else Workload.__dataclass_fields__["onchip_carry"].default)
    if not onchip_carry:
        return None
    capacity = resolved.target.onchip_capacity_bytes(resolved.spec)
    if capacity <= 0:
        return None
    carries = resolved.target.carries
    if cut:
        ops = graph.ops
        cut_ops = {id(ops[i]) for i in cut}
        return onchip.plan(graph, capacity, lambda op: id(op) not in cut_ops and carries(op))
    return onchip.plan(graph, capacity, carries)


def onchip_columns(op, graph: Graph, carry, stored: dict[int, int] | None = None) -> dict:
    """A row's on-chip columns: the tensors it read from the cache, and the DRAM bytes
    that saved it (reads of those tensors, writes of its outputs kept there).
    ``stored``: the plan's stored bytes per tensor (:attr:`hwsim.onchip.Plan.stored_bytes`)."""
    if not carry:  # (most ops: nothing on chip, nothing saved)
        return dict(_NO_ONCHIP)
    # (joins of lists: a generator costs a frame more, a row per op)
    ins, outs = op.inputs, op.outputs
    read = " ".join([f"t{ins[p]}" for p in carry.inputs])
    kept = " ".join([f"t{outs[q]}" for q in carry.outputs])
    return {"onchip": (f"read {read}; kept {kept}" if read and kept
                       else f"read {read}" if read else f"kept {kept}" if kept else ""),
            "onchip_read_saved_bytes": onchip.onchip_read_bytes(op, graph, carry, stored),
            "onchip_write_saved_bytes": onchip.kept_write_bytes(op, graph, carry, stored)}


# the on-chip columns of a row with nothing on chip (copied into each such row)
_NO_ONCHIP = {"onchip": "", "onchip_read_saved_bytes": 0, "onchip_write_saved_bytes": 0}


def onchip_summary(plan, rows: list[dict]) -> dict:
    """The report's ``onchip`` field: the capacity, each tensor carried (bytes,
    producer, readers on chip, whether its DRAM write was left out) and the DRAM
    bytes saved in all."""
    return {"capacity_bytes": plan.capacity_bytes, "tensors": plan.tensors,
            "dram_read_saved_bytes": sum(r["onchip_read_saved_bytes"] for r in rows),
            "dram_write_saved_bytes": sum(r["onchip_write_saved_bytes"] for r in rows)}



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
    # (max(latency_s, capped) as a test: the same value; asked twice an op)
    capped = dynamic_j / (limit_w - static_w)
    return capped if capped > latency_s else latency_s


def schedule_streams(rows: list[dict], lanes: list, graph: Graph, tiled: dict[int, list],
                     offloaded: list[int], price: "_Pricer", wl: Workload | None,
                     op_keys: list[tuple], plain_keys: list[tuple],
                     carries: list) -> tuple[list, dict]:
    """Run ``graph`` on streams (:mod:`hwsim.overlap`): the chains that lead to its
    all-reduces cut into row blocks (tiling-AllReduce; ``tiled``: all-reduce index ->
    its chain), and its attentions in ``offloaded`` split between the keys on the
    device and blocks of host-resident keys copied in (CPU-GPU cooperation).

    Each chain is cut into the number of blocks (:data:`hwsim.overlap.CHUNKS`), and
    each offloaded attention into the number of host blocks
    (:data:`hwsim.overlap.BLOCKS`), whose pieces end first; every piece is an op the
    target prices (:class:`_Pricer`), every copy a transfer it prices
    (``target.transfer``). Then every op, piece or copy is a node of
    :func:`hwsim.engine.streams.run_streams`, in graph order, a chain block by block:
    an all-reduce block on the ``comm`` stream after its block; a copy on the ``copy``
    stream, block ``g`` (counted over the whole graph) after the attention over block
    ``g-2``, whose buffer it takes (double buffering: the next layer's first blocks
    come in while this layer finishes); everything else on ``compute``, each node
    after the nodes that produce its inputs; the host issues each node
    (:mod:`hwsim.runtime`). ``rows`` and ``lanes`` (the single-stream costs and task
    timelines, one per op, priced under ``op_keys``) are updated in place: a cut op's
    figures become its pieces' sums (``latency_s``: its time on its own stream),
    ``start_s``/``end_s`` its first piece's start and its last piece's end, a
    ``stream`` column says where it ran; a piece on another stream than compute
    draws static power only for the time the compute stream does not cover (the
    device draws it once). Returns the host lane and the report's ``streams``
    account: the run's latency (the last end on any stream), each stream's busy
    time, and per mechanism what it hid. ``plain_keys``: the ops' costs when none is
    cut (their own carries on chip), for the run one after another it is compared
    with; ``carries``: each op's on-chip carry (:mod:`hwsim.onchip`), which its row
    blocks keep."""
    from . import runtime  # noqa: PLC0415
    from .engine.streams import Node, exposed_s, run_streams  # noqa: PLC0415

    target, spec = price.target, price.spec
    platform = runtime.PLATFORMS.get(target.host_platform(spec))
    runtime_name = wl.runtime if wl is not None else "library"
    overlaps = platform.overlaps if platform is not None else True
    static_w = price.table.static_power_w

    # each cut op: its pieces as [(row, stream, key, cost, deps within the op; None: the
    # op's inputs)]
    plan: dict[int, list] = {}  # first op of a chain, or the attention -> its pieces
    cut_rows: set[int] = set()
    chosen = price.memo.setdefault("tiling_allreduce", {})
    for ai, chain in tiled.items():
        sig = tuple(op_keys[i] for i in chain)
        best = chosen.get(sig)
        if best is None:
            for c in overlap.candidates(graph, chain):
                pieces = []  # as plan's, but each piece's position in the chain for its row
                for block in overlap.cut(graph, chain, c):
                    for n, (i, (piece, g)) in enumerate(zip(chain, block)):
                        # a block finds on chip, and leaves there, what its op does
                        key, cost = price(piece, g, carries[i])
                        pieces.append((n, "comm" if i == ai else "compute", key, cost,
                                       (len(pieces) - 1,) if n else None))
                t = run_streams([Node(p[1], p[3]["latency_s"], p[4] or ())
                                 for p in pieces]).latency_s
                if best is None or t < best[0]:
                    best = (t, pieces)
            chosen[sig] = best
        plan[chain[0]] = [(chain[n], *rest) for n, *rest in best[1]]
        cut_rows.update(chain)
    if offloaded:
        fraction = target.host_kv_fraction(spec)
        device_price = price.without_host_kv()
        chosen = price.memo.setdefault("host_kv", {})
        for i in offloaded:
            op = graph.ops[i]
            sig = price(op, graph)[0]
            best = chosen.get(sig)
            if best is None:
                for blocks in overlap.BLOCKS:
                    pieces = _cooperation(overlap.split(graph, op, fraction, blocks), i,
                                          device_price, price)
                    if best is not None and len(pieces) == len(best[1]):
                        break  # fewer host keys than blocks: nothing more to try
                    t = run_streams([Node(p[1], p[3]["latency_s"], p[4] or ())
                                     for p in pieces]).latency_s
                    if best is None or t < best[0]:
                        best = (t, pieces)
                chosen[sig] = best
            plan[i] = [(i, *p[1:]) for p in best[1]]
            cut_rows.add(i)

    # the nodes, in graph order: (row, stream, key, cost, deps, repeat, kind)
    made: dict[int, int] = {}  # tensor id -> the node that writes it (read whole after it)
    nodes: list[tuple] = []
    host_blocks: list[int] = []  # the attention node over each host block, in order
    copies_in = 0

    def deps_of(op) -> tuple[int, ...]:
        return tuple(sorted({made[t] for t in op.inputs if t in made}))

    for i, op in enumerate(graph.ops):
        if i in plan:
            outer, base = deps_of(op), len(nodes)
            for row, stream, key, cost, local in plan[i]:
                # (deps within the op; None: the op's own inputs)
                deps = outer if local is None else tuple(base + d for d in local)
                kind = "copy" if stream == "copy" else graph.ops[row].kind
                if key[0] == "h2d":  # double buffering, across ops: block g frees buffer g % 2
                    if copies_in >= 2:
                        deps = deps + (host_blocks[copies_in - 2],)
                    copies_in += 1
                elif key[0] == "host block":
                    host_blocks.append(len(nodes))
                    key = key[1]
                nodes.append((row, stream, key, cost, deps, 1, kind))
                for t in graph.ops[row].outputs:
                    if stream != "copy":
                        made[t] = len(nodes) - 1
            continue
        if i in cut_rows:
            continue
        key = op_keys[i]  # (as priced for its row, with what it carries on chip)
        nodes.append((i, "compute", key, price.cache[key], deps_of(op), op.repeat, op.kind))
        for t in op.outputs:
            made[t] = len(nodes) - 1
    kinds = [n[6] for n in nodes]
    host_s = runtime.host_times(kinds, platform, runtime_name)
    rest_s = runtime.repeat_host_times(kinds, platform, runtime_name)
    # a GPU op's launch, queued early, overlaps what it waits for; never below its work
    # (without a host lane every op was enqueued at t = 0: issue_from_host)
    queued = target.queued_launch_s(spec)
    floors = {**price.memo.get("device_kv", {}).get("floors", {}), **price.floors}

    def hide(key, d: float) -> float:
        return min(queued, max(0.0, d - floors.get(key, d))) if queued > 0 else 0.0

    sched = run_streams([Node(stream, cost["latency_s"], deps, h, rep, hr, graph.ops[i].name,
                              hide(key, cost["latency_s"]))
                         for (i, stream, key, cost, deps, rep, _), h, hr
                         in zip(nodes, host_s, rest_s)], overlaps=overlaps)

    timelines = price.timelines
    dev_timelines = price.memo.get("device_kv", {}).get("lanes", {})
    span = [(sched.start_s[j], sched.end_s[j]) for j in range(len(nodes))]
    compute = [span[j] for j, n in enumerate(nodes) if n[1] == "compute"]
    by_row: dict[int, list[int]] = {}
    for j, n in enumerate(nodes):
        by_row.setdefault(n[0], []).append(j)
    busy: dict[str, float] = {}
    pieces_at: dict[int, list] = {}  # a cut op's row -> (start_s, end_s, stream) of each piece
    for i, row in enumerate(rows):
        js = by_row[i]
        own = [j for j in js if nodes[j][1] == "compute"] or js
        stream = nodes[own[0]][1]
        row["stream"] = stream
        row["start_s"] = min(span[j][0] for j in js)
        row["end_s"] = max(span[j][1] for j in js)
        row["host_s"] = sum(host_s[j] + (nodes[j][5] - 1) * rest_s[j] for j in js)
        row["host_wait_s"] = sum(sched.wait_s[j] for j in own) if stream == "compute" else 0.0
        hidden = sum(sched.hidden_s[j] for j in js)
        if queued > 0:
            row["launch_hidden_s"] = hidden
        if i in cut_rows:  # its pieces' sums; its time is its time on its own stream
            for name in RUN_SUMS + ("tasks",):
                row[name] = sum(nodes[j][3][name] for j in js)
            row["latency_s"] = sum(nodes[j][3]["latency_s"] for j in own)
            # the merge of an offloaded attention's partial results is work the model's
            # op does not count: counted beside it (as a pruning method's overhead ops)
            row["flops"] += sum(nodes[j][3]["executed_flops"] for j in js
                                if nodes[j][2][0] == "reduce" and i in offloaded)
            row["bound"] = max((nodes[j][3] for j in own), key=lambda c: c["latency_s"])["bound"]
            what = (f"tiling-AllReduce: {len(own)} row block{'s' if len(own) > 1 else ''}"
                    if i not in offloaded else
                    f"host KV: {sum(1 for j in js if nodes[j][2][0] == 'h2d')} block(s) "
                    f"copied in, double-buffered")
            row["detail"] = "; ".join(filter(None, (nodes[own[-1]][3]["detail"], what)))
            lanes[i] = _shifted([timelines.get(nodes[j][2]) or dev_timelines.get(nodes[j][2])
                                 for j in js],
                                [span[j][0] - sched.hidden_s[j] - row["start_s"] for j in js])
            pieces_at[i] = [(*span[j], nodes[j][1]) for j in js]
            waited = 0.0  # the compute stream's idle time under this op's other pieces
            for j in js:  # a piece off the compute stream: static power where uncovered
                if nodes[j][1] != "compute":
                    row["energy_j"] -= nodes[j][3]["energy_static_j"]
                    row["energy_static_j"] -= nodes[j][3]["energy_static_j"]
                    uncovered = exposed_s([span[j]], compute)
                    row["energy_j"] += static_w * uncovered
                    row["energy_static_j"] += static_w * uncovered
                    waited += uncovered
            if stream == "compute":
                row["stream_wait_s"] = waited
        if row["host_wait_s"]:
            row["energy_static_j"] += static_w * row["host_wait_s"]
            row["energy_j"] += static_w * row["host_wait_s"]
        if hidden:  # launches taken in while what they waited for ran: off the op's time
            row["latency_s"] -= sum(sched.hidden_s[j] for j in own)
            row["energy_static_j"] -= static_w * hidden
            row["energy_j"] -= static_w * hidden
        for j in js:
            busy[nodes[j][1]] = (busy.get(nodes[j][1], 0.0) + nodes[j][3]["latency_s"]
                                 * nodes[j][5] - sched.hidden_s[j])

    # the same ops one after another, each whole (an all-reduce after each projection,
    # the host part of the KV cache copied in by the attention itself)
    op_kinds = [op.kind for op in graph.ops]
    whole = [(key, price.cache[key]) for key in plain_keys]
    plain = run_streams([Node("compute", cost["latency_s"], (), h, op.repeat, hr, "",
                              hide(key, cost["latency_s"]))
                         for op, (key, cost), h, hr in zip(
                             graph.ops, whole, runtime.host_times(op_kinds, platform, runtime_name),
                             runtime.repeat_host_times(op_kinds, platform, runtime_name))],
                        overlaps=overlaps)
    streams: dict[str, Any] = {"latency_s": sched.latency_s, "busy_s": busy,
                               "plain_latency_s": plain.latency_s, "pieces": pieces_at}
    for name, stream, rows_of in (("tiling_allreduce", "comm", list(tiled)),
                                  ("host_kv", "copy", offloaded)):
        if not rows_of:
            continue
        moved = [span[j] for j, n in enumerate(nodes) if n[1] == stream]
        total = math.fsum(e - s0 for s0, e in moved)
        exposed = exposed_s(moved, compute)
        # how many ops were cut into how many blocks (all-reduce blocks, host blocks)
        blocks = Counter(sum(1 for j in by_row[i] if nodes[j][1] == stream
                             and (stream == "comm" or nodes[j][2][0] == "h2d"))
                         for i in rows_of)
        streams[name] = {f"{stream}_s": total, f"exposed_{stream}_s": exposed,
                         "hidden_share": min(1.0, max(0.0, 1.0 - exposed / total))
                         if total > 0 else 0.0,
                         "blocks": dict(sorted(blocks.items()))}
    if tiled:
        ta = streams["tiling_allreduce"]
        ta.update({"chains": len(tiled), "ring_latency_s": plain.latency_s,
                   "gain_s": plain.latency_s - sched.latency_s})
    if offloaded:
        streams["host_kv"].update({"attentions": len(offloaded),
                                   "host_kv_fraction": target.host_kv_fraction(spec)})
    return sched.host_lane, streams


def _cooperation(split, row: int, device_price: "_Pricer", price: "_Pricer") -> list[tuple]:
    """The pieces of an attention whose host keys stream in (:func:`hwsim.overlap.split`),
    in issue order, as (row, stream, key, cost, deps within the op, None for the op's
    inputs; the host's blocks were written before this call and wait for nothing): the first two
    blocks' copies, the attention over the device's keys (which needs no copy), then
    each host block's attention after its copy, each followed by the copy of the block
    two ahead (into the buffer it frees), the merge after every partial result, and the
    new entries' write-back after the device's attention."""
    def copy(nbytes: float, direction: str) -> tuple:
        tasks = price.target.transfer(nbytes, direction, price.spec)
        return price.tasks_cost((direction, nbytes), tasks, f"{direction} copy over PCIe")

    pieces: list[tuple] = []
    copy_at: dict[int, int] = {}
    host = split.host
    for b in range(min(2, len(host))):
        copy_at[b] = len(pieces)
        pieces.append((row, "copy", *copy(split.copy_in_bytes[b], "h2d"), ()))
    device = len(pieces)
    pieces.append((row, "compute", *device_price(*split.device), None))
    partial = [device]
    for b, (op, g) in enumerate(host):
        key, cost = device_price(op, g)
        partial.append(len(pieces))
        pieces.append((row, "compute", ("host block", key), cost, (copy_at[b],)))
        if b + 2 < len(host):
            copy_at[b + 2] = len(pieces)
            pieces.append((row, "copy", *copy(split.copy_in_bytes[b + 2], "h2d"),
                           (len(pieces) - 1,)))
    if split.combine is not None:
        pieces.append((row, "compute", *device_price(*split.combine), tuple(partial)))
    if split.copy_out_bytes:
        pieces.append((row, "copy", *copy(split.copy_out_bytes, "d2h"), (device,)))
    return pieces


def _shifted(timelines: list, offsets: list[float]) -> Lane | list:
    """Pieces' task timelines as one op's lane, each moved to its piece's start
    (relative to the op's start)."""
    if not any(timelines):
        return []
    units, labels, starts, ends = [], [], [], []
    for lane, off in zip(timelines, offsets):
        if not lane:
            continue
        units.extend(lane.units)
        labels.extend(lane.labels)
        starts.extend(s + off for s in lane.starts_s)
        ends.extend(e + off for e in lane.ends_s)
    return Lane(units, labels, starts, ends)


def issue_from_host(rows: list[dict], graph: Graph, resolved: ResolvedTarget,
                    wl: Workload | None, static_power_w: float,
                    run_latency_s: list[float] | None = None,
                    floor_s: list[float] | None = None) -> list:
    """Place the ops behind the host that issues them (:mod:`hwsim.runtime`).

    The host lane and the device lane run as the engine runs two chains of tasks
    (:func:`hwsim.runtime.schedule`); each row's ``start_s``
    becomes its start on the device and ``host_wait_s`` the time the device idled
    before it, waiting for the host (drawing its static power, added to the row's
    energy). On a GPU whose ops begin with a launch the device takes in while the
    previous kernel runs (:meth:`hwsim.targets.Target.queued_launch_s`), an op
    enqueued early spends part of that launch behind the op before it: the row's
    ``launch_hidden_s``, taken off its latency and its static energy (its timeline
    starts that much before ``start_s``, overlapping the previous op's tail), never
    below ``floor_s`` (the op's own work). A repeated op's row (``count`` runs of
    ``run_latency_s`` each, default its latency) gets its first run's start and the
    waits before and between its runs.
    A target without a host lane (``host_platform`` "": a roofline with ``host:
    none``, an accelerator that sequences its own ops) has every op enqueued at t = 0,
    by an ideal host that costs nothing: on such a target with queued launches each op
    after the first takes its launch in behind the op before, all but the device's gap
    between kernels, whatever the workload's runtime; so the hostless schedule is below
    every host's schedule of the same ops (the issue times only ever delay a kernel).
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
    hide = target.queued_launch_s(spec)
    if not any(host_s) and not any(rest_s) and not hide > 0:
        return []  # the ops back to back, each as priced
    if run_latency_s is None:
        run_latency_s = [r["latency_s"] for r in rows]
    if hide > 0:  # never below the op's own work (floor_s): the launch is what overlaps
        floor_s = floor_s or [0.0] * len(rows)
        # min(hide, max(0.0, d - f)) for each op, as tests (the values min() and max()
        # keep; two calls an op otherwise)
        hides = []
        for d, f in zip(run_latency_s, floor_s):
            room = d - f
            room = room if room > 0.0 else 0.0
            hides.append(room if room < hide else hide)
        hide = hides
    sched = runtime.schedule([op.name for op in graph.ops], host_s, run_latency_s,
                             overlaps=platform.overlaps if platform is not None else True,
                             repeats=repeats, repeat_host_s=rest_s,
                             queued_launch_s=hide)
    hidden_s = sched.hidden_s or [0.0] * len(rows)
    for row, h, h_rest, n, start, wait, hidden in zip(rows, host_s, rest_s, repeats,
                                                      sched.start_s, sched.wait_s, hidden_s):
        row["start_s"] = start
        row["host_s"] = h + (n - 1) * h_rest
        row["host_wait_s"] = wait
        if wait:
            row["energy_static_j"] += static_power_w * wait
            row["energy_j"] += static_power_w * wait
        if sched.hidden_s:  # a column of every row on a GPU with queued launches
            row["launch_hidden_s"] = hidden
        if hidden:  # launches taken in while the op before ran: off this op's time
            row["latency_s"] -= hidden
            row["energy_static_j"] -= static_power_w * hidden
            row["energy_j"] -= static_power_w * hidden
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
