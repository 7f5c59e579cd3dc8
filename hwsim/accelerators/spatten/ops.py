"""Every op kind other than attention, on SpAtten's units.

- ``matmul`` (projections, FFN, and the Q·K / prob·V products a pruning pass
  splits an attention into) runs on the multiplier arrays as dot products of
  ``dot_width`` lanes: a Q·K product on the Q·K array, a prob·V product on the
  prob·V array, anything else on both. Weights stream from HBM through the key
  and value buffers; when both operands are too big for them, the cheaper
  order re-reads one of them per tile of the other.
- ``softmax``, norms, ``elementwise``, ``reduce`` and ``rope`` run on the
  softmax lanes (one element per lane per cycle; norms take two passes); a
  copy, cast or fill computes nothing and streams through the mover. The
  importance accumulation, head magnitude and re-quantization check that
  SpAtten does inside its datapath, and the quantizer at an array's output
  (``reduce``/``elementwise`` ops marked ``pruning=spatten``, ``spatten-heads``
  or ``quant`` whose inputs are on chip) run in-line: they cost their adds'
  and compares' energy and one cycle of pipeline depth, and execute no FLOPs
  of their own (they happen while the attention streams their inputs).
- ``topk`` runs on the top-k engine (:mod:`.topk`), one selection per row.
- ``gather``: the key-LSB re-fetch of progressive quantization (see
  :func:`.attention.lsb_refetch`), the fetch of the value rows local value
  pruning kept, or a compaction of surviving tokens on chip (the zero
  eliminator, one buffer line per cycle) or from DRAM.
- ``embedding`` reads its rows (a table smaller than its rows, once) and its
  indices, ``kv_write`` writes the new cache entries, ``concat`` copies,
  ``view`` is free.

Every op reads the inputs that live in HBM and writes the outputs that go
there (:mod:`.residency`); what stays on chip is listed, with where and why,
in its description.
"""

from __future__ import annotations

import math

from hwsim.dram import Gather
from hwsim.errors import InputError, UnsupportedOpError
from hwsim.ir.dtypes import nbytes
from hwsim.ir.kinds import FN_FLOPS

from . import attention
from . import topk as topk_model
from .context import Context
from .residency import is_inline
from .roles import class_of
from .work import Work

VECTOR_PASSES = {"softmax": 1, "layernorm": 2, "rmsnorm": 2, "rope": 1}
ACC_BYTES = 4  # a partial sum of a matrix product (12 x 12-bit products accumulated)


def plan(op, ctx: Context, target: str = "spatten") -> Work:
    kind = op.kind
    if kind == "attention":
        return attention.plan(op, ctx)
    if kind == "matmul":
        return matmul(op, ctx)
    if kind in ("softmax", "layernorm", "rmsnorm", "elementwise", "reduce", "rope"):
        return vector(op, ctx)
    if kind == "topk":
        return topk(op, ctx)
    if kind == "gather":
        if op.attrs.get("pruning") == "quant" or op.name.endswith("lsb_refetch"):
            return attention.lsb_refetch(op, ctx)
        return copy(op, ctx, fetch_class="value" if op.id in ctx.roles.value_gathers else "")
    if kind in ("embedding", "concat"):
        return copy(op, ctx)
    if kind == "kv_write":
        return kv_write(op, ctx)
    if kind == "allreduce":
        raise InputError("SpAtten is one chip without links to other devices; simulate "
                         "this workload with devices: 1", field="devices")
    raise UnsupportedOpError(target, kind, op.line(ctx.graph))


# ---------------------------------------------------------------------------- I/O helpers
def _read_inputs(w: Work, op, ctx: Context, skip: tuple[int, ...] = ()) -> list[str]:
    """Read each input that lives in HBM (an alias at most its root's bytes); note the
    resident ones. Returns the names of the read streams."""
    names = []
    g = ctx.graph
    for pos, tid in enumerate(op.inputs):
        if tid in skip:
            continue
        if not ctx.dram(tid):
            w.keep(f"in{pos}", g.stored_bytes(tid), ctx.on_chip(tid))
            continue
        name = f"fetch_in{pos}"
        cls = class_of(ctx.roles, tid)
        if w.read(name, cls, g.stored_bytes(tid), sram="act") is not None:
            names.append(name)
    return names


