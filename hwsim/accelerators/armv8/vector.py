"""Vector (non-GEMM) ops: streaming loops over NEON vectors, split over threads.

Each element-wise, normalization or data-movement op is a loop over vectors of
``lanes`` elements. Per vector it issues a number of FP/ASIMD instructions
(:func:`fn_instructions`; a vectorized ``exp`` is ``vexp_instructions`` of range
reduction and polynomial, the functions built on it add their own), loads and
stores. Its in-core time is the busier of the FP pipes and the front end; its
port time the loads and stores; its traffic each input read once from DRAM (the
op starts cold) and each output written back to DRAM once (:mod:`.placement`).
Rows that a normalization or softmax passes over several times are re-read from
L1 when a row fits there, else from the level that holds it.

Threads: the element range is split over the number of threads (1, 2, 4, ...,
all cores) that the estimate says finishes first, fork and join included, as an
OpenMP runtime with a grain size would.
"""

from __future__ import annotations

import math

from hwsim.errors import UnsupportedOpError
from hwsim.ir.dtypes import nbytes

from .ecm import Plan, Step, estimate, fastest, materialize, tiles
from .gemm import thread_counts
from .placement import reread
from .spec import Machine

DIVIDE = 5.0  # FRECPE + two Newton-Raphson steps (FRECPS, FMUL) + multiply: a divide, a
# square root or a reciprocal square root in pipelined instructions


def fn_instructions(fn: str, vexp: float) -> float:
    """FP/ASIMD instructions per vector for an elementwise function."""
    simple = {"add", "sub", "mul", "neg", "abs", "max", "min", "relu", "where", "compare",
              "square", "fma"}
    if fn in simple:
        return 1.0
    table = {
        "clamp": 2.0, "cast": 1.0, "copy": 0.0, "fill": 0.0,
        "div": DIVIDE, "sqrt": DIVIDE, "rsqrt": DIVIDE, "reciprocal": DIVIDE,
        "exp": vexp, "log": vexp + 2, "sin": vexp, "cos": vexp, "pow": 2 * vexp + 2,
        "tanh": vexp + DIVIDE + 2, "sigmoid": vexp + DIVIDE + 1, "erf": vexp + DIVIDE + 4,
        "gelu": vexp + DIVIDE + 8, "gelu_tanh": vexp + DIVIDE + 8,
        "silu": vexp + DIVIDE + 2, "swiglu": vexp + DIVIDE + 3,
        "bilinear": 4.0,  # a 2x2-tap blend: one FMUL and three FMLA per vector
    }
    return table.get(fn, vexp)


