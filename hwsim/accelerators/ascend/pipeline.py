"""One core's double-buffered load → compute → store pipeline, as a few tasks.

A core works through a sequence of *items* (GEMM output tiles, UB tiles of a
vector kernel, query blocks of an attention), each made of one or more
*stages* (the k stages of a tile through L1, the key/value blocks of a query
block). On the chip, the load of stage s+1 overlaps the compute of stage s
(two buffers), and a finished item is stored while the next one is computed.

Events are tiles, never cycles: the stages are cut into a handful of segments
S_0 = the first stage alone (the pipeline fill), then about equal segments,
then the last stage alone (the drain).
The load task L_g carries the rest of segment g-1 after its first stage plus
the first stage of segment g (the one-stage look-ahead of double buffering),
so compute C_g waits for L_g, L_g runs while C_{g-1} computes, and L_g may
start once C_{g-2} has freed its buffer. Stores mirror the loads: the store
task after C_g carries what C_g's last stage and C_{g+1}'s other stages
write, so it runs beside C_{g+1}. The time therefore comes out as
fill + Σ max(compute, load, store) per segment + drain.

At the analytical fidelity a GEMM's or a vector kernel's core makes no task:
:func:`closed_pipeline` adds what its tasks would add up to (the same ranges, bytes and
task count; the units' totals; an end from three chains of tasks the event run executes
in order), a lower bound on the event schedule within the bound its docstring states.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate
from operator import sub

from hwsim.engine import Accumulator

from .chip import _NO_ACTIONS, _NO_BYTES, HBM_UNIT, Builder, clean_deps

SEGMENTS = 6


@dataclass
class Item:
    """One item's work: loads (HBM misses, L2 hits), compute, its output store."""

    stages: int = 1
    load_hbm: float = 0.0
    load_l2: float = 0.0
    mask_hbm: float = 0.0
    compute_s: float = 0.0
    store_bytes: float = 0.0
    actions: dict = field(default_factory=dict)
    bound: str = "compute"
    streamed: bool = False  # every stage stores its share (a vector tile), not the last
    shadow_s: float = 0.0  # busy time of companion units (the AIVs of an attention chain)
    pad_hbm: float = 0.0  # burst bytes the MTE2 spends beyond the data: time, not traffic
    pad_l2: float = 0.0
    load_l2_slow: float = 0.0  # L2 hits the MTE2 moves at one HBM stream's rate

    def absorb(self, o: "Item") -> None:
        """Add ``o`` to this item (consecutive items of one core, merged)."""
        self.stages += o.stages
        self.load_hbm += o.load_hbm
        self.load_l2 += o.load_l2
        self.mask_hbm += o.mask_hbm
        if o.bound != self.bound and o.compute_s > self.compute_s:
            self.bound = o.bound
        self.compute_s += o.compute_s
        self.store_bytes += o.store_bytes
        self.shadow_s += o.shadow_s
        self.pad_hbm += o.pad_hbm
        self.pad_l2 += o.pad_l2
        self.load_l2_slow += o.load_l2_slow
        self.streamed = True  # its output leaves tile by tile, spread over its stages
        for a, v in o.actions.items():
            self.actions[a] = self.actions.get(a, 0.0) + v


def append(items: list[Item], item: Item, cap_stages: int) -> None:
    """Append ``item`` to a core's list, merged into the last one while it stays small."""
    if items and len(items) > 1 and items[-1].stages + item.stages <= cap_stages:
        items[-1].absorb(item)
    else:
        items.append(Item(item.stages, item.load_hbm, item.load_l2, item.mask_hbm,
                          item.compute_s, item.store_bytes, dict(item.actions), item.bound,
                          item.streamed, item.shadow_s, item.pad_hbm, item.pad_l2,
                          item.load_l2_slow))


def same_work(per_core: list[list[Item]]) -> list[list[int]]:
    """The cores in groups of equal item lists (in order of their first member): a
    group's pipelines are the same, so it is emitted once (``Builder.group``)."""
    groups: dict[tuple, list[int]] = {}
    for c, items in enumerate(per_core):
        if not items:
            continue
        key = tuple((it.stages, it.load_hbm, it.load_l2, it.mask_hbm, it.compute_s,
                     it.store_bytes, tuple(it.actions.items()), it.bound, it.streamed,
                     it.shadow_s, it.pad_hbm, it.pad_l2, it.load_l2_slow) for it in items)
        groups.setdefault(key, []).append(c)
    return list(groups.values())


def store_split(nb: float, frac: float, hbm_rate: float, l2_rate: float
                ) -> tuple[float, float, float, bool]:
    """:meth:`Builder.store`'s numbers for ``nb`` bytes, ``frac`` of them to HBM at
    ``hbm_rate``, the rest to L2 at ``l2_rate`` (the rates already capped by the
    unit's): (HBM bytes, L2 bytes, the pipe's seconds (at least 0), memory-bound?)."""
    hbm = float(nb) * frac
    l2b = float(nb) - hbm
    hbm_s = hbm / hbm_rate
    l2_s = l2b / l2_rate
    d = hbm_s + l2_s
    return hbm, l2b, d if d > 0.0 else 0.0, hbm_s >= l2_s and hbm_s > 0


FIELDS = ("load_hbm", "load_l2", "mask_hbm", "compute_s", "streamed_store", "shadow_s",
          "pad_hbm", "pad_l2", "load_l2_slow")


def emit_pipeline(bld: Builder, items: list[Item], *, load_unit: str, compute_unit: str,
                  store_unit: str, store_bw: float, store_hbm_fraction: float = 1.0, deps=(),
                  dest: str = "l1", src: str = "l0", label: str = "",
                  segments: int = SEGMENTS, shadow_units: tuple[str, ...] = (),
                  shadow_label: str = "", compute_bound: str | None = None,
                  closed_form: bool = False, memo: dict | None = None) -> tuple[int, ...]:
    """Emit the tasks of one core; returns the indices of its last tasks.

    ``shadow_units`` (the vector cores of an attention chain) get, beside each
    compute segment, a task as long as the items' ``shadow_s`` in it: the lanes
    show their work, whose timing the compute task already includes.
    ``compute_bound`` overrides the compute tasks' bound (a kernel limited by
    the shared HBM rather than by its compute units says ``memory``).
    ``store_hbm_fraction``: the share of the stored bytes that goes to HBM (1 for
    an op's output; an intermediate the op's next kernel reads may stay in L2).
    ``closed_form``: at the analytical fidelity (an :class:`~hwsim.engine.Accumulator`
    sink), the core's pipeline goes in as :func:`closed_pipeline`'s few sums, not as
    its tasks (a GEMM's or a vector kernel's; no shadow units). ``memo``: see
    :func:`_emit_tasks`.
    """
    if not items:
        return ()
    if len(items) == 1 and items[0].stages <= 1 and not shadow_units:
        return _one_stage(bld, items[0], compute_unit, store_bw, store_hbm_fraction, deps,
                          dest, src, label, compute_bound)
    if summed(bld, closed_form) and not shadow_units and dest not in ("hbm", "l2") \
            and src not in ("hbm", "l2"):
        acts: dict[str, float] = {}
        if len(items) == 1:  # (a vector kernel's core: its one item's columns, its static kept)
            it = items[0]
            hbm_col, l2_col = [it.load_hbm], [it.load_l2]
            for a, v in it.actions.items():
                acts[a] = 0.0 + v
            rare = ([it.mask_hbm], [it.pad_hbm], [it.pad_l2], [it.load_l2_slow]) \
                if it.mask_hbm or it.pad_hbm or it.pad_l2 or it.load_l2_slow else None
            static = _one_item_static(bld.chip, it, store_bw, store_hbm_fraction, segments,
                                      compute_bound)
        else:
            cols = tuple(map(list, zip(*((it.stages, it.load_hbm, it.load_l2, it.compute_s,
                                          it.store_bytes, it.streamed, it.bound)
                                         for it in items))))
            hbm_col, l2_col = cols[1], cols[2]
            for it in items:
                for a, v in it.actions.items():
                    acts[a] = acts.get(a, 0.0) + v
            rare = None
            if any(it.mask_hbm or it.pad_hbm or it.pad_l2 or it.load_l2_slow for it in items):
                rare = tuple(map(list, zip(*((it.mask_hbm, it.pad_hbm, it.pad_l2,
                                              it.load_l2_slow) for it in items))))
            static = closed_static(bld.chip, cols[0], cols[3], cols[4], cols[5], cols[6],
                                   store_bw=store_bw, store_hbm_fraction=store_hbm_fraction,
                                   segments=segments, compute_bound=compute_bound)
        return closed_pipeline(bld.sink, bld.chip, bld.copies, static, hbm_col, l2_col, acts,
                               rare, load_unit=load_unit, compute_unit=compute_unit,
                               store_unit=store_unit, deps=tuple(deps), dest=dest, src=src)
    plan = _plan(items, segments)
    loads = _load_sums(items, plan[6], plan[7])
    # whole bytes per task, rounded so that the segments add up to the items' totals
    for name in ("load_hbm", "load_l2", "mask_hbm"):
        _integral(loads, name)
    return _emit_tasks(bld, plan, loads, load_unit=load_unit, compute_unit=compute_unit,
                       store_unit=store_unit, store_bw=store_bw,
                       store_hbm_fraction=store_hbm_fraction, deps=deps, dest=dest, src=src,
                       label=label, shadow_units=shadow_units, shadow_label=shadow_label,
                       compute_bound=compute_bound, memo=memo)


