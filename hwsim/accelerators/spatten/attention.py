"""Attention on SpAtten: fetch, Q·K, softmax, top-k of the values, prob·V.

For each key/value head the fetchers stream the keys (at their stored width:
``fix6`` MSBs, 12-bit, or an uncompressed ``fp32`` baseline) into the key
buffer; each query row scores them on the Q·K array (``qk_multipliers /
dot_width`` keys per cycle at head dim ``dot_width``); the softmax lanes turn
the scores into probabilities (one per lane per cycle) and check the largest
against the re-quantization threshold; with local value pruning (``v_len``
below the row's keys) the top-k engine picks the ``v_len`` largest
probabilities of each row and only those value rows are fetched; the prob·V
array weights ``pv_multipliers / dot_width`` value rows per cycle.

**Which keys a query row scores** (:func:`row_spans`): query ``i`` sits at
position ``i + kv_len - q_len``; it sees every key, or those up to its
position when causal, and only the ``window`` most recent (``pos - key <
window``; symmetric without ``causal``) under a sliding window, exactly as
:func:`hwsim.ir.kinds.visible_scores` counts them. Block-sparse attention
(``sparse_keys`` per block of ``sparse_block`` queries) scores the selected
keys only, at most the visible ones. The arrays compute exactly these rows, so
:func:`executed_flops` is their count.

**Which keys are fetched.** The group of query heads sharing a key/value head
(GQA/MQA) forms one stream of rows (position-major), so a KV head's keys and
values are fetched once for its whole group. Buffers hold
``key_buffer_tokens`` keys and ``value_buffer_tokens`` values: when every key
some row uses (:func:`hwsim.ir.kinds.attention_rows`) fits, they are fetched
once; otherwise the rows run in blocks of ``query_block`` and each block
streams the keys *it* uses through the buffer, in chunks (the band of its
window, the keys up to its last position when causal, all of them otherwise;
a block-sparse selection fetches its own selected rows, where they lie). So
keys and values are re-fetched once per block; generation (one query)
never re-fetches.

**How the fetched rows lie in HBM** (:mod:`hwsim.dram`): a key or value row is
one record at ``base + token x row bytes``, as SpAtten's fetchers address
them. The keys are one run unless the op's ``kv_stored`` says they are the
survivors of cascade pruning among that many cached tokens (the released
traces: ``key_fetch_num`` of ``sentence_length_L``), and the values a top-k
keeps are a scattered subset of the keys' span; LSB planes follow their keys.
Each fetch's time and row activations come from that pattern.

**Progressive quantization inside the attention** (an ``lsb_bits``
attribute, should the IR carry it): rows whose largest probability is below
``requant_threshold`` (:mod:`.requant`: decided on real scores in seeded mode,
from the stated distribution otherwise) re-fetch the LSBs of the keys they
scored and recompute Q·K and the softmax. Today the pruning pass expresses the
re-fetch as its own op instead (a ``gather`` marked ``pruning=quant``, see
:func:`lsb_refetch`), sized by the workload's ``refetch`` fraction.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from hwsim.dram import Gather
from hwsim.ir import AttentionShape
from hwsim.ir.dtypes import dtype_bits

from .context import Context
from .work import Work

if TYPE_CHECKING:
    import numpy as np


def lane_cycles(count: np.ndarray | int, width: int, dot: int, lanes: int) -> float:
    """Cycles of an array with ``lanes`` dot products of ``dot`` for rows of ``count``
    vectors of ``width`` (each vector takes ceil(width / dot) lanes)."""
    import numpy as np  # noqa: PLC0415 (loaded on first need)
    per = math.ceil(width / dot)
    return float(np.ceil(np.asarray(count, dtype=np.float64) * per / lanes).sum())


def row_spans(q: int, n: int, causal: bool, window: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) visible key of each of ``q`` query rows over ``n`` keys
    (bottom-right aligned; ``last < first`` for a row that sees nothing)."""
    import numpy as np  # noqa: PLC0415 (loaded on first need)
    pos = np.arange(q, dtype=np.int64) + (n - q)
    if causal:
        hi = np.minimum(pos, n - 1)
    elif window > 0:
        hi = np.minimum(pos + window - 1, n - 1)
    else:
        hi = np.full(q, n - 1, dtype=np.int64)
    lo = np.maximum(0, pos - window + 1) if window > 0 else np.zeros(q, dtype=np.int64)
    return lo, hi