def vector_plan(op, graph, mach: Machine) -> Plan:
    """The plan of a non-GEMM, non-attention op (see the module docstring)."""
    t = graph.tensors
    a = op.attrs
    kind = op.kind
    out = t[op.outputs[0]]
    dtype = out.dtype
    if kind == "elementwise" and a["fn"] == "cast" and op.inputs:
        # a conversion (a quantizer's scale, round and pack) computes in its source
        # type; the narrow result (fix6, int4) is only stored
        dtype = t[op.inputs[0]].dtype
    s = nbytes(1, dtype)
    lanes = mach.lanes(dtype)
    vexp = mach.spec.vexp_instructions
    # (elements, FP instructions / vector, loads / vector, stores / vector, passes, row bytes)
    row_bytes = 0.0
    passes = 1.0
    if kind == "elementwise":
        elements = a["elements"]
        ops = fn_instructions(a["fn"], vexp)
        loads = sum(1 for i in op.inputs if t[i].numel >= elements) or 1
        stores = 1.0
    elif kind == "softmax":
        elements = a["rows"] * a["cols"]
        ops, loads, stores, passes = 4.0 + vexp, 3.0, 2.0, 3.0  # max; exp and sum; scale
        row_bytes = a["cols"] * s
    elif kind == "layernorm":
        elements = a["rows"] * a["cols"]
        ops, loads, stores, passes = 6.0, 4.0, 1.0, 2.0  # sum and sum of squares; normalize
        row_bytes = a["cols"] * s
    elif kind == "rmsnorm":
        elements = a["rows"] * a["cols"]
        ops, loads, stores, passes = 4.0, 3.0, 1.0, 2.0
        row_bytes = a["cols"] * s
    elif kind == "reduce":
        elements = a["elements"]
        ops, loads, stores = 1.0, 1.0, a["out_elements"] / max(1, a["elements"])
    elif kind == "rope":
        elements = a["elements"]
        ops, loads, stores = 4.0, 3.0, 1.0  # x*cos + rotate(x)*sin: 2 FMA, a permute, a negate
    elif kind == "topk":
        elements = a["rows"] * a["n"]
        ops, loads, stores, passes = 3.0, 2.0, 0.0, 2.0  # compare, select, count: two passes
        row_bytes = a["n"] * s                           # of quick-select on average
    elif kind in ("embedding", "gather", "concat", "kv_write"):
        elements = out.numel if kind != "kv_write" else a["elements"]
        ops, loads, stores = 0.0, 1.0, 1.0
    else:
        raise UnsupportedOpError("armv8", kind, op.line(graph))
    if ops and not mach.computes(dtype):  # (the op's line only for the error)
        mach.check_dtype(dtype, op.line(graph))
    read_bytes, write_bytes = _io_bytes(op, graph)  # cold: from and back to DRAM
    # the written lines leave a cluster on its port's outbound lane (Machine.with_writes)
    moved = sum(read_bytes) + sum(write_bytes)
    mix = mach.with_writes(sum(write_bytes) / moved if moved else 0.0)
    vecs = math.ceil(elements / lanes)
    # the plan chosen is kept per machine by what its candidates are made of: an op
    # of the same sizes (another layer's, another sweep point's) gets the same
    # candidates and estimates, so the same plan, made once; its steps are shared
    # (steps are not changed once planned: a carried plan copies those it changes),
    # each op with its own Plan and detail
    memo = mach.__dict__.setdefault("_vector_plans", {})
    key = (vecs, ops, loads, stores, passes, row_bytes, tuple(read_bytes), tuple(write_bytes),
           dtype)
    base = memo.get(key)
    if base is None:
        # (the mix's machine: its rates are those of the op's reads and write-backs)
        args = (vecs, ops, loads, stores, passes, row_bytes, read_bytes, write_bytes, dtype, mix)
        base = materialize(_search(args, mix))  # (candidates are estimated uncut)
        if len(memo) > 100_000:  # a long sweep over many sizes
            memo.clear()
        memo[key] = base
    return Plan(base.strategy, base.threads, base.steps, base.dtype, base.serial_s,
                base.kernel, {"elements": elements, "instructions_per_vector": ops},
                write_share=mix.write_share)


def _search(args: tuple, mach: Machine) -> Plan:
    """:func:`~.ecm.fastest` of :func:`_at` at every thread count of
    :func:`.gemm.thread_counts` the elements allow, without making the candidates that
    cannot win.

    Each count has a lower bound on its plan's estimate that costs no plan
    (:func:`_floors_s`); the candidate of the least bound is made and estimated first,
    and a count whose bound exceeds that estimate is passed over: its estimate would
    too, so it is neither the fastest nor tied with it. The others go to
    :func:`~.ecm.fastest` in their order, which keeps the first of the least estimate:
    the plan the search over every candidate returns (a test holds the two equal), and
    bounds a count whose rates are not solved by its most loaded die's bound before
    asking for its solve (``die``). On the Llama-2-7B prefill the die's bound, in the
    floors and in :func:`~.ecm.fastest`, spares 7 of the 23 stream-rate solves: counts
    (16 and 32 threads of a mix) that no op ends up on (docs/performance.md)."""
    vecs = args[0]
    counts = []
    for threads in thread_counts(mach.cores):
        if threads > 1 and vecs < 2 * threads:
            break
        counts.append(threads)
    if len(counts) == 1:
        return _at(counts[0], *args)
    floors = _floors_s(counts, args, mach)
    # the first estimated: the least bound among the counts whose rates are solved (an
    # estimate elsewhere would solve a count's rates that fastest() may never need)
    known = [i for i, t in enumerate(counts) if _threads(t, vecs) in mach._rates]
    first = min(known or range(len(counts)), key=floors.__getitem__)
    lead = _at(counts[first], *args)
    lead_s = estimate(lead, mach)
    plans = [lead if i == first else _at(t, *args) for i, t in enumerate(counts)
             if i == first or floors[i] <= lead_s]
    return fastest(plans, mach, {id(lead): (lead, lead_s)}, die=True)