def _write_outputs(w: Work, op, ctx: Context, after: tuple[str, ...]) -> None:
    """Write each output that goes to HBM; the resident ones go to their buffer."""
    elt = ctx.spec.buffer_bits / 8
    on_chip = 0.0
    for pos, tid in enumerate(op.outputs):
        t = ctx.graph.tensors[tid]
        if ctx.dram(tid):
            w.write(f"write_out{pos}", class_of(ctx.roles, tid), t.bytes, after=after)
        else:
            on_chip += t.numel * elt
            w.keep("out" if len(op.outputs) == 1 else f"out{pos}", t.bytes, ctx.on_chip(tid))
    if on_chip and after:
        w.add_actions(after[-1], {"sram_act_byte": on_chip})


# ---------------------------------------------------------------------------- matmul
def matmul(op, ctx: Context) -> Work:
    s = ctx.spec
    a = op.attrs
    b, m, n, k = a["batch"], a["m"], a["n"], a["k"]
    g = ctx.graph
    A, B = op.inputs[0], op.inputs[1]
    w = Work(s, op.name or "matmul")
    dots = b * m * n
    per = math.ceil(k / s.dot_width)
    lanes_total = dots * per
    if op.id in ctx.roles.qk_matmuls:
        split = {"qk": lanes_total}
    elif op.id in ctx.roles.pv_matmuls:
        split = {"pv": lanes_total}
    else:
        q_share = round(lanes_total * s.qk_lanes / (s.qk_lanes + s.pv_lanes))
        split = {"qk": q_share, "pv": lanes_total - q_share}
    a_dram, b_dram = ctx.dram(A), ctx.dram(B)
    a_bytes, b_bytes = g.stored_bytes(A), g.stored_bytes(B)
    free = ctx.residency.free_bytes(op.id)  # what resident tensors leave for partial sums
    a_times, b_times = _reuse(m, n, a_bytes if a_dram else 0, b_bytes if b_dram else 0,
                              int(free // ACC_BYTES), s.key_buffer_bytes + s.value_buffer_bytes)
    streams = []
    if a_dram:
        w.read("fetch_a", class_of(ctx.roles, A), a_bytes * a_times, sram="act")
        streams.append("fetch_a")
    else:
        w.keep("A", a_bytes, ctx.on_chip(A))
    if b_dram:
        # a view of a weight (an expert's slice of stacked expert weights) is a weight
        w.read("fetch_b", class_of(ctx.roles, B, "weight" if _is_param(g, B) else "act"),
               b_bytes * b_times, sram="kv")
        streams.append("fetch_b")
    else:
        w.keep("B", b_bytes, ctx.on_chip(B))
    for extra in op.inputs[2:]:
        if ctx.dram(extra):
            w.read(f"fetch_bias{extra}", class_of(ctx.roles, extra), g.stored_bytes(extra),
                   sram="act")
        else:
            w.keep("bias", g.stored_bytes(extra), ctx.on_chip(extra))
    elt = s.buffer_bits / 8
    names = []
    for unit, lane_count in split.items():
        lanes = s.qk_lanes if unit == "qk" else s.pv_lanes
        cycles = math.ceil(lane_count / lanes)
        frac = lane_count / lanes_total if lanes_total else 0.0
        w.compute(f"mm_{unit}", unit, cycles,
                  depth=s.qk_latency_cycles if unit == "qk" else s.pv_latency_cycles,
                  streams_from=tuple(streams),
                  actions={"mac": dots * k * frac,
                           "sram_kv_byte": lane_count * s.dot_width * elt,
                           "sram_act_byte": lane_count / lanes * s.dot_width * elt})
        names.append(f"mm_{unit}")
    _write_outputs(w, op, ctx, tuple(names))
    w.stats.update(macs=dots * k)
    w.notes.append(f"{b}x{m}x{n}x{k} on "
                   + " + ".join(f"{u} {math.ceil(c / (s.qk_lanes if u == 'qk' else s.pv_lanes))}"
                                f" cyc" for u, c in split.items())
                   + (f"; A read {a_times}x" if a_times > 1 else "")
                   + (f"; B read {b_times}x" if b_times > 1 else ""))
    return w


def _reuse(m: int, n: int, a_bytes: int, b_bytes: int, outputs: int,
           cap: int) -> tuple[int, int]:
    """Times A and B are read from DRAM (0 bytes: on chip), the cheaper of two orders:

    - operand-stationary: a ``cap``-byte tile of one operand sits in the key and value
      buffers while the other streams past it (re-read once per tile);
    - output-stationary: a tile of tm x tn partial sums (``outputs`` of them) sits in the
      activation buffer while A's rows and B's columns stream along K (A re-read once
      per column tile, B once per row tile), with the tm that moves the fewest bytes.
    """
    options = [(a_bytes + b_bytes, 1, 1)] if a_bytes <= cap or b_bytes <= cap else []
    if not options:
        tiles_b, tiles_a = math.ceil(b_bytes / cap), math.ceil(a_bytes / cap)
        options += [(b_bytes + a_bytes * tiles_b, tiles_b, 1),
                    (a_bytes + b_bytes * tiles_a, 1, tiles_a)]
    outputs = max(1, outputs)
    tm = 1
    while True:
        tm = min(tm, m)
        tn = max(1, min(n, outputs // tm))
        a_t, b_t = math.ceil(n / tn), math.ceil(m / tm)
        options.append((a_bytes * a_t + b_bytes * b_t, a_t, b_t))
        if tm == m:
            break
        tm *= 2
    _, a_times, b_times = min(options)
    return a_times, b_times


# ---------------------------------------------------------------------------- vector work
def in_line(op, ctx: Context) -> bool:
    """SpAtten's own machinery that runs in the attention's datapath (importance
    accumulation, the flatness check, the quantizer at an array's output): it reads
    nothing from HBM, and its work happens while the attention streams its inputs."""
    return is_inline(op) and not any(ctx.dram(i) for i in op.inputs)


def vector(op, ctx: Context) -> Work:
    s = ctx.spec
    a = op.attrs
    kind = op.kind
    w = Work(s, op.name or kind)
    if kind in ("softmax", "layernorm", "rmsnorm"):
        elements = a["rows"] * a["cols"]
    elif kind == "reduce":
        elements = a["elements"]
    else:
        elements = a["elements"]
    inline = in_line(op, ctx)
    if kind == "softmax":
        actions = {"softmax_elem": elements}
    elif kind == "elementwise":
        actions = {"vector_op": elements * max(1, FN_FLOPS.get(a["fn"], 1))}
    elif kind in ("layernorm", "rmsnorm"):
        actions = {"vector_op": elements * (8 if kind == "layernorm" else 4)}
    elif kind == "rope":
        actions = {"vector_op": 3 * elements}
    else:
        actions = {"vector_op": elements}
    streams = _read_inputs(w, op, ctx)
    unit = "softmax"
    if inline:
        cycles, depth = float(s.requant_latency_cycles), 0
        how = ("quantized by the quantizer at the producing array's output as it writes"
               if a.get("fn") == "cast" else
               "compared by the re-quantization max tree as the softmax streams them"
               if a.get("fn") in ("compare", "max") else
               "accumulated beside the softmax lanes as the attention streams them")
        w.notes.append(f"in-line in the datapath: {elements} elements {how} (executed "
                       f"there), {s.requant_latency_cycles} cycle of depth")
    elif kind == "elementwise" and FN_FLOPS.get(a["fn"], 1) == 0:
        # a copy, cast or fill computes nothing: it streams through the mover (the zero
        # eliminator's path, one key-buffer line per cycle) like any on-chip copy
        elt = s.buffer_bits / 8
        unit, depth = "mover", 1
        cycles = math.ceil(elements * elt / (s.qk_multipliers * elt))
        actions = {"sram_act_byte": 2 * elements * elt}
        w.notes.append(f"{elements} elements ({a['fn']}) through the mover: {cycles:.0f} cyc")
    else:
        passes = VECTOR_PASSES.get(kind, 1)
        if kind == "softmax":
            cycles = a["rows"] * math.ceil(a["cols"] / s.softmax_units)
            depth = s.softmax_latency_cycles
        elif kind in ("layernorm", "rmsnorm"):
            cycles = passes * a["rows"] * math.ceil(a["cols"] / s.softmax_units)
            depth = s.softmax_latency_cycles
        else:
            cycles = passes * math.ceil(elements / s.softmax_units)
            depth = 1
        w.notes.append(f"{elements} elements on {s.softmax_units} softmax lanes: "
                       f"{cycles:.0f} cyc")
    w.compute("vector", unit, cycles, depth=depth, streams_from=tuple(streams),
              actions=actions)
    _write_outputs(w, op, ctx, ("vector",))
    if kind == "softmax":
        w.stats.update(softmax_cycles=cycles)
    return w


# ---------------------------------------------------------------------------- top-k
def topk(op, ctx: Context) -> Work:
    s = ctx.spec
    a = op.attrs
    rows, n, k = a["rows"], a["n"], a["k"]
    w = Work(s, op.name or "topk")
    what = ("values" if a.get("pruning") == "spatten" and ".attn" in op.module
            and ".pruning." not in op.module else "cascade")
    cost, how = ctx.topk(n, k, rows, op, what)
    if cost.cycles == 0 and n > 0:
        # keeping all n selects nothing, but the scores and their indices still stream
        # once through the engine's compare and zero-eliminator pass
        cost = topk_model.TopkCost(0.0, topk_model.final_pass(
            n, s.topk_parallelism, s.topk_final_latency_cycles), 0.0, float(n))
    streams = _read_inputs(w, op, ctx)
    elt = s.buffer_bits / 8
    w.compute("topk", "topk", rows * cost.cycles, depth=0, streams_from=tuple(streams),
              actions={"topk_compare": rows * cost.compares,
                       "sram_fifo_byte": rows * cost.compares * 2 * elt})
    _write_outputs(w, op, ctx, ("topk",))
    w.stats.update(topk_cycles=rows * cost.cycles, topk_select_cycles=rows * cost.select_cycles,
                   topk_rows=rows)
    w.notes.append(f"top-k {k}/{n} x{rows}: quick-select {cost.select_cycles:.0f} cyc "
                   f"({cost.passes:.1f} passes) + final {cost.final_cycles:.0f} = "
                   f"{cost.cycles:.0f} cyc per row, P={s.topk_parallelism} ({how})")
    return w


# ---------------------------------------------------------------------------- copies
def copy(op, ctx: Context, fetch_class: str = "") -> Work:
    """embedding, gather, concat: read what is selected from DRAM, or move it on chip."""
    s = ctx.spec
    g = ctx.graph
    w = Work(s, op.name or op.kind)
    out = g.tensors[op.outputs[0]]
    src = op.inputs[0]
    elt = s.buffer_bits / 8
    line = s.qk_multipliers * elt  # one key-buffer line per cycle through the zero eliminator
    if op.kind in ("embedding", "gather"):
        streams: tuple[str, ...] = ()
        if ctx.dram(src):
            cls = fetch_class or class_of(ctx.roles, src,
                                          "weight" if _is_param(g, src) else "act")
            table = g.stored_bytes(src)
            if table < out.bytes and table <= s.act_buffer_bytes:
                # a table smaller than the rows it gives (token types): read it once,
                # then every token's row comes from the on-chip copy
                w.read("fetch_rows", cls, table, sram="act")
                w.keep("repeated rows", out.bytes - table, "re-read from the table held in "
                       "the activation buffer")
            else:
                w.read("fetch_rows", cls, out.bytes, sram="kv" if cls == "value" else "act",
                       pattern=_rows_of(g, src, out))
            streams = ("fetch_rows",)
        else:
            w.keep("rows", out.bytes, ctx.on_chip(src))
        streams += tuple(_read_inputs(w, op, ctx, skip=(src,)))  # the indices
        moved = out.numel * elt
        how = "fetched" if ctx.dram(src) else "selected from an on-chip tensor"
    else:  # concat
        streams = tuple(_read_inputs(w, op, ctx))
        moved = out.numel * elt
        how = "concatenated"
    w.compute("move", "mover", math.ceil(moved / line), depth=1, streams_from=streams,
              actions={"sram_act_byte": 2 * moved})
    _write_outputs(w, op, ctx, ("move",))
    w.notes.append(f"{out.numel} elements {how}")
    return w


def _rows_of(g, src: int, out) -> Gather:
    """The rows a gather or embedding reads: rows of the output's last dimension
    (one token's vector), chosen among the rows of the table they come from."""
    width = out.shape[-1] if out.shape else 1
    rows = max(1, out.numel // max(1, width))
    row_bytes = out.bytes / rows
    table_rows = g.stored_bytes(src) / row_bytes if row_bytes else rows
    return Gather(max(rows, table_rows), rows, row_bytes)


def kv_write(op, ctx: Context) -> Work:
    s = ctx.spec
    g = ctx.graph
    w = Work(s, op.name or "kv_write")
    new = g.tensors[op.inputs[0]]
    streams = _read_inputs(w, op, ctx, skip=tuple(op.inputs[1:]))  # the cache is appended to
    elt = s.buffer_bits / 8
    w.compute("pack", "mover", math.ceil(new.numel * elt / (s.qk_multipliers * elt)), depth=1,
              streams_from=tuple(streams), actions={"sram_act_byte": new.numel * elt})
    cache = op.outputs[0]
    cls = class_of(ctx.roles, cache, "act")
    w.write("write_cache", cls, nbytes(new.numel, g.tensors[cache].dtype), after=("pack",))
    w.notes.append(f"{new.numel} new {cls} entries written")
    return w


def _is_param(g, tid: int) -> bool:
    """``tid`` is a weight, or a view of one (its root is a parameter)."""
    return g.tensors[g.root(tid)].kind == "param"