def row_lengths(n: int, q: int, causal: bool, window: int = 0, sparse: int = 0) -> np.ndarray:
    """Keys each query row scores (see the module docstring)."""
    import numpy as np  # noqa: PLC0415 (loaded on first need)
    lo, hi = row_spans(q, n, causal, window)
    lens = np.maximum(0, hi - lo + 1)
    return np.minimum(lens, sparse) if sparse else lens


def row_keys(sh: AttentionShape) -> tuple[np.ndarray, np.ndarray]:
    """(keys scored, values weighted) by each query row of one head: the keys its
    masks leave visible (at most ``sparse_keys``), of which at most ``v_len`` values."""
    import numpy as np  # noqa: PLC0415 (loaded on first need)
    lens = row_lengths(sh.kv_len, sh.q_len, sh.causal, sh.window, sh.sparse_keys)
    return lens, np.minimum(lens, sh.v_len)


def executed_flops(op) -> int:
    """2 x the multiply-accumulates of the Q·K and prob·V arrays for ``op``'s rows."""
    sh = AttentionShape.from_attrs(op.attrs)
    lens, vlens = row_keys(sh)
    bh = sh.batch * sh.heads
    return int(2 * bh * (int(lens.sum()) * sh.head_dim + int(vlens.sum()) * sh.v_head_dim))