def _floors_s(counts: list[int], args: tuple, mach: Machine) -> list[float]:
    """A lower bound on :func:`~.ecm.estimate` of :func:`_at`'s plan for each of
    ``counts``, without making it. The plan is one step cut into tiles that one thread
    runs one after another, each after its DRAM transfer, the transfers one after
    another on its memory lane: after the call and the fork it takes at least the
    step's in-core time, its L1 ports and L2 transfers (a DRAM byte crosses L2), and its
    DRAM bytes at the slowest thread's stretch (solved) or at least
    :meth:`~.spec.Machine.share_floor` with its most loaded die's bound (not yet: a
    bisection, no solve); the join's barrier follows. Less a
    millionth for the rounding of the tiles' shares and sums."""
    vecs, ops, loads, stores, _, _, reads, writes, _, _ = args
    spec = mach.spec
    cycle_s = mach.cycle_s
    moved = sum(reads) + sum(writes)
    core_s = max(ops / spec.fma_pipes, (ops + loads + stores) / spec.issue_width) * cycle_s
    port_s = (loads / spec.load_ports + stores / spec.store_ports) * cycle_s
    l2_bw, slot_bw = mach.l2_bw, mach.slot_bw
    known = mach._rates
    out = []
    for threads in counts:
        per = math.ceil(vecs / threads)
        threads = _threads(threads, vecs)
        dram = moved * (per / vecs) if vecs else 0.0
        work = per * core_s
        near = per * port_s + dram / l2_bw
        if near > work:
            work = near
        if threads in known:
            share = slot_bw / mach.slowest_rate(threads)
        else:
            share = mach.share_floor(threads, True, False)
        if share is not None and share * (dram / slot_bw) > work:
            work = share * (dram / slot_bw)
        out.append((mach.call_s() + mach.fork_s(threads) + work + mach.barrier_s(threads))
                   * (1 - 1e-6))
    return out


def _threads(threads: int, vecs: int) -> int:
    """The threads :func:`_at` runs for ``threads`` asked: static chunks of whole vectors,
    as many as needed."""
    if not vecs:
        return 1
    # (max(1, t) as a test: the same value; a two-argument max() parses its arguments
    # as keywords too, and the planners ask this about 5,000 times a 7B prefill)
    t = math.ceil(vecs / math.ceil(vecs / threads))
    return t if t > 1 else 1


def _io_bytes(op, graph) -> tuple[list[float], list[float]]:
    """Bytes read from DRAM and written back to it, operand by operand: the op starts
    cold, so each input comes from DRAM once (its stored bytes: a view reads at most
    its root), and each output reaches DRAM through the write-back caches. An
    embedding or gather reads only the selected rows of its source, as the IR
    counts it (an embedding over a non-weight table reads the table)."""
    t = graph.tensors
    kind = op.kind
    if kind in ("embedding", "gather"):
        out = t[op.outputs[0]]
        rows = out.bytes
        if kind == "embedding" and t[op.inputs[0]].kind != "param":
            rows = graph.stored_bytes(op.inputs[0])
        return [rows] + [graph.stored_bytes(i) for i in op.inputs[1:]], [out.bytes]
    if kind == "kv_write":
        new = graph.stored_bytes(op.inputs[0])
        return [new], [new]
    return ([graph.stored_bytes(i) for i in op.inputs],
            [t[o].bytes for o in op.outputs])


def _at(threads: int, vecs: int, ops: float, loads: float, stores: float, passes: float,
        row_bytes: float, reads, writes, dtype: str, mach: Machine) -> Plan:
    spec = mach.spec
    per = math.ceil(vecs / threads)
    threads = _threads(threads, vecs)
    f = per / vecs if vecs else 0.0
    st = Step("vector loop")
    st.arith_cycles = per * max(ops / spec.fma_pipes, (ops + loads + stores) / spec.issue_width)
    st.port_cycles = per * (loads / spec.load_ports + stores / spec.store_ports)
    st.vop = per * (ops + loads + stores)
    for nb in reads:
        st.read("dram", nb * f)
    if passes > 1 and row_bytes:  # later passes over a row, from where it stays
        again = sum(reads) * f * (passes - 1)
        reread(st, row_bytes, again, mach, threads)
    for nb in writes:
        st.write("dram", nb * f)
    first, parts = tiles(st, 8 if st.dram_read or st.dram_write else 1)
    return Plan("vector", threads, [first], dtype, mach.call_s(), "", runs=[parts])