def _one_item_static(chip, it: Item, store_bw: float, store_hbm_fraction: float,
                     segments: int, compute_bound: str | None) -> tuple:
    """:func:`closed_static` of a core of one item (a vector kernel's core group), kept in
    :data:`_ONE_ITEM_STATICS` by what it is a function of: the chip, the item's stages,
    compute seconds, store bytes, streamed flag and bound, and the store's arguments (a
    model's layers repeat many of their vector kernels' core shares: 121 of the 559 on
    the Llama-2-7B distinct-layer prefill). Its numbers are products of counts, never
    -0.0 (equal to 0.0 as a key)."""
    key = (chip, it.stages, it.compute_s, it.store_bytes, it.streamed, it.bound, store_bw,
           store_hbm_fraction, segments, compute_bound)
    got = _ONE_ITEM_STATICS.get(key)
    if got is None:
        if len(_ONE_ITEM_STATICS) > 4096:
            _ONE_ITEM_STATICS.clear()
        got = _ONE_ITEM_STATICS[key] = closed_static(
            chip, [it.stages], [it.compute_s], [it.store_bytes], [it.streamed], [it.bound],
            store_bw=store_bw, store_hbm_fraction=store_hbm_fraction, segments=segments,
            compute_bound=compute_bound)
    return got


_ONE_ITEM_STATICS: dict[tuple, tuple] = {}  # _one_item_static's, by its arguments' values


def _plan(items: list[Item], segments: int) -> tuple:
    """What :func:`emit_pipeline`'s tasks take from the items but their loads: ``(n_seg,
    n_load, compute sums, whole store bytes, actions, compute seconds by bound, offsets,
    load bounds)`` per segment (a GEMM's core groups share all of it but the loads:
    :func:`gemm_plan`)."""
    offs = [0]
    for it in items:
        offs.append(offs[-1] + max(1, it.stages))
    total = offs[-1]
    bounds, load_bounds, store_bounds = _ranges(total, segments)
    n_seg = len(bounds) - 1
    # (the sums each task reads, range by range: those of _sums, fewer of them)
    comp = _compute_sums(items, offs, bounds)
    # stores and actions follow the compute segment in which an item completes
    stores = [0.0] * n_seg
    acts: list[dict] = [dict() for _ in range(n_seg)]
    by_bound: list[dict] = [dict() for _ in range(n_seg)]
    # (the segment of an item's last stage only grows along the items: a cursor, not a
    # bisection per item; the same adds in the same order)
    g = 0
    nxt = bounds[1] if n_seg else 0
    ag, bg = acts[0], by_bound[0]
    for i, it in enumerate(items):
        last = offs[i + 1] - 1
        if last >= nxt:
            while last >= bounds[g + 1]:
                g += 1
            nxt = bounds[g + 1]
            ag, bg = acts[g], by_bound[g]
        if not it.streamed:
            stores[g] += it.store_bytes
        for a, v in it.actions.items():
            ag[a] = ag.get(a, 0.0) + v
        bg[it.bound] = bg.get(it.bound, 0.0) + it.compute_s
    # a streamed store (vector tiles) leaves stage by stage, one stage behind the compute:
    # the task after C_g carries the last stage of segment g and the others of segment g+1,
    # running beside C_{g+1}; the last task only the last stage (the drain)
    streamed = _store_sums(items, offs, store_bounds)
    for g in range(n_seg):
        stores[g] += streamed[g]
    stores = [x["s"] for x in _integral([{"s": v} for v in stores], "s")]
    return n_seg, len(load_bounds) - 1, comp, stores, acts, by_bound, offs, load_bounds