def fetched_rows(sh: AttentionShape, spec) -> tuple[int, int, int]:
    """(key rows, value rows, query blocks) fetched per key/value head."""
    import numpy as np  # noqa: PLC0415 (loaded on first need)
    q, n, nv, sparse = sh.q_len, sh.kv_len, sh.v_len, sh.sparse_keys
    group = sh.group
    k_union, v_union = sh.key_rows, sh.value_rows
    lo, hi = row_spans(q, n, sh.causal, sh.window)
    per_block = max(1, spec.query_block // group)  # positions per block (all group heads)
    splits = math.ceil(group / spec.query_block)  # blocks per position when group > block
    firsts = np.arange(0, q, per_block, dtype=np.int64)
    lasts = np.minimum(firsts + per_block, q) - 1
    rows_in = (lasts - firsts + 1) * min(group, spec.query_block)
    spans = np.maximum(0, hi[lasts] - lo[firsts] + 1)
    blocks = len(firsts) * splits
    if sparse:  # each selection block (sparse_block queries of one head) fetches its own
        sb = sh.sparse_block
        sel = math.ceil(q / sb) * group
        k_blocks = sel * sparse
        v_blocks = sel * min(sparse, sb * nv)
    else:
        k_blocks = int(spans.sum()) * splits
        v_blocks = int(np.minimum(spans, rows_in * nv).sum()) * splits
    k_rows = k_union if k_union <= spec.key_buffer_tokens else max(k_union, k_blocks)
    v_rows = v_union if v_union <= spec.value_buffer_tokens else max(v_union, v_blocks)
    return k_rows, v_rows, blocks


def plan(op, ctx: Context) -> Work:
    import numpy as np  # noqa: PLC0415 (loaded on first need)
    s = ctx.spec
    g_ = ctx.graph
    sh = AttentionShape.of(op, g_)
    b, h, hk, d, dv = sh.batch, sh.heads, sh.kv_heads, sh.head_dim, sh.v_head_dim
    q, n, nv = sh.q_len, sh.kv_len, sh.v_len
    lens, vlens = row_keys(sh)
    w = Work(s, op.name or "attention")

    heads_rows = b * h  # query heads, each with q rows
    qk = heads_rows * lane_cycles(lens, d, s.dot_width, s.qk_lanes)
    sm = heads_rows * float(np.ceil(lens / s.softmax_units).sum())
    pv = heads_rows * lane_cycles(vlens, dv, s.dot_width, s.pv_lanes)
    scores = heads_rows * int(lens.sum())
    macs = heads_rows * (int(lens.sum()) * d + int(vlens.sum()) * dv)
    elt = s.buffer_bits / 8

    k_rows, v_rows, blocks = fetched_rows(sh, s)
    kbits, vbits, qbits = dtype_bits(sh.k_dtype), dtype_bits(sh.v_dtype), dtype_bits(sh.dtype)
    k_row_bytes = sh.k_bytes / max(1, b * hk * n)
    v_row_bytes = sh.v_bytes / max(1, b * hk * n)
    spread = stored_spread(op)
    k_among = b * hk * k_rows * spread  # the stored rows the fetched keys lie among
    _operand(w, ctx, op.inputs[0], "fetch_q", "query", sh.q_bytes, "act", "Q")
    _operand(w, ctx, op.inputs[1], "fetch_k", "key", b * hk * k_rows * k_row_bytes, "kv", "K",
             pattern=Gather(k_among, b * hk * k_rows, k_row_bytes))
    w.compute("qk", "qk", qk, depth=s.qk_latency_cycles,
              after=("fetch_q",) if w.has("fetch_q") else (),
              streams_from=("fetch_k",) if w.has("fetch_k") else (),
              actions={"mac": heads_rows * int(lens.sum()) * d,
                       "sram_kv_byte": qk * s.qk_lanes * s.dot_width * elt,
                       "sram_act_byte": heads_rows * q * d * elt})
    fifo = int(math.ceil(int(lens.max(initial=0)) / s.softmax_units))
    w.compute("softmax", "softmax", sm,
              depth=s.softmax_latency_cycles + s.requant_latency_cycles + fifo,
              streams_from=("qk",), actions={"softmax_elem": scores})
    value_after: tuple[str, ...] = ("softmax",)
    selecting = lens > nv  # rows that weight fewer values than they scored
    if selecting.any():
        rows = heads_rows * int(selecting.sum())
        n_row = int(round(float(lens[selecting].mean())))
        cost, how = ctx.topk(n_row, nv, rows, op, "values")
        w.compute("topk", "topk", rows * cost.cycles, after=("softmax",),
                  actions={"topk_compare": rows * cost.compares,
                           "sram_fifo_byte": rows * cost.compares * 2 * elt})
        w.stats.update(topk_cycles=rows * cost.cycles,
                       topk_select_cycles=rows * cost.select_cycles, topk_rows=rows)
        w.notes.append(f"value top-k {nv}/{n_row} x{rows}: {cost.select_cycles:.0f}+"
                       f"{cost.final_cycles:.0f} cyc ({how})")
        value_after = ("topk",)
    if sh.lsb_bits:
        _lsb_in_attention(w, ctx, op, lens, sh.lsb_bits, d)
    _operand(w, ctx, op.inputs[2], "fetch_v", "value", b * hk * v_rows * v_row_bytes, "kv",
             "V", after=value_after if selecting.any() else (),
             pattern=Gather(max(k_among, b * hk * v_rows), b * hk * v_rows, v_row_bytes))
    w.compute("pv", "pv", pv, depth=s.pv_latency_cycles, after=value_after,
              streams_from=("fetch_v",) if w.has("fetch_v") else (),
              actions={"mac": heads_rows * int(vlens.sum()) * dv,
                       "sram_kv_byte": pv * s.pv_lanes * s.dot_width * elt,
                       "sram_fifo_byte": heads_rows * int(vlens.sum()) * elt})
    out = op.outputs[0]
    if ctx.dram(out):
        w.write("write_o", "act", g_.tensors[out].bytes, after=("pv",))
    else:
        w.add_actions("pv", {"sram_act_byte": g_.tensors[out].numel * elt})
        w.keep("out", g_.tensors[out].bytes, ctx.on_chip(out))

    w.stats.update(qk_cycles=w.stats.get("qk_cycles", 0.0) + qk, softmax_cycles=sm,
                   pv_cycles=pv, macs=macs, scores=scores, keys=b * hk * k_rows,
                   values=b * hk * v_rows, key_passes=blocks)
    what = []
    if sh.window:
        what.append(f"window {sh.window}")
    if sh.sparse:
        what.append(f"{sh.sparse_keys} selected keys per {sh.sparse_block} queries")
    if k_rows > n or v_rows > n:
        what.append(f"K {k_rows} V {v_rows} rows fetched in {blocks} query blocks")
    elif k_rows < n:
        what.append(f"K {k_rows} rows fetched")
    w.notes.insert(0, f"{b * h}h x {q}q: K {n}x{kbits}b V {v_rows}x{vbits}b Q {qbits}b"
                      + (f" ({', '.join(what)})" if what else "")
                      + f"; QK {qk:.0f} SM {sm:.0f} PV {pv:.0f} cyc")
    return w


def stored_spread(op) -> float:
    """Stored rows per fetched key row: an attention whose ``kv_stored`` attribute
    says its ``kv_len`` keys are the survivors of cascade token pruning among
    ``kv_stored`` cached tokens (SpAtten's traces) fetches them scattered; without
    it the keys lie contiguously (a pruned layer computes and stores only its kept
    tokens' keys)."""
    stored = op.attrs.get("kv_stored") or 0
    kv = op.attrs["kv_len"]
    return max(1.0, stored / kv) if kv else 1.0


def _operand(w: Work, ctx: Context, tid: int, name: str, cls: str, nbytes: float, sram: str,
             label: str, after: tuple[str, ...] = (), pattern: Gather | None = None) -> None:
    """Fetch an attention operand from HBM (its rows laid out as ``pattern``: which
    rows of how many, see :mod:`hwsim.dram`), or note that it is resident."""
    if ctx.dram(tid):
        w.read(name, cls, math.ceil(nbytes), sram=sram, after=after, pattern=pattern)
    else:
        w.keep(label, nbytes, ctx.on_chip(tid))


def _lsb_in_attention(w: Work, ctx: Context, op, lens: np.ndarray, bits: int, d: int) -> None:
    """Flat rows re-fetch the LSBs of the keys they scored (``lens`` per query row of
    a head) and recompute Q·K and softmax."""
    import numpy as np  # noqa: PLC0415 (loaded on first need)
    s = ctx.spec
    a = op.attrs
    keys = int(round(float(lens.mean()))) if len(lens) else 0
    p, how = ctx.flat_fraction(op, keys)
    heads_rows = a["batch"] * a["heads"]
    rows = p * heads_rows * len(lens)
    key_rows = p * heads_rows * int(lens.sum())
    elt = s.buffer_bits / 8
    if key_rows > 0:
        w.read("fetch_lsb", "lsb", math.ceil(key_rows * d * bits / 8), sram="kv",
               after=("softmax",),
               pattern=Gather(key_rows * stored_spread(op), key_rows, d * bits / 8))
        qk = p * heads_rows * lane_cycles(lens, d, s.dot_width, s.qk_lanes)
        w.compute("qk_recompute", "qk", qk, depth=s.qk_latency_cycles,
                  streams_from=("fetch_lsb",),
                  actions={"mac": key_rows * d,
                           "sram_kv_byte": qk * s.qk_lanes * s.dot_width * elt})
        w.compute("softmax_recompute", "softmax",
                  p * heads_rows * float(np.ceil(lens / s.softmax_units).sum()),
                  depth=s.softmax_latency_cycles, streams_from=("qk_recompute",),
                  actions={"softmax_elem": key_rows})
        w.stats.update(qk_cycles=qk)
    w.stats.update(refetch_ops=rows, refetch_rows=key_rows)
    w.notes.append(f"LSB re-fetch ({bits}b): {100 * p:.1f} % of rows flat at "
                   f"{s.requant_threshold:g} with {keys} keys ({how})")


def lsb_refetch(op, ctx: Context) -> Work:
    """Progressive quantization: fetch the key LSBs of flat heads, recompute Q·K, softmax."""
    s = ctx.spec
    g_ = ctx.graph
    out = g_.tensors[op.outputs[0]]
    att = ctx.roles.consumer_attention.get(op.id)
    keys = 0
    if att is not None and att.kind == "attention":
        ash = AttentionShape.from_attrs(att.attrs)
        d, q, group = ash.head_dim, ash.q_len, ash.group
        keys = int(ash.key_rows)
    elif att is not None:  # a Q·K matrix product: batch (heads) x m (queries) x k (head dim)
        d, q, group = att.attrs["k"], att.attrs["m"], 1
        keys = int(att.attrs["n"])
    else:
        d, q, group = s.dot_width, 1, 1
    rows = math.ceil(op.attrs["elements"] / d)
    w = Work(s, op.name or "lsb_refetch")
    spread = stored_spread(att) if att is not None and att.kind == "attention" else 1.0
    w.read("fetch_lsb", "lsb", out.bytes, sram="kv",
           pattern=Gather(rows * spread, rows, out.bytes / max(1, rows)))
    for tid in op.inputs[1:]:
        if ctx.dram(tid):
            w.read(f"fetch_idx{tid}", "act", g_.tensors[tid].bytes, sram="act")
        else:
            w.keep("indices", g_.tensors[tid].bytes, "from the flatness check, on chip")
    w.keep("LSBs", out.bytes, "in the key buffer, consumed by the Q·K recompute")
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
    if "trace" not in g_.header and keys:
        p, how = ctx.flat_fraction(att, keys)
        per_row = (att.attrs["batch"] * att.attrs["kv_heads"] if att.kind == "attention"
                   else att.attrs["batch"])
        share = rows / max(1, keys * per_row)
        w.notes.append(f"the pass re-fetches a fixed {100 * share:.1f} % of key rows; at "
                       f"requant_threshold {s.requant_threshold:g} the target expects "
                       f"{100 * p:.1f} % of rows flat with {keys} keys ({how})")
    return w
