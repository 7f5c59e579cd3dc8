"""Attention on SpAtten: fetch, Q·K, softmax, top-k of the values, prob·V.

For each key/value head the fetchers stream the keys (at their stored width:
``fix6`` MSBs, 12-bit, or an uncompressed ``fp32`` baseline) into the key
buffer; each query row scores them on the Q·K array (``qk_multipliers /
dot_width`` keys per cycle at head dim ``dot_width``); the softmax lanes turn
the scores into probabilities (one per lane per cycle) and check the largest
against the re-quantization threshold; with local value pruning (``v_len <
kv_len``) the top-k engine picks the ``v_len`` largest probabilities of each
row and only those value rows are fetched; the prob·V array weights
``pv_multipliers / dot_width`` value rows per cycle.

Buffers hold ``key_buffer_tokens`` keys and ``value_buffer_tokens`` values: a
longer context is processed in chunks, and when more query rows than
``query_block`` share a key/value head, each block of queries streams the
chunks again, so keys and values are re-fetched once per block. A causal
prefill scores only the keys at or before each query.

The key LSB re-fetch of progressive quantization is its own op (a ``gather``
marked ``pruning=quant``, see :func:`lsb_refetch`): it fetches the low bits of
the re-fetched rows, recomputes their Q·K and the softmax.
"""

from __future__ import annotations

import math

import numpy as np

from hwsim.ir.dtypes import dtype_bits

from .context import Context
from .work import Work


def lane_cycles(count: np.ndarray | int, width: int, dot: int, lanes: int) -> float:
    """Cycles of an array with ``lanes`` dot products of ``dot`` for rows of ``count``
    vectors of ``width`` (each vector takes ceil(width / dot) lanes)."""
    per = math.ceil(width / dot)
    return float(np.ceil(np.asarray(count, dtype=np.float64) * per / lanes).sum())


def row_lengths(n: int, q: int, causal: bool) -> np.ndarray:
    """Keys each query row scores: all ``n``, or up to its position when causal."""
    if causal and q > 1:
        start = max(1, n - q + 1)
        return np.arange(start, start + q, dtype=np.int64).clip(max=n)
    return np.full(q, n, dtype=np.int64)