def _emit_tasks(bld: Builder, plan: tuple, loads: list[dict], *, load_unit: str,
                compute_unit: str, store_unit: str, store_bw: float,
                store_hbm_fraction: float, deps, dest: str, src: str, label: str,
                shadow_units: tuple[str, ...] = (), shadow_label: str = "",
                compute_bound: str | None = None, memo: dict | None = None
                ) -> tuple[int, ...]:
    """:func:`emit_pipeline`'s tasks from its :func:`_plan` and its loads (whole bytes
    per load range); returns the indices of its last tasks. ``memo`` (a dict the caller
    keeps across its pipelines, a GEMM's core groups): the load and store tasks made
    before, by their numbers (:func:`_kept_fields`)."""
    n_seg, n_load, comp, stores, acts, by_bound = plan[:6]
    if DIRECT_SUMMARY and type(bld.sink) is Accumulator:
        return _tasks_summary(bld.sink, bld.chip, bld.copies, loads, comp, stores, acts,
                              by_bound, n_seg, n_load, load_unit, compute_unit, store_unit,
                              store_bw, store_hbm_fraction, tuple(deps), dest, src,
                              shadow_units, compute_bound)
    # the tasks Builder.load, add and store would make, their ten fields gathered in
    # ``made`` and handed over at the end (Builder.put_all): a task's index is ``n0``
    # plus the tasks made before it. The pipeline's deps are earlier tasks than its
    # own, so a load's (the deps, then the compute task two back) stay sorted.
    made: list[tuple] = []
    mk = made.append
    n0 = bld.next_index()
    k = bld.copies
    deps = clean_deps(deps)
    labels = bld.sink is None  # (an analytical build reads no label)
    lb_load, lb_store = f"{label} load", f"{label} store"
    lb_comp = label if labels else ""
    lb_shadow = (shadow_label or label) if labels else ""
    load_fields, store_fields = bld.load_fields, bld.store_fields
    if memo is not None:
        load_fields, store_fields = _kept_fields(load_fields, store_fields, memo, k)
    load_idx: list[tuple[int, ...]] = []
    comp_idx: list[int] = []
    for g in range(n_load):
        ld = loads[g]
        i = n0 + len(made)
        load_idx.append((i, i + 1) if load_fields(
            mk, load_unit, ld["load_hbm"], ld["load_l2"],
            deps + (comp_idx[g - 2],) if g >= 2 else deps, dest, lb_load, ld["mask_hbm"],
            ld["pad_hbm"] + ld["load_l2_slow"], ld["pad_l2"], ld["load_l2_slow"]) else (i,))
        if g < n_seg:
            seg = by_bound[g]
            bound = compute_bound or (max(seg, key=seg.get) if seg else "compute")
            li = load_idx[g]
            d = comp[g]["compute_s"]
            comp_idx.append(n0 + len(made))
            mk((compute_unit, d if d > 0.0 else 0.0, _NO_BYTES, acts[g] or _NO_ACTIONS, li,
                bound, "", lb_comp, k, k > 1 and compute_unit == HBM_UNIT))
            for unit in shadow_units:
                d = comp[g]["shadow_s"]
                if d > 0:
                    mk((unit, d, _NO_BYTES, _NO_ACTIONS, li, bound, "", lb_shadow, k,
                        k > 1 and unit == HBM_UNIT))
            if stores[g] and g < n_seg - 1:
                store_fields(mk, store_unit, stores[g], store_bw, store_hbm_fraction,
                             (comp_idx[g],), src, lb_store)
    end = clean_deps((comp_idx[-1], *load_idx[-1]))
    if stores[-1]:
        i = n0 + len(made)
        out = (i, i + 1) if store_fields(mk, store_unit, stores[-1], store_bw,
                                         store_hbm_fraction, end, src, lb_store) else (i,)
    elif max(load_idx[-1]) > comp_idx[-1]:
        out = (n0 + len(made),)
        mk((compute_unit, 0.0, _NO_BYTES, _NO_ACTIONS, end, "compute", "", lb_comp, k,
            k > 1 and compute_unit == HBM_UNIT))
    else:
        out = (comp_idx[-1],)
    bld.put_all(made)
    return out


def _kept_fields(load_fields, store_fields, memo: dict, k: int) -> tuple:
    """:meth:`Builder.load_fields` and :meth:`~Builder.store_fields` for ``k`` copies,
    their tasks kept in ``memo`` by what decides them but the unit and the deps (the
    bytes, with their type: an int and a float of one value make different tasks, and
    the other arguments): a task made before comes back with this call's unit, deps
    and copies (its bytes and actions mappings shared: no one changes a task's)."""

    def again(mk, made: list, unit: str, deps: tuple) -> bool:
        t = made[0]
        mk((unit, t[1], t[2], t[3], deps, t[5], t[6], t[7], k, k > 1 and unit == HBM_UNIT))
        if len(made) == 1:
            return False
        t = made[1]
        mk((HBM_UNIT, t[1], t[2], t[3], deps, t[5], t[6], t[7], k, k > 1))
        return True

    def load(mk, unit: str, hbm_bytes, l2_bytes, deps: tuple, dest: str, label: str,
             mask_bytes, hbm_pad, l2_pad, l2_counted) -> bool:
        key = ("load", hbm_bytes, l2_bytes, hbm_bytes.__class__, l2_bytes.__class__, dest,
               label, mask_bytes, hbm_pad, l2_pad, l2_counted)
        made = memo.get(key)
        if made is None:
            made = memo[key] = []
            load_fields(made.append, unit, hbm_bytes, l2_bytes, deps, dest, label,
                        mask_bytes, hbm_pad, l2_pad, l2_counted)
        return again(mk, made, unit, deps)

    def store(mk, unit: str, nbytes, unit_bw: float, hbm_fraction: float, deps: tuple,
              src: str, label: str) -> bool:
        key = ("store", nbytes, nbytes.__class__, unit_bw, hbm_fraction, src, label)
        made = memo.get(key)
        if made is None:
            made = memo[key] = []
            store_fields(made.append, unit, nbytes, unit_bw, hbm_fraction, deps, src, label)
        return again(mk, made, unit, deps)

    return load, store


DIRECT_SUMMARY = True  # False: an analytical pipeline goes through Builder.load, add, store


def summed(bld: Builder, closed_form: bool) -> bool:
    """Whether a pipeline asked to be summed in closed form is (an analytical build,
    whose sink is an :class:`~hwsim.engine.Accumulator`): :func:`closed_pipeline`."""
    return closed_form and type(bld.sink) is Accumulator


def _ranges(total: int, segments: int) -> tuple[list[int], list[int], list[int]]:
    """The compute segments', the loads' and the stores' ranges of stages, for ``total``
    stages (kept per ``(total, segments)``: a pure function, asked for by every core).

    Segments: the first stage alone (the fill), the middle in about ``segments``
    equal segments, the last stage alone (the drain: only its store is left when the
    loads are done). Loads: L_0 = S_0, L_g = [a_{g-1} + 1, a_g + 1), the last one up
    to the end. Stores (a streamed item's, one stage behind the compute): the task
    after C_g carries the last stage of segment g and the others of segment g+1."""
    got = _RANGES.get((total, segments))
    if got is not None:
        return got
    bounds = [0, 1] if total > 1 else [0]
    rest = total - 2
    k = max(1, min(segments, rest)) if rest > 0 else 0
    for s in range(1, k + 1):
        bounds.append(1 + round(s * rest / k))
    if bounds[-1] != total:
        bounds.append(total)
    n_seg = len(bounds) - 1
    load_bounds = sorted({0, 1, total, *(min(total, bounds[g] + 1) for g in range(1, n_seg))})
    store_bounds = sorted({0, total, *(bounds[g] - 1 for g in range(1, n_seg + 1))})
    if len(_RANGES) > 4096:
        _RANGES.clear()
    got = _RANGES[(total, segments)] = (bounds, load_bounds, store_bounds)
    return got


_RANGES: dict[tuple[int, int], tuple] = {}


def _shares(col: list[float], cuts: list[tuple[int, float]], whole: bool) -> list[float]:
    """:func:`closed_pipeline`'s range sums of a column: per range (``cuts``, from
    :func:`_layout`), the running sum at its end less that at its start, each running
    sum rounded first when ``whole`` (the tasks' whole bytes, :func:`_integral`)."""
    run = [0.0, *accumulate(col)]
    out = []
    done = 0.0
    for j, f in cuts:
        x = run[j] + col[j] * f
        if whole:
            x = round(x)
        out.append(x - done)
        done = x
    return out


def _layout(stages: list[int], streamed: list[bool], segments: int) -> tuple:
    """What :func:`closed_pipeline` reads of a core's items that depends on their stage
    counts and streamed flags alone (kept per those: a GEMM's core groups mostly share
    them): the numbers of segments and loads; per load range end and per store range
    end after the first, the item it falls in and the share of that item's stages
    before it (the last end: the last item whole); the unstreamed items with the
    segment of their last stage; the last stage's share of the last item."""
    key = (tuple(stages), tuple(streamed), segments)
    got = _LAYOUTS.get(key)
    if got is not None:
        return got
    offs = [0, *accumulate([n if n > 1 else 1 for n in stages])]
    n_items = len(stages)
    bounds, load_bounds, store_bounds = _ranges(offs[-1], segments)

    def cut(ends: list[int]) -> list[tuple[int, float]]:
        out = []
        for b in ends[1:]:
            j = bisect_right(offs, b) - 1
            out.append((j, (b - offs[j]) / (offs[j + 1] - offs[j])) if j < n_items
                       else (n_items - 1, 1.0))
        return out

    unstreamed = [(j, bisect_right(bounds, offs[j + 1] - 1) - 1)
                  for j in range(n_items) if not streamed[j]]
    if len(_LAYOUTS) > 4096:
        _LAYOUTS.clear()
    got = _LAYOUTS[key] = (len(bounds) - 1, len(load_bounds) - 1, cut(load_bounds),
                           cut(store_bounds), unstreamed, 1.0 / (offs[-1] - offs[-2]))
    return got


