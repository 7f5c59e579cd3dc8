"""Vector ops on the vector cores: MTE2 into UB, the vector unit, MTE3 out.

Every vector kernel streams its data through the unified buffer of each vector
core (48 AIV on the 910B, the vector unit of each of the 32 AI cores on the
910A), double buffered: the UB tile is the largest whole number of rows (or
elements) whose inputs, outputs and fp32 work copies fit twice in the UB.

The vector unit works on 256-byte repeats, one per cycle for simple functions
(128 fp16 or 64 fp32 lanes); each function costs
``vector_cycles_per_repeat[fn]`` cycles per repeat, and composite functions
(``sigmoid``, ``gelu``, ``silu``, softmax, norms) are sums of primitives
(:data:`RECIPES`). Reductions add a per-row tail. Softmax and the norms
compute in fp32 (cast in and out), as the CANN kernels do for fp16 inputs.

Inputs re-read by many rows (a broadcast mask) hit the L2 after their first
read as far as they fit; streamed inputs come from HBM unless an earlier
kernel of the same op left them in the L2. Every op starts with a cold L2 and
writes its output to HBM (timed on the HBM streams): only the intermediates of
a multi-kernel op (the standard attention) stay in L2, unless the run carries
tensors between ops (:mod:`hwsim.onchip`): an input an earlier op left in the
L2 is read from there, and an output the next op reads from there is not
written back (:class:`~.chip.L2`'s ``carried`` and ``kept``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwsim.errors import UnsupportedOpError
from hwsim.ir.dtypes import dtype_bits

from .chip import L2, Builder, cdiv, reuse_hit_fraction
from .pipeline import Item, emit_pipeline

# composite functions as primitives of the cost table (M: the usual expansions)
RECIPES: dict[str, tuple[str, ...]] = {
    "square": ("mul",), "where": ("select",), "clamp": ("max", "min"),
    "pow": ("log", "mul", "exp"),
    "tanh": ("mul", "exp", "add", "div", "sub"),  # 1 - 2 / (exp(2x) + 1)
    "sigmoid": ("neg", "exp", "add", "reciprocal"),  # 1 / (1 + exp(-x))
    "erf": ("mul",) * 6 + ("exp", "mul"),  # rational approximation times exp(-x²)
    "sin": ("mul",) * 8, "cos": ("mul",) * 8,  # range reduction and a polynomial
    "gelu": ("mul", "mul", "exp", "mul", "mul", "mul", "mul", "mul", "mul", "add", "mul",
             "mul"),  # 0.5·x·(1 + erf(x/√2)) with erf as above
    "gelu_tanh": ("mul", "mul", "fma", "mul", "mul", "exp", "add", "div", "sub", "add", "mul",
                  "mul"),
    "silu": ("neg", "exp", "add", "reciprocal", "mul"),  # x·sigmoid(x)
    "swiglu": ("neg", "exp", "add", "reciprocal", "mul", "mul"),  # silu(a)·b
    "bilinear": ("mul", "fma", "fma", "fma"),  # w00·a, then + w01·b, w10·c, w11·d
}
ROW_TAIL_CYCLES = 8  # folding a row's last repeat to one value (M)
VECTOR_SEGMENTS = 2  # middle segments per vector core (plus the one-stage fill and drain): a
# kernel of 48 cores stays near 1,000 tasks; its work is uniform, so more buy nothing
SOFTMAX = ("cast", "reduce", "sub", "exp", "reduce", "mul", "cast")
LAYERNORM = ("cast", "reduce", "sub", "mul", "reduce", "mul", "fma", "cast")
RMSNORM = ("cast", "mul", "reduce", "mul", "mul", "cast")
ROPE = ("mul", "mul", "add", "neg", "copy")
REDUCE = {"sum": ("reduce",), "mean": ("reduce",), "max": ("reduce",), "min": ("reduce",),
          "prod": ("mul",), "any": ("reduce",), "all": ("reduce",),
          "argmax": ("compare", "select"), "argmin": ("compare", "select"),
          "norm": ("mul", "reduce")}


def nbytes(dtype: str) -> float:
    return dtype_bits(dtype) / 8


def cycles_per_element(spec, fns: tuple[str, ...], dtype: str) -> float:
    """Vector cycles per element of running ``fns`` on elements of ``dtype``."""
    table = spec.vector_cycles_per_repeat
    lanes = spec.vector_bytes_per_cycle / nbytes(dtype)
    total = 0.0
    for fn in fns:
        for prim in RECIPES.get(fn, (fn,)):
            if prim not in table:
                raise KeyError(f"vector_cycles_per_repeat has no entry for {prim!r}")
            total += table[prim]
    return total / lanes


def topk_cycles(spec, n: int) -> float:
    """Vector cycles to find the top-k of a row of ``n`` values: the sort unit orders
    runs of 32 (``sort32`` each), then 4-way merges of (value, index) pairs, 8 bytes
    each, at one 256-byte repeat per cycle, until one sorted run is left."""
    groups = cdiv(int(n), 32)
    merges = math.ceil(math.log(groups, 4) - 1e-12) if groups > 1 else 0
    return (groups * spec.vector_cycles_per_repeat["sort32"]
            + merges * cdiv(int(n) * 8, int(spec.vector_bytes_per_cycle)))


@dataclass
class In:
    """An input stream: ``bytes_per_unit`` per work unit; ``period`` > 0 when the
    tensor is re-read every ``period`` units (broadcast), so re-reads can hit L2."""

    name: str
    bytes_per_unit: float
    period: int = 0
    mask: bool = False  # an attention mask: its HBM bytes are also counted as mask_dram_read
    hbm_fraction: float | None = None  # known share from HBM (gathers with re-reads)


def emit_vector_kernel(bld: Builder, l2: L2, *, units: int, ins: list[In], out: str,
                       out_bytes_per_unit: float, cycles_per_unit: float, ub_per_unit: float,
                       label: str, deps=(), align_units: int = 1, reread_fraction: float = 0.0,
                       fixed_cycles_per_unit: float = 0.0, release: tuple[str, ...] = (),
                       keep_out_in_l2: bool = False, pad_per_unit: float = 0.0,
                       closed_form: bool = False) -> list[int]:
    """Tasks of a streaming vector kernel over ``units`` rows or elements.

    ``ub_per_unit``: UB bytes one unit needs in a tile (single copy; the tile
    is double buffered). When one unit does not fit, it is processed in chunks
    and ``reread_fraction`` of its input is read a second time (from L2).
    The output goes to HBM (an op's output: the next op starts with a cold L2),
    unless ``keep_out_in_l2`` (an intermediate the op's next kernel reads: the
    part that fits stays in L2, :class:`~.chip.L2`). ``release``: inputs dead
    after this kernel, whose L2 space the output may take. ``pad_per_unit``:
    burst bytes per unit the MTE2 spends beyond the data (gathered rows).
    ``closed_form``: at the analytical fidelity each core group's pipeline is summed in
    closed form (:func:`~.pipeline.closed_pipeline`), not task by task.
    """
    chip = bld.chip
    spec = chip.spec
    if units <= 0:
        return []
    total_out = units * out_bytes_per_unit
    # L2 behaviour of each input: the fraction of its bytes that come from HBM
    hbm_frac = []
    for s in ins:
        if s.hbm_fraction is not None:
            hbm_frac.append(s.hbm_fraction)
        elif s.name in l2.carried:  # left in the L2 by an earlier op (hwsim.onchip)
            hbm_frac.append(0.0)
        elif s.name in l2.resident:  # an intermediate of this op, as far as it stayed in L2
            hbm_frac.append(1.0 - l2.hit_fraction(s.name))
        elif s.period and s.period < units:  # broadcast: read once, re-read from L2
            first = s.period / units
            hit = reuse_hit_fraction(s.period * s.bytes_per_unit, l2.reuse_bytes())
            hbm_frac.append(first + (1.0 - first) * (1.0 - hit))
        else:
            hbm_frac.append(1.0)
    for name in release:  # inputs dead after this kernel free their L2 space
        l2.release(name)
    out_hbm = 0.0 if out in l2.kept else 1.0 - (l2.write(out, total_out) if keep_out_in_l2
                                                  else 0.0)
    in_bytes = sum(s.bytes_per_unit for s in ins)
    hbm_per_unit = sum(s.bytes_per_unit * f for s, f in zip(ins, hbm_frac))
    mask_per_unit = sum(s.bytes_per_unit * f for s, f in zip(ins, hbm_frac) if s.mask)
    tile = int(spec.ub_bytes // (2 * ub_per_unit)) if ub_per_unit > 0 else units
    tile = max(align_units, tile // align_units * align_units)
    reread = 0.0
    if ub_per_unit * 2 > spec.ub_bytes:
        reread = reread_fraction * in_bytes  # a row in chunks: read again from L2
    nv = chip.n_vec
    # the kernel is memory-bound when the shared HBM needs longer than each core's compute
    hbm_s = units * (hbm_per_unit + out_bytes_per_unit * out_hbm) / spec.dram_bw_bytes_per_s
    core_s = units / nv * (cycles_per_unit + fixed_cycles_per_unit) * chip.cycle_s
    bound = "memory" if hbm_s > core_s else "compute"
    base, extra = divmod(units // align_units, nv)
    rest = units - (units // align_units) * align_units
    vec_rate = chip.cycle_s
    hbm_share = hbm_per_unit / in_bytes if in_bytes else 0.0
    last: list[int] = []
    # the cores in runs of the same share, each run emitted once, as a group: the first
    # ``extra`` cores take one aligned block more, the last core the unaligned rest too
    # (``rest`` < ``align_units``, so the last core's share equals the first run's never)
    whole = base * align_units
    runs = [(range(extra), whole + align_units)] if extra else []
    if rest:
        runs += [(range(extra, nv - 1), whole), (range(nv - 1, nv), whole + rest)]
    else:
        runs.append((range(extra, nv), whole))
    before = bld.copies
    try:
        for cores, u in runs:
            if u <= 0 or not cores:
                continue
            cyc = u * (cycles_per_unit + fixed_cycles_per_unit)
            it = Item(stages=cdiv(u, tile), load_hbm=u * hbm_per_unit,
                      mask_hbm=u * mask_per_unit, load_l2=u * (in_bytes - hbm_per_unit + reread),
                      compute_s=cyc * vec_rate, store_bytes=u * out_bytes_per_unit,
                      actions={"vector_cycle": u * cycles_per_unit,
                               "ub_byte": u * (2 * in_bytes + reread + 2 * out_bytes_per_unit)},
                      streamed=True, pad_hbm=u * pad_per_unit * hbm_share,
                      pad_l2=u * pad_per_unit * (1.0 - hbm_share))
            for members in bld.groups(list(cores)):
                mte2, vector, mte3 = chip.aiv_group_pipes(members, "mte2", "vector", "mte3")
                bld.copies = len(members)  # (Builder.group's, without a generator per group)
                last.extend(emit_pipeline(bld, [it], load_unit=mte2, compute_unit=vector,
                                          store_unit=mte3, store_bw=chip.mte3_bw,
                                          store_hbm_fraction=out_hbm, deps=deps, dest="ub",
                                          src="ub", label=label, compute_bound=bound,
                                          segments=VECTOR_SEGMENTS, closed_form=closed_form))
    finally:
        bld.copies = before
    return last


def lower_vector_op(bld: Builder, l2: L2, op, graph) -> None:
    """Lower one vector op (a kernel of its own: launch, then the stream)."""
    spec = bld.chip.spec
    t = graph.tensors
    a = op.attrs
    kind = op.kind
    label = op.name or kind
    start = bld.launch()
    out_t = t[op.outputs[0]]
    out = f"t{out_t.id}"
    dtype = out_t.dtype
    b = nbytes(dtype)
    deps = (start,)

    def kernel(**kw) -> None:  # the op's one kernel, summed in closed form when analytical
        emit_vector_kernel(bld, l2, label=label, deps=deps, closed_form=True, **kw)

    if kind in ("softmax", "layernorm", "rmsnorm"):
        rows, cols = a["rows"], a["cols"]
        fns = {"softmax": SOFTMAX, "layernorm": LAYERNORM, "rmsnorm": RMSNORM}[kind]
        per = cycles_per_element(spec, fns, "fp32") * cols + 2 * ROW_TAIL_CYCLES
        # the input rows, and a norm's weight (read once, then from L2 by every row)
        ins = [In(f"t{op.inputs[0]}", cols * b)] + [In(f"t{i}", graph.stored_bytes(i) / rows)
                                                     for i in op.inputs[1:]]
        kernel(units=rows, ins=ins, out=out, out_bytes_per_unit=cols * b, cycles_per_unit=per,
               ub_per_unit=cols * (2 * b + 2 * 4), reread_fraction=1.0)
    elif kind == "elementwise":
        n = a["elements"]
        per = cycles_per_element(spec, (a["fn"],), dtype)
        # operands smaller than the output are broadcast: read once, re-read from L2
        # (a view of a smaller tensor, a broadcast, holds only its root's bytes)
        ins = [In(f"t{i}", graph.stored_bytes(i) / n) for i in op.inputs]
        kernel(units=n, ins=ins, out=out, out_bytes_per_unit=b, cycles_per_unit=per,
               ub_per_unit=sum(s.bytes_per_unit for s in ins) + b,
               align_units=max(1, int(spec.ub_align_bytes // b)))
    elif kind == "rope":
        n = a["elements"]
        x = t[op.inputs[0]]
        per = cycles_per_element(spec, ROPE, dtype)
        ins = [In(f"t{x.id}", nbytes(x.dtype))] + [In(f"t{i}", graph.stored_bytes(i) / n)
                                                    for i in op.inputs[1:]]
        kernel(units=n, ins=ins, out=out, out_bytes_per_unit=b, cycles_per_unit=per,
               ub_per_unit=sum(s.bytes_per_unit for s in ins) + b + 2 * b,
               align_units=max(1, int(spec.ub_align_bytes // b)))
    elif kind == "reduce":
        n, m = a["elements"], max(1, a["out_elements"])
        x = t[op.inputs[0]]
        xb = nbytes(x.dtype)
        per = cycles_per_element(spec, REDUCE[a["fn"]], x.dtype)
        kernel(units=n, ins=[In(f"t{x.id}", xb)], out=out, out_bytes_per_unit=out_t.bytes / n,
               cycles_per_unit=per, ub_per_unit=xb,
               fixed_cycles_per_unit=ROW_TAIL_CYCLES * m / n,
               align_units=max(1, int(spec.ub_align_bytes // xb)))
    elif kind == "topk":
        rows, n = a["rows"], a["n"]
        x = t[op.inputs[0]]
        per = topk_cycles(spec, n)
        outb = sum(t[o].bytes for o in op.outputs) / rows
        kernel(units=rows, ins=[In(f"t{x.id}", n * nbytes(x.dtype))], out=out,
               out_bytes_per_unit=outb, cycles_per_unit=per,
               ub_per_unit=n * (nbytes(x.dtype) + 8), reread_fraction=1.0)
    elif kind in ("gather", "embedding"):
        rows = a["tokens"] if kind == "embedding" else (
            t[op.inputs[1]].numel if len(op.inputs) > 1 else 1)
        rows = max(1, rows)
        row_bytes = out_t.bytes / rows
        idx_bytes = sum(t[i].bytes for i in op.inputs[1:]) / rows
        # each row is its own transfer: a row shorter than a burst costs the burst's time
        kernel(units=rows, ins=[In(f"t{op.inputs[0]}", row_bytes), In("idx", idx_bytes)],
               out=out, out_bytes_per_unit=row_bytes, cycles_per_unit=0.0,
               fixed_cycles_per_unit=spec.gather_row_cycles,
               ub_per_unit=row_bytes + idx_bytes,
               pad_per_unit=bld.chip.burst(1, row_bytes) - row_bytes)
    elif kind in ("concat", "kv_write"):
        n = a["elements"]
        src = t[op.inputs[0]]
        eb = nbytes(src.dtype)
        kernel(units=n, ins=[In(f"t{op.inputs[0]}", eb)], out=out, out_bytes_per_unit=eb,
               cycles_per_unit=0.0, ub_per_unit=eb,
               align_units=max(1, int(spec.ub_align_bytes // eb)))
    else:  # pragma: no cover - the target dispatches only the kinds above
        raise UnsupportedOpError("ascend", kind, op.line(graph))