def plan(op, ctx: Context) -> Work:
    s = ctx.spec
    a = op.attrs
    g_ = ctx.graph
    b, h, hk, d, q, n = (a["batch"], a["heads"], a["kv_heads"], a["head_dim"], a["q_len"],
                         a["kv_len"])
    dv = a.get("v_head_dim", d)
    nv = min(a.get("v_len", n), n)
    group = h // hk
    tq, tk, tv = (g_.tensors[i] for i in op.inputs[:3])
    out = g_.tensors[op.outputs[0]]
    w = Work(s, op.name or "attention")

    lens = row_lengths(n, q, bool(a.get("causal")))
    vlens = np.minimum(lens, nv)
    heads_rows = b * h  # query heads, each with q rows
    qk = heads_rows * lane_cycles(lens, d, s.dot_width, s.qk_lanes)
    sm = heads_rows * float(np.ceil(lens / s.softmax_units).sum())
    pv = heads_rows * lane_cycles(vlens, dv, s.dot_width, s.pv_lanes)
    scores = heads_rows * int(lens.sum())
    macs = heads_rows * (int(lens.sum()) * d + int(vlens.sum()) * dv)
    elt = s.buffer_bits / 8

    # DRAM: queries, keys (per query block when chunked), values
    k_chunks = math.ceil(n / s.key_buffer_tokens)
    rows_per_kv_head = group * q
    k_passes = math.ceil(rows_per_kv_head / s.query_block) if k_chunks > 1 else 1
    v_rows_tensor = tv.numel // max(1, b * hk * dv)
    v_rows = v_rows_tensor if nv >= n else min(v_rows_tensor, rows_per_kv_head * nv)
    v_chunks = math.ceil(v_rows / s.value_buffer_tokens)
    v_passes = math.ceil(rows_per_kv_head / s.query_block) if v_chunks > 1 else 1
    kbits, vbits, qbits = dtype_bits(tk.dtype), dtype_bits(tv.dtype), dtype_bits(tq.dtype)
    if ctx.dram(op.inputs[0]):
        w.read("fetch_q", "query", tq.bytes, sram="act")
    if ctx.dram(op.inputs[1]):
        w.read("fetch_k", "key", tk.bytes * k_passes, sram="kv")
    pruned_v = nv < n
    w.compute("qk", "qk", qk, depth=s.qk_latency_cycles,
              after=("fetch_q",) if w.has("fetch_q") else (),
              streams_from=("fetch_k",) if w.has("fetch_k") else (),
              actions={"mac": heads_rows * int(lens.sum()) * d,
                       "sram_kv_byte": qk * s.qk_lanes * s.dot_width * elt,
                       "sram_act_byte": heads_rows * q * d * elt})
    fifo = int(math.ceil(n / s.softmax_units))
    w.compute("softmax", "softmax", sm,
              depth=s.softmax_latency_cycles + s.requant_latency_cycles + fifo,
              streams_from=("qk",), actions={"softmax_elem": scores})
    value_after: tuple[str, ...] = ("softmax",)
    if pruned_v:
        cost, how = ctx.topk(n, nv, heads_rows * q, op, "values")
        rows = heads_rows * q
        w.compute("topk", "topk", rows * cost.cycles, after=("softmax",),
                  actions={"topk_compare": rows * cost.compares,
                           "sram_fifo_byte": rows * cost.compares * 2 * elt})
        w.stats.update(topk_cycles=rows * cost.cycles,
                       topk_select_cycles=rows * cost.select_cycles, topk_rows=rows)
        w.notes.append(f"value top-k {nv}/{n} x{rows}: {cost.select_cycles:.0f}+"
                       f"{cost.final_cycles:.0f} cyc ({how})")
        value_after = ("topk",)
    if ctx.dram(op.inputs[2]):
        v_bytes = math.ceil(v_rows * b * hk * dv * vbits / 8) * v_passes
        w.read("fetch_v", "value", v_bytes, sram="kv", after=value_after if pruned_v else ())
    w.compute("pv", "pv", pv, depth=s.pv_latency_cycles, after=value_after,
              streams_from=("fetch_v",) if w.has("fetch_v") else (),
              actions={"mac": heads_rows * int(vlens.sum()) * dv,
                       "sram_kv_byte": pv * s.pv_lanes * s.dot_width * elt,
                       "sram_fifo_byte": heads_rows * int(vlens.sum()) * elt})
    if ctx.dram(op.outputs[0]):
        w.write("write_o", "act", out.bytes, after=("pv",))
    else:
        w.add_actions("pv", {"sram_act_byte": out.numel * elt})

    w.stats.update(qk_cycles=qk, softmax_cycles=sm, pv_cycles=pv, macs=macs, scores=scores,
                   keys=b * hk * n, values=b * hk * v_rows, key_passes=k_passes)
    chunk = f", {k_chunks} key chunks x {k_passes} query blocks" if k_chunks > 1 else ""
    w.notes.insert(0, f"{b * h}h x {q}q: K {n}x{kbits}b V {v_rows}x{vbits}b Q {qbits}b{chunk}; "
                      f"QK {qk:.0f} SM {sm:.0f} PV {pv:.0f} cyc")
    return w


def lsb_refetch(op, ctx: Context) -> Work:
    """Progressive quantization: fetch the key LSBs of flat heads, recompute Q·K, softmax."""
    s = ctx.spec
    g_ = ctx.graph
    out = g_.tensors[op.outputs[0]]
    att = ctx.roles.consumer_attention.get(op.id)
    if att is not None and att.kind == "attention":
        a = att.attrs
        d, q, group = a["head_dim"], a["q_len"], a["heads"] // a["kv_heads"]
    elif att is not None:  # a Q·K matrix product: batch (heads) x m (queries) x k (head dim)
        d, q, group = att.attrs["k"], att.attrs["m"], 1
    else:
        d, q, group = s.dot_width, 1, 1
    rows = math.ceil(op.attrs["elements"] / d)
    w = Work(s, op.name or "lsb_refetch")
    w.read("fetch_lsb", "lsb", out.bytes, sram="kv")
    qk = group * q * lane_cycles(rows, d, s.dot_width, s.qk_lanes)
    sm = group * q * math.ceil(rows / s.softmax_units)
    elt = s.buffer_bits / 8
    w.compute("qk_recompute", "qk", qk, depth=s.qk_latency_cycles, streams_from=("fetch_lsb",),
              actions={"mac": group * q * rows * d,
                       "sram_kv_byte": qk * s.qk_lanes * s.dot_width * elt})
    w.compute("softmax_recompute", "softmax", sm, depth=s.softmax_latency_cycles,
              streams_from=("qk_recompute",), actions={"softmax_elem": group * q * rows})
    bits = dtype_bits(out.dtype)
    w.stats.update(refetch_ops=1, refetch_rows=rows, qk_cycles=qk, softmax_cycles=sm)
    w.notes.append(f"LSB re-fetch {rows} keys x {bits}b ({out.bytes} B), Q·K recompute "
                   f"{qk:.0f} cyc, softmax {sm:.0f} cyc")
    return w