_LAYOUTS: dict[tuple, tuple] = {}


def _tasks_summary(acc: Accumulator, chip, k: int, loads: list[dict], comp: list[dict],
                   stores: list[float], acts: list[dict], by_bound: list[dict], n_seg: int,
                   n_load: int, load_unit: str, compute_unit: str, store_unit: str,
                   store_bw: float, store_hbm_fraction: float, deps: tuple, dest: str, src: str,
                   shadow_units: tuple[str, ...], compute_bound: str | None
                   ) -> tuple[int, ...]:
    """The analytical fidelity's tasks of :func:`emit_pipeline`: what its
    :meth:`Builder.load`, :meth:`Builder.add` and :meth:`Builder.store` calls hand the
    accumulator, added here directly, task by task in the same order (the same bytes,
    actions, finish times and unit sums: the same floats; the tests hold
    ``lower_summary`` to the summary of the tasks), without the builder's calls and
    dependency tuples. Returns the same task indices.

    A task's bytes and actions are added key by key in the order of the dicts the
    builder would make (a key new to the accumulator enters where the builder's would),
    and each unit's busy entry is looked up once, where its first task would look it
    up (a thousand GEMM and vector pipelines per model, 25 tasks each)."""
    finish = acc.finish
    append = finish.append
    nbytes, actions = acc.nbytes, acc.actions
    nget, aget = nbytes.get, actions.get
    hbm_stream_bw, l2_read_bw, hbm_bw = chip.hbm_stream_bw, chip.l2_read_bw, chip.hbm_bw
    dest_key, src_key = f"{dest}_byte", f"{src}_byte"
    # (a dict the builder makes with a key twice keeps one: then the general put)
    plain = dest_key not in ("hbm_byte", "l2_byte") and src_key not in ("hbm_byte", "l2_byte")
    entries: dict = {}
    acc_entry = acc.entry  # each unit's busy entry and earliest start, as add keeps them
    head = acc.head  # (a known unit's head lowered inline, per task)

    def entry(unit: str, start: float) -> list:
        e = entries[unit] = acc_entry(unit, start)
        return e

    def put(unit: str, d: float, nb, ac, start: float, bound: str) -> float:
        """Accumulator.add of one task starting at ``start``; returns its finish."""
        if nb:
            if k == 1:
                for key, n in nb.items():
                    nbytes[key] = nget(key, 0) + n
            else:
                for key, n in nb.items():
                    nbytes[key] = nget(key, 0) + n * k
        if ac:
            if k == 1:
                for key, n in ac.items():
                    actions[key] = aget(key, 0.0) + n
            else:
                for key, n in ac.items():
                    actions[key] = aget(key, 0.0) + n * k
        f = start + d
        append(f)
        e = entries.get(unit)
        if e is None:
            e = entry(unit, start)
        elif start < head.get(unit, 0.0):
            head[unit] = start
        seconds = d * k if k > 1 and unit == HBM_UNIT else d
        e[0] += seconds
        by = e[1]
        by[bound] = by.get(bound, 0.0) + seconds
        return f

    def moved(key1: str, v1: float, key2: str, v2: float, key3: str, v3: float) -> None:
        """The actions of a transfer, three keys in the builder's order."""
        if k == 1:
            actions[key1] = aget(key1, 0.0) + v1
            actions[key2] = aget(key2, 0.0) + v2
            actions[key3] = aget(key3, 0.0) + v3
        else:
            actions[key1] = aget(key1, 0.0) + v1 * k
            actions[key2] = aget(key2, 0.0) + v2 * k
            actions[key3] = aget(key3, 0.0) + v3 * k

    frac = min(1.0, max(0.0, store_hbm_fraction))
    store_hbm_rate, store_l2_rate = min(store_bw, hbm_stream_bw), min(store_bw, chip.l2_write_bw)

    def store(nb_: float, start: float) -> tuple[int, ...]:  # Builder.store
        hbm, l2b, d, memory = store_split(nb_, frac, store_hbm_rate, store_l2_rate)
        if plain:
            if l2b > 0:
                n = int(round(l2b))
                nbytes["l2_write"] = nget("l2_write", 0) + (n if k == 1 else n * k)
            moved(src_key, nb_, "l2_byte", nb_, "hbm_byte", hbm)
            put(store_unit, d if d > 0.0 else 0.0, None, None, start,
                "memory" if memory else "onchip")
        else:
            put(store_unit, d if d > 0.0 else 0.0,
                {"l2_write": int(round(l2b))} if l2b > 0 else None,
                {src_key: nb_, "l2_byte": nb_, "hbm_byte": hbm}, start,
                "memory" if memory else "onchip")
        if hbm <= 0:
            return (len(finish) - 1,)
        d = hbm / hbm_bw
        n = int(round(hbm))
        nbytes["dram_write"] = nget("dram_write", 0) + (n if k == 1 else n * k)
        put(HBM_UNIT, d if d > 0.0 else 0.0, None, None, start, "memory")
        return (len(finish) - 2, len(finish) - 1)

    start0 = 0.0
    for j in deps:
        f = finish[j]
        if f > start0:
            start0 = f
    comp_f: list[float] = []
    comp_i: list[int] = []
    load_i: tuple[int, ...] = ()
    load_f = 0.0
    for g in range(n_load):
        start = start0
        if g >= 2 and comp_f[g - 2] > start:  # the buffer it reuses
            start = comp_f[g - 2]
        ld = loads[g]
        # Builder.load
        l2_counted = ld["load_l2_slow"]
        hbm_bytes = max(0.0, ld["load_hbm"])
        hbm_s = (hbm_bytes + (ld["pad_hbm"] + l2_counted)) / hbm_stream_bw
        l2_s = (ld["load_l2"] + ld["pad_l2"]) / l2_read_bw
        l2_bytes = max(0.0, ld["load_l2"]) + l2_counted
        memory = hbm_s >= l2_s and hbm_s > 0
        d = hbm_s + l2_s
        if plain:
            if l2_bytes > 0:
                n = int(round(l2_bytes))
                nbytes["l2_read"] = nget("l2_read", 0) + (n if k == 1 else n * k)
            moved("hbm_byte", hbm_bytes, "l2_byte", hbm_bytes + l2_bytes, dest_key,
                  hbm_bytes + l2_bytes)
            f = put(load_unit, d if d > 0.0 else 0.0, None, None, start,
                    "memory" if memory else "onchip")
        else:
            f = put(load_unit, d if d > 0.0 else 0.0,
                    {"l2_read": int(round(l2_bytes))} if l2_bytes > 0 else None,
                    {"hbm_byte": hbm_bytes, "l2_byte": hbm_bytes + l2_bytes,
                     dest_key: hbm_bytes + l2_bytes}, start,
                    "memory" if memory else "onchip")
        load_f = f if f > 0.0 else 0.0
        if hbm_bytes > 0:
            n = int(round(hbm_bytes))
            nbytes["dram_read"] = nget("dram_read", 0) + (n if k == 1 else n * k)
            if ld["mask_hbm"]:
                n = int(round(ld["mask_hbm"]))
                nbytes["mask_dram_read"] = nget("mask_dram_read", 0) + (n if k == 1 else n * k)
            d = hbm_bytes / hbm_bw
            f = put(HBM_UNIT, d if d > 0.0 else 0.0, None, None, start, "memory")
            if f > load_f:
                load_f = f
            load_i = (len(finish) - 2, len(finish) - 1)
        else:
            load_i = (len(finish) - 1,)
        if g < n_seg:
            seg = by_bound[g]
            bound = compute_bound or (max(seg, key=seg.get) if seg else "compute")
            d = comp[g]["compute_s"]
            f = put(compute_unit, d if d > 0.0 else 0.0, None, acts[g], load_f, bound)
            comp_f.append(f)
            comp_i.append(len(finish) - 1)
            for unit in shadow_units:
                d = comp[g]["shadow_s"]
                if d > 0:
                    put(unit, d, None, None, load_f, bound)
            if stores[g] and g < n_seg - 1:
                store(stores[g], f if f > 0.0 else 0.0)
    # the end: the last compute task and the last load's
    end_f = comp_f[-1] if comp_f[-1] > 0.0 else 0.0
    if load_f > end_f:
        end_f = load_f
    try:
        if stores[-1]:
            return store(stores[-1], end_f)
        if max(load_i) > comp_i[-1]:
            put(compute_unit, 0.0, None, None, end_f, "compute")
            return (len(finish) - 1,)
        return (comp_i[-1],)
    finally:
        acc.count = len(finish)


def closed_pipeline(acc: Accumulator, chip, k: int, static: tuple, hbm_col: list,
                    l2_col: list | None, acts: dict, rare: tuple | None, *, load_unit: str,
                    compute_unit: str, store_unit: str, deps: tuple, dest: str,
                    src: str, totals: tuple[list, list] | None = None) -> tuple[int, ...]:
    """The analytical fidelity's pipeline of one core (group), in closed form: what the
    tasks of :func:`emit_pipeline` add up to, summed once, without making or walking them.

    ``static``: :func:`closed_static` of the core's items (all but their loads; a GEMM's
    core groups share it); ``hbm_col``, ``l2_col``: the items' ``load_hbm`` and
    ``load_l2``, one entry per item; ``acts``: the items' actions summed; ``rare``: the
    columns ``(mask_hbm, pad_hbm, pad_l2, load_l2_slow)``, or None where they are all
    zero (a GEMM's). ``l2_col`` None: the items' bytes are whole numbers (below 2**53)
    and ``totals`` gives each item's bytes in all and their running sums (``[0.0,
    *accumulate(...)]``, shared by a GEMM's core groups); an item's L2 bytes are its
    bytes less its HBM bytes, their running sums the difference of the two (exact). The
    ranges are
    :func:`emit_pipeline`'s (:func:`_ranges`). A range's sum is a difference of running
    sums of the items (``itertools.accumulate``) at its two ends, an end inside an item
    taking the item's share by stages: what the tasks' range sums add, associated
    otherwise. Made whole as the tasks' bytes are (:func:`_integral`: a range's whole
    bytes are the rounded running sum at its end less that at its start); on whole
    byte counts (a GEMM's tiles) the running sums are exact, so the bytes are the
    tasks' integers (a rounding could differ only on a running sum within a few ulps
    of a half, held equal by the tests on random ops). From these:

    - **bytes**: each task's whole bytes, summed;
    - **actions**: each key's total over the items times the copies, added once (the
      tasks add each segment's times the copies: the same terms associated otherwise,
      within :data:`CLOSED_FORM_RTOL`);
    - **busy time** of the MTE2 (each load's time under its own bound, as the task's),
      of the compute unit (each item's work under its own bound, or all of it under
      ``compute_bound``), of the store pipe, and of the shared ``hbm`` (the members'
      shares in turn): the units' totals, which the event run must serve whatever
      the order;
    - **the end**: the largest of three chains of tasks the event run executes one after
      another, whatever the other cores do (each unit serves its tasks first come,
      first served, ties in list order, :func:`hwsim.engine.run_events`; a load is
      ready no earlier than the one before it, so the loads, and the computes that
      wait for them, run in order):

      1. *fill, compute, drain*: the first load (its MTE2 task, or its HBM read if
         longer: the members' in turn), every compute segment on the one compute
         unit, the last store (its pipe's task, or its HBM write if longer);
      2. *loads, last compute, drain*: every load on the one MTE2, then the last
         compute segment (it waits for the last load), the last store;
      3. *the group's HBM transfers*: its members' reads and writes in turn on the one
         ``hbm`` unit (a task of ``k`` copies holds it ``k`` times its duration), none
         before the group's dependencies; the last of them (the last store's write,
         or the last read, which the last tasks wait for) ends no later than the
         group does.

      None counts the stalls where a segment's load outlasts the compute beside it,
      nor the other groups' turns on the shared HBM (the ``hbm`` unit's total covers
      those), so the end is a lower bound on the event run's, never above it; the
      tasks' own critical path (a load waits for the compute two segments back) is
      not walked.

    The op's analytical latency is then, as for tasks, the largest of these ends and
    the units' totals, each from its head (here ``start0``: no task of the core starts
    before its dependencies end). The task count is the tasks' (each load, its HBM read
    when it has one, each compute, each store and its HBM write); the finish list gets
    that many entries, the core's end at the indices returned (the last tasks', as
    :func:`emit_pipeline` returns them: a later kernel waits for those)."""
    finish = acc.finish
    start0 = 0.0  # (Accumulator.ready_s, inline)
    for j in deps:
        f = finish[j]
        if f > start0:
            start0 = f
    (n_seg, n_load, load_cuts, comp_s, comp_parts, last_compute_s, store_s, store_parts,
     l2_write, dram_write, a_src, a_store_hbm, store_h, drain_t, wrote, r, n_tasks) = static
    hbm_stream_bw, l2_read_bw, hbm_bw = chip.hbm_stream_bw, chip.l2_read_bw, chip.hbm_bw
    # the loads: the MTE2's time by bound, the HBM reads', the bytes, the moved bytes
    mte2_s = mte2_mem = mte2_chip = hbm_s_sum = 0.0
    fill = -1.0
    # (the ranges' bytes are whole: running sums of bytes, rounded; the first range's
    # start an int 0, so every range's bytes are ints)
    done_h = done_l2 = 0
    run_h = [0.0, *accumulate(hbm_col)]
    if l2_col is None:
        # whole bytes: each item's L2 bytes are its bytes in all less its HBM bytes, and
        # the running sums of whole numbers below 2**53 are exact, so the L2 column's
        # running sum is the difference of the two running sums (the same floats)
        nb_col, run_nb = totals
    if rare is None:
        # (without the rare columns, a GEMM's, their zero terms are left out: adding 0.0 to
        # a whole byte count changes no bit; the ranges' bytes are never negative, the
        # columns' running sums rising, so the reads' sums are those of every range's)
        # each range's end on the L2 column: its running sum and the item's L2 bytes
        if l2_col is None:  # (each the difference of the two; whole bytes: the same floats)
            l2_at = [(run_nb[j] - run_h[j], nb_col[j] - hbm_col[j]) for j, _ in load_cuts]
        else:
            run_l2 = [0.0, *accumulate(l2_col)]
            l2_at = [(run_l2[j], l2_col[j]) for j, _ in load_cuts]
        for (j, f), (rl, cl) in zip(load_cuts, l2_at):
            x = round(run_h[j] + hbm_col[j] * f)
            hbm_bytes = x - done_h
            done_h = x
            x = round(rl + cl * f)
            l2b = x - done_l2
            done_l2 = x
            if hbm_bytes:  # (above 0: so is hbm_s)
                hbm_s = hbm_bytes / hbm_stream_bw
                l2_s = l2b / l2_read_bw
                d = hbm_s + l2_s
                mte2_s += d  # (the unit's total in the tasks' order, as theirs adds up)
                if hbm_s >= l2_s:
                    mte2_mem += d
                else:
                    mte2_chip += d
                h = hbm_bytes / hbm_bw
                hbm_s_sum += h
                n_tasks += 1
                if fill < 0.0:  # (the members' reads in turn)
                    fill = h * k if h * k > d else d
            else:  # no HBM bytes: the time the L2 bytes' (0.0 plus it), on chip
                d = l2b / l2_read_bw
                mte2_s += d
                mte2_chip += d
                if fill < 0.0:
                    fill = d
        # (every range's whole bytes added: the last running sums, exact; a read from HBM
        # where a range has HBM bytes, so where their sum is above 0)
        a_hbm = float(done_h)
        a_moved = float(done_h + done_l2)
        l2_read = done_l2 if done_l2 > 0 else None
        dram_read = done_h if done_h else None
        mask_read = None
    else:
        if l2_col is None:
            l2_col = list(map(sub, nb_col, hbm_col))
        run_l2 = [0.0, *accumulate(l2_col)]
        mk = _shares(rare[0], load_cuts, True)
        ph, pl, sl = (_shares(c, load_cuts, False) for c in rare[1:])
        a_hbm = a_moved = 0.0
        l2_read = dram_read = mask_read = None  # (a key enters as a task's would: when met)
        for i, (j, f) in enumerate(load_cuts):
            x = round(run_h[j] + hbm_col[j] * f)
            hbm_bytes = x - done_h
            done_h = x
            x = round(run_l2[j] + l2_col[j] * f)
            l2b = x - done_l2
            done_l2 = x
            mask_b, l2_counted = mk[i], sl[i]
            hbm_s = (hbm_bytes + (ph[i] + l2_counted)) / hbm_stream_bw
            l2_s = (l2b + pl[i]) / l2_read_bw
            d = hbm_s + l2_s
            mte2_s += d
            if hbm_s >= l2_s and hbm_s > 0:
                mte2_mem += d
            else:
                mte2_chip += d
            if l2_counted:
                l2b = l2b + l2_counted
                if l2b > 0:
                    l2_read = (l2_read or 0) + int(round(l2b))
            elif l2b > 0:
                l2_read = (l2_read or 0) + int(l2b)
            a_hbm += hbm_bytes
            a_moved += hbm_bytes + l2b
            if hbm_bytes > 0:
                dram_read = (dram_read or 0) + int(hbm_bytes)
                if mask_b:
                    mask_read = (mask_read or 0) + int(mask_b)
                h = hbm_bytes / hbm_bw
                hbm_s_sum += h
                n_tasks += 1
                if fill < 0.0 and h * k > d:
                    d = h * k
            if fill < 0.0:
                fill = d
    # the stores' HBM writes after the loads' reads (the tasks' order), the drain's
    # write as the members' turns (k copies)
    for h in store_h:
        hbm_s_sum += h
    drain = 0.0
    if drain_t is not None:
        drain, h = drain_t
        if h is not None and h * k > drain:
            drain = h * k
    # the chains
    end = start0 + fill + comp_s + drain
    other = start0 + mte2_s + last_compute_s + drain
    if other > end:
        end = other
    other = start0 + hbm_s_sum * k
    if other > end:
        end = other
    # into the accumulator: bytes and actions times the copies, the units' totals (the
    # keys in the tasks' order)
    nbytes = acc.nbytes
    nget = nbytes.get
    if l2_read is not None:
        nbytes["l2_read"] = nget("l2_read", 0) + l2_read * k
    if dram_read is not None:
        nbytes["dram_read"] = nget("dram_read", 0) + dram_read * k
    if mask_read is not None:
        nbytes["mask_dram_read"] = nget("mask_dram_read", 0) + mask_read * k
    if l2_write is not None:
        nbytes["l2_write"] = nget("l2_write", 0) + l2_write * k
    if dram_write is not None:
        nbytes["dram_write"] = nget("dram_write", 0) + dram_write * k
    moved = {"hbm_byte": a_hbm, "l2_byte": a_moved}
    dest_key = f"{dest}_byte"
    moved[dest_key] = moved.get(dest_key, 0.0) + a_moved
    for key, v in acts.items():
        moved[key] = moved.get(key, 0.0) + v
    if wrote:
        src_key = f"{src}_byte"
        moved[src_key] = moved.get(src_key, 0.0) + a_src
        moved["l2_byte"] += a_src
        moved["hbm_byte"] += a_store_hbm
    actions = acc.actions
    get = actions.get
    for key, v in moved.items():
        actions[key] = get(key, 0.0) + v * k
    # (a unit enters as its first task would: the MTE2 and the compute unit always, the
    # ``hbm`` unit with a first HBM transfer, the store pipe with a first store; each
    # unit's parts by bound, those above 0 or else the last). Each unit's head
    # (Accumulator.entry, inline): none of the core's tasks starts before its
    # dependencies end (``start0``), a lower bound of each unit's first start; a new
    # unit's entry made with its sums (what 0.0 plus each is: no sum here is -0.0)
    # (the parts as dicts: a group's units are mostly new to the op, each entry a copy;
    # the static ones, ``comp_parts`` and ``store_parts``, copied, never entered)
    busy, head = acc.busy, acc.head
    if mte2_mem > 0.0:
        mte2_by = {"memory": mte2_mem, "onchip": mte2_chip} if mte2_chip > 0.0 \
            else {"memory": mte2_mem}
    else:
        mte2_by = {"onchip": mte2_chip}
    units = [(load_unit, mte2_s, mte2_by)]
    if dram_read is not None or dram_write is not None:
        units.append((HBM_UNIT, hbm_s_sum * k, {"memory": hbm_s_sum * k}))
    units.append((compute_unit, comp_s, comp_parts))
    if wrote:
        units.append((store_unit, store_s, store_parts))
    for unit, seconds, parts in units:
        e = busy.get(unit)
        if e is None:
            busy[unit] = [seconds, parts.copy()]
            if start0 > 0.0:
                head[unit] = start0
            continue
        if start0 < head.get(unit, 0.0):
            head[unit] = start0
        e[0] += seconds
        by = e[1]
        for bound, v in parts.items():
            by[bound] = by.get(bound, 0.0) + v
    finish.extend([start0] * (n_tasks - r))
    finish.extend([end] * r)
    n = acc.count = len(finish)
    return tuple(range(n - r, n))


def closed_static(chip, stages: list[int], comp_col: list[float], store_col: list[float],
                  streamed_col: list[bool], bound_col: list[str], *, store_bw: float,
                  store_hbm_fraction: float, segments: int, compute_bound: str | None
                  ) -> tuple:
    """What :func:`closed_pipeline` takes from a core's items but their loads (the
    columns as there): the ranges' layout, the compute by bound, the stores' whole
    bytes and what their tasks add (seconds by bound, bytes, their HBM writes' seconds
    in order, the drain's terms, the tasks the core ends with, the task count but the
    HBM reads'). A GEMM's core groups differ in their L2 misses alone: they share it
    (:func:`gemm_closed`)."""
    n_seg, n_load, load_cuts, store_cuts, unstreamed, last_share = _layout(
        stages, streamed_col, segments)
    # the stores: an unstreamed item's whole at the segment of its last stage, a
    # streamed one's spread over its stages, one stage behind (:func:`emit_pipeline`)
    if not unstreamed:
        stores = _shares(store_col, store_cuts, True)
    else:
        st_col = [v if s else 0.0 for v, s in zip(store_col, streamed_col)]
        st_run = [0.0, *accumulate(st_col)]
        ns = [0.0] * n_seg
        for j, g in unstreamed:
            ns[g] += store_col[j]
        stores = []
        done = flat = 0.0
        for g, (j, f) in enumerate(store_cuts):
            flat += ns[g]
            whole = round(flat + (st_run[j] + st_col[j] * f))
            stores.append(whole - done)
            done = whole
    # the compute: the items' work by bound, the last segment's (the last stage alone)
    if compute_bound:
        comp_by = {compute_bound: sum(comp_col)}
    elif len(set(bound_col)) == 1:
        comp_by = {bound_col[0]: sum(comp_col)}
    else:
        comp_by = {}
        for b, v in zip(bound_col, comp_col):
            comp_by[b] = comp_by.get(b, 0.0) + v
    comp_s = sum(comp_by.values())
    comp_parts = tuple(comp_by.items()) or (("compute", 0.0),)
    last_compute_s = comp_col[-1] * last_share
    hbm_stream_bw, hbm_bw = chip.hbm_stream_bw, chip.hbm_bw
    n_tasks = n_load + n_seg
    # the stores (each segment's, the last one the drain)
    frac = min(1.0, max(0.0, store_hbm_fraction))
    store_hbm_rate, store_l2_rate = min(store_bw, hbm_stream_bw), min(store_bw, chip.l2_write_bw)
    store_s = store_mem = store_chip = a_src = a_store_hbm = 0.0
    l2_write = dram_write = None
    store_h = []  # the HBM writes' seconds, in order
    drain_t = None  # the last segment's store: its pipe's seconds, its HBM write's (or None)
    wrote = False
    r = 1  # the tasks the core ends with
    for g in range(n_seg):
        nb = stores[g]
        if not nb:
            continue
        # (store_split, inline)
        hbm = nb * frac
        l2b = nb - hbm
        hbm_s = hbm / store_hbm_rate
        l2_s = l2b / store_l2_rate
        d = hbm_s + l2_s
        if d < 0.0:
            d = 0.0
        memory = hbm_s >= l2_s and hbm_s > 0
        wrote = True
        store_s += d
        if memory:
            store_mem += d
        else:
            store_chip += d
        if l2b > 0:
            l2_write = (l2_write or 0) + int(round(l2b))
        a_src += nb
        a_store_hbm += hbm
        n_tasks += 1
        r = 1
        h = None
        if hbm > 0:
            dram_write = (dram_write or 0) + int(round(hbm))
            h = hbm / hbm_bw
            store_h.append(h)
            n_tasks += 1
            r = 2
        drain_t = (d, h) if g == n_seg - 1 else None
    if not stores[-1]:
        r = 1
        if n_load > n_seg:  # a load after the last compute: a task of no time ends it
            n_tasks += 1
            last_compute_s = 0.0
    # (each unit's parts by bound, those above 0 or else the last)
    if store_mem > 0.0:
        store_parts = {"memory": store_mem, "onchip": store_chip} if store_chip > 0.0 \
            else {"memory": store_mem}
    else:
        store_parts = {"onchip": store_chip}
    if len(comp_parts) > 1:
        comp_parts = tuple([p for p in comp_parts if p[1] > 0.0]) or comp_parts[-1:]
    comp_parts = dict(comp_parts)  # (closed_pipeline enters a copy of each)
    return (n_seg, n_load, load_cuts, comp_s, comp_parts, last_compute_s, store_s,
            store_parts, l2_write, dram_write, a_src, a_store_hbm, store_h, drain_t, wrote,
            r, n_tasks)


CLOSED_FORM_RTOL = 1e-12  # actions (and so energy) of the closed form against the tasks'


def _one_stage(bld: Builder, it: Item, unit: str, store_bw: float, store_hbm_fraction: float,
               deps, dest: str, src: str, label: str, compute_bound: str | None
               ) -> tuple[int, ...]:
    """A core with a single stage (a small kernel's one tile) has no pipeline to fill:
    load, compute and store follow one another. One task on the compute unit carries
    the three (its pipes' times added up), and one on the ``hbm`` unit its HBM bytes
    (:mod:`.chip`), so small kernels spread over many cores stay a few events each."""
    chip = bld.chip
    load_hbm = it.load_hbm + it.pad_hbm + it.load_l2_slow
    store_hbm = it.store_bytes * store_hbm_fraction
    store_l2 = it.store_bytes - store_hbm
    memory_s = load_hbm / chip.hbm_stream_bw + store_hbm / min(store_bw, chip.hbm_stream_bw)
    onchip_s = (it.load_l2 + it.pad_l2) / chip.l2_read_bw \
        + store_l2 / min(store_bw, chip.l2_write_bw)
    parts = {"memory": memory_s, "onchip": onchip_s, "compute": it.compute_s}
    bound = compute_bound or max(parts, key=parts.get)
    moved = it.load_hbm + it.load_l2 + it.load_l2_slow
    actions = dict(it.actions)
    for a, v in (("hbm_byte", it.load_hbm + store_hbm), ("l2_byte", moved + it.store_bytes),
                 (f"{dest}_byte", moved), (f"{src}_byte", it.store_bytes)):
        actions[a] = actions.get(a, 0.0) + v
    nb = {}
    if it.load_l2 + it.load_l2_slow > 0:
        nb["l2_read"] = int(round(it.load_l2 + it.load_l2_slow))
    if store_l2 > 0:
        nb["l2_write"] = int(round(store_l2))
    task = bld.add(unit, memory_s + onchip_s + it.compute_s, deps=deps, bound=bound,
                   label=label, nbytes=nb, actions=actions)
    if it.load_hbm + store_hbm <= 0:
        return (task,)
    dram = {}
    if it.load_hbm > 0:
        dram["dram_read"] = int(round(it.load_hbm))
        if it.mask_hbm:
            dram["mask_dram_read"] = int(round(it.mask_hbm))
    if store_hbm > 0:
        dram["dram_write"] = int(round(store_hbm))
    return (task, bld.add(HBM_UNIT, (it.load_hbm + store_hbm) / chip.hbm_bw, deps=deps,
                          bound="memory", label=f"{label} (HBM)", nbytes=dram))


def _integral(rows: list[dict], name: str) -> list[dict]:
    """Replace ``rows[g][name]`` by whole numbers whose running sums round the true ones."""
    total = done = 0.0
    for row in rows:
        total += row[name]
        whole = round(total)
        row[name] = whole - done
        done = whole
    return rows


def _sums(items: list[Item], offs: list[int], bounds: list[int]) -> list[dict]:
    """Per range [bounds[g], bounds[g+1]): the stage-weighted sums of the item fields.

    Range by range, each range's items in order (the floats of an item-by-item walk:
    a range's sum gets the same terms in the same order; a test holds the two equal),
    the running sums kept in locals rather than dict entries."""
    out = []
    n_items = len(items)
    i = 0  # the first item that may reach the range
    for g in range(len(bounds) - 1):
        a, b = bounds[g], bounds[g + 1]
        while i < n_items and offs[i + 1] <= a:
            i += 1
        lh = l2 = mk = cs = sh = ph = pl = sl = ss = 0.0
        j = i
        while j < n_items and offs[j] < b:
            lo, hi = offs[j], offs[j + 1]
            ov = (hi if hi < b else b) - (lo if lo > a else a)
            if ov > 0:
                it = items[j]
                f = ov / (hi - lo)
                lh += it.load_hbm * f
                l2 += it.load_l2 * f
                mk += it.mask_hbm * f
                cs += it.compute_s * f
                sh += it.shadow_s * f
                ph += it.pad_hbm * f
                pl += it.pad_l2 * f
                sl += it.load_l2_slow * f
                if it.streamed:
                    ss += it.store_bytes * f
            j += 1
        out.append({"load_hbm": lh, "load_l2": l2, "mask_hbm": mk, "compute_s": cs,
                    "streamed_store": ss, "shadow_s": sh, "pad_hbm": ph, "pad_l2": pl,
                    "load_l2_slow": sl})
    return out


def _compute_sums(items: list[Item], offs: list[int], bounds: list[int]) -> list[dict]:
    """:func:`_sums`' ``compute_s`` and ``shadow_s`` (what a compute task reads): the
    same terms in the same order."""
    out = []
    n_items = len(items)
    i = 0
    for g in range(len(bounds) - 1):
        a, b = bounds[g], bounds[g + 1]
        while i < n_items and offs[i + 1] <= a:
            i += 1
        cs = sh = 0.0
        j = i
        while j < n_items and offs[j] < b:
            lo, hi = offs[j], offs[j + 1]
            ov = (hi if hi < b else b) - (lo if lo > a else a)
            if ov > 0:
                it = items[j]
                f = ov / (hi - lo)
                cs += it.compute_s * f
                sh += it.shadow_s * f
            j += 1
        out.append({"compute_s": cs, "shadow_s": sh})
    return out


def _load_sums(items: list[Item], offs: list[int], bounds: list[int]) -> list[dict]:
    """:func:`_sums`' fields of a load task: the same terms in the same order. Items
    with no mask, pad or slow L2 bytes (a GEMM's) add only zeros there (0.0 * f is
    0.0, and 0.0 + 0.0 is 0.0), so those sums are 0.0 without the adds."""
    rare = any(it.mask_hbm or it.pad_hbm or it.pad_l2 or it.load_l2_slow for it in items)
    out = []
    n_items = len(items)
    i = 0
    for g in range(len(bounds) - 1):
        a, b = bounds[g], bounds[g + 1]
        while i < n_items and offs[i + 1] <= a:
            i += 1
        lh = l2 = mk = ph = pl = sl = 0.0
        j = i
        while j < n_items and offs[j] < b:
            lo, hi = offs[j], offs[j + 1]
            ov = (hi if hi < b else b) - (lo if lo > a else a)
            if ov > 0:
                it = items[j]
                f = ov / (hi - lo)
                lh += it.load_hbm * f
                l2 += it.load_l2 * f
                if rare:
                    mk += it.mask_hbm * f
                    ph += it.pad_hbm * f
                    pl += it.pad_l2 * f
                    sl += it.load_l2_slow * f
            j += 1
        out.append({"load_hbm": lh, "load_l2": l2, "mask_hbm": mk, "pad_hbm": ph,
                    "pad_l2": pl, "load_l2_slow": sl})
    return out


def _store_sums(items: list[Item], offs: list[int], bounds: list[int]) -> list[float]:
    """:func:`_sums`' ``streamed_store``: the same terms in the same order."""
    out = []
    n_items = len(items)
    i = 0
    for g in range(len(bounds) - 1):
        a, b = bounds[g], bounds[g + 1]
        while i < n_items and offs[i + 1] <= a:
            i += 1
        ss = 0.0
        j = i
        while j < n_items and offs[j] < b:
            lo, hi = offs[j], offs[j + 1]
            ov = (hi if hi < b else b) - (lo if lo > a else a)
            if ov > 0:
                it = items[j]
                if it.streamed:
                    ss += it.store_bytes * (ov / (hi - lo))
            j += 1
        out.append(ss)
    return out


def _sums_by_item(items: list[Item], offs: list[int], bounds: list[int]) -> list[dict]:
    """:func:`_sums` item by item (its definition; the test holds the two equal)."""
    out = [dict.fromkeys(FIELDS, 0.0) for _ in range(len(bounds) - 1)]
    for i, it in enumerate(items):
        lo, hi = offs[i], offs[i + 1]
        n = hi - lo
        g = bisect_right(bounds, lo) - 1
        while g < len(out) and bounds[g] < hi:
            ov = min(hi, bounds[g + 1]) - max(lo, bounds[g])
            if ov > 0:
                f = ov / n
                o = out[g]
                o["load_hbm"] += it.load_hbm * f
                o["load_l2"] += it.load_l2 * f
                o["mask_hbm"] += it.mask_hbm * f
                o["compute_s"] += it.compute_s * f
                o["shadow_s"] += it.shadow_s * f
                o["pad_hbm"] += it.pad_hbm * f
                o["pad_l2"] += it.pad_l2 * f
                o["load_l2_slow"] += it.load_l2_slow * f
                if it.streamed:
                    o["streamed_store"] += it.store_bytes * f
            g += 1
    return out


def gemm_plan(items: list[Item], segments: int) -> tuple:
    """:func:`_plan` of a GEMM core's items (their loads left out: a GEMM's core groups
    differ in their L2 misses alone, so they share it), with each load range's terms as
    :func:`_load_sums` adds them: the items it overlaps, in order, with their shares."""
    plan = _plan(items, segments)
    offs, load_bounds = plan[6], plan[7]
    n_items = len(items)
    terms = []
    i = 0
    for g in range(len(load_bounds) - 1):
        a, b = load_bounds[g], load_bounds[g + 1]
        while i < n_items and offs[i + 1] <= a:
            i += 1
        rng = []
        j = i
        while j < n_items and offs[j] < b:
            lo, hi = offs[j], offs[j + 1]
            ov = (hi if hi < b else b) - (lo if lo > a else a)
            if ov > 0:
                rng.append((j, ov / (hi - lo)))
            j += 1
        terms.append(rng)
    return plan, terms


def emit_gemm_pipeline(bld: Builder, plan: tuple, load_hbm: list[float], load_l2: list[float],
                       **kw) -> tuple[int, ...]:
    """:func:`emit_pipeline` of a GEMM core's items from their :func:`gemm_plan` and their
    loads (per item its HBM and L2 bytes): the same tasks, the loads summed range by
    range as :func:`_load_sums` sums them (the same terms in the same order)."""
    plan, terms = plan
    loads = []
    for rng in terms:
        lh = l2 = 0.0
        for j, f in rng:
            lh += load_hbm[j] * f
            l2 += load_l2[j] * f
        loads.append({"load_hbm": lh, "load_l2": l2, "mask_hbm": 0.0, "pad_hbm": 0.0,
                      "pad_l2": 0.0, "load_l2_slow": 0.0})
    for name in ("load_hbm", "load_l2", "mask_hbm"):
        _integral(loads, name)
    return _emit_tasks(bld, plan, loads, **kw)
