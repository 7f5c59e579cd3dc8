"""Sparse attention: each query (or block of queries) attends to its best keys only.

The passes record per layer what to keep; :func:`rewrite_attention` then
replaces the layer's fused ``attention`` by what the method runs:

- ``topk-attention``: the full score matrix (``matmul`` Q·Kᵀ, needed to know
  the best keys) and a ``topk`` per query row are the method's machinery
  (the scores are written and read: which keys are best is known only after
  all scores are); then the attention over each query's ``k`` keys, read
  where they lie in K and V (``attention`` with ``sparse_keys=k``).
- SpAtten's local value pruning (``value_keep``): one fused attention with
  ``v_len``: the pass that scores every key picks, per query row, the
  ``v_len`` largest probabilities (SpAtten's top-k engine, inside the
  attention), and only those value rows are fetched and weighted. The value
  rows a prefill fetches are the union of its queries' selections, at most V.
- ``hip`` (hierarchical pruning): queries in blocks of ``block`` share a
  selection of ``k`` keys, refined over ceil(log2(T / k)) iterations: each
  scores 2k candidate keys, one representative per half of each kept span
  (``matmul`` block x 2k x d, ``reduce max`` over the block's queries), and
  keeps k (``topk``): O(T log T) in all. Then each block attends to its k keys
  (``attention`` with ``sparse_keys=k, sparse_block=block``). HiP's kernels read
  the representative and selected keys where they lie in the cache, without
  copying them: the representative keys are a ``view`` of K (an alias: it
  holds no memory and an op reads at most K's bytes through it), and the
  block-sparse attention reads K and V themselves.

- ``minference`` (MInference's vertical-slash pattern, Jiang et al., NeurIPS 2024,
  arXiv 2407.02490): per head, an online estimate from the last 64 queries
  (``matmul`` 64 x T x d and ``softmax``), their column sums (the *vertical*
  lines, ``reduce``) and diagonal sums (the *slash* lines, ``reduce``), a
  ``topk`` of each, the two index lists sorted (``topk`` of all of each) and
  merged into each 64-row block's key list (``elementwise compare`` over
  T/64 x (v + s)); then each query attends to at most v + s keys
  (``attention`` with ``sparse_keys = v + s, sparse_block = 64``): O(64 T d)
  estimation, O(T (v + s) d) attention per head, against O(T² d).

Grouped-query attention: selections are per query head, as the attention
that follows reads them (each query row picks its own keys); the scores are
computed against the key/value heads' keys without copying them: top-k
attention's product packs each group's query heads as the rows of one product
against their key/value head's K (``batch = b·kv_heads``, ``m = group x q``,
as GQA kernels pack them), HiP's representative keys are a broadcast view of
K, and the sparse attention keeps ``kv_heads``, so K and V stay one cache per
key/value head.

Sliding windows: the rewritten attention keeps every attribute of the dense
one (``window``, ``kv_heads``, ``v_len``, ...). A query of a windowed layer
sees at most ``window`` keys, so ``keep`` is a fraction of those and a ``k``
that is not smaller than the window changes nothing; top-k attention scores
only the keys some query of the call can see (a decode step's window, not the
whole cache).
"""

from __future__ import annotations

import math
from dataclasses import replace

from ..ir import Graph, Op, Tensor
from ..ir.kinds import window_keys
from .common import layers_param
from .plan import Plan, Step

HIP_BLOCK = 32  # queries sharing one key selection when the step does not say (HiP's default)


def topk_attention(plan: Plan, step: Step) -> None:
    _sparse(plan, step, {"method": "topk-attention", "mode": "topk"})


def hip(plan: Plan, step: Step) -> None:
    _sparse(plan, step, {"method": "hip", "mode": "hip",
                         "block": int(step.get("block", HIP_BLOCK))})


MINFERENCE_VERTICAL = 1000  # the released per-head fallback ("vertical_and_slash", 1000, 6096)
MINFERENCE_SLASH = 6096
MINFERENCE_LAST_Q = 64  # queries whose attention estimates the pattern (last_q = 64)


def minference(plan: Plan, step: Step) -> None:
    """MInference's vertical-slash sparse prefill attention, with its online estimation."""
    if plan.phase != "prefill":
        raise step.error("", "MInference makes the prefill's attention sparse; a decode step "
                         "attends densely in its released code (simulate the prefill)")
    v = int(step.get("vertical", MINFERENCE_VERTICAL))
    s_ = int(step.get("slash", MINFERENCE_SLASH))
    spec = {"method": "minference", "mode": "minference", "vertical": v, "slash": s_,
            "k": v + s_}
    layers = layers_param(plan, step)
    for layer in layers:
        plan.sparse[layer] = dict(spec)
    plan.record(step, sparse_layers=layers, vertical=v, slash=s_,
                keys_per_query=sorted({spec_keys(spec, plan.visible_keys(layer))
                                       for layer in layers}),
                dense_layers=[layer for layer in layers if v + s_ >= plan.visible_keys(layer)])


def _sparse(plan: Plan, step: Step, spec: dict) -> None:
    if step.get("k") is not None and step.get("keep") is not None:
        raise step.error("k", "give either k (keys per query) or keep (a fraction of the "
                         "keys), not both")
    if isinstance(step.get("keep"), list):
        raise step.error("keep", f"{step.method} keeps one fraction of each layer's keys: "
                         f"give a number")
    if step.get("k") is not None:
        spec["k"] = int(step.get("k"))
    else:
        spec["keep"] = float(step.get("keep"))
    layers = layers_param(plan, step)
    keys = []
    for layer in layers:
        plan.sparse[layer] = dict(spec)
        keys.append(spec_keys(spec, plan.visible_keys(layer)))
    plan.record(step, sparse_layers=layers, keys_per_query=sorted(set(keys)))


def spec_keys(spec: dict, kv: int) -> int:
    """Keys each query keeps out of ``kv``."""
    if "k" in spec:
        return min(kv, spec["k"])
    return max(1, min(kv, int(math.floor(kv * spec["keep"] + 0.5))))


# ---------------------------------------------------------------------------- rewrite
class _Builder:
    """Appends tensors and ops to a list being built, in the attention op's place."""

    def __init__(self, graph: Graph, att: Op, method: str):
        self.tensors = graph.tensors
        self.next = max(graph.tensors, default=-1) + 1
        self.att, self.method = att, method
        self.ops: list[Op] = []

    def t(self, shape, dtype, kind="activation") -> int:
        tid = self.next
        self.next += 1
        self.tensors[tid] = Tensor(tid, tuple(int(s) for s in shape), dtype, kind)
        return tid

    def op(self, kind: str, name: str, attrs: dict, ins, outs, machinery: bool) -> None:
        a = dict(attrs)
        if machinery:
            a["pruning"] = self.method
        self.ops.append(Op(-1, kind, tuple(ins), tuple(outs), a, self.att.layer,
                           self.att.module, f"{self.method}.{name}" if machinery else name))


def visible(a) -> int:
    """Keys one query of an attention with attributes ``a`` sees at most: all
    ``kv_len``, or the sliding window's."""
    kv, w = a["kv_len"], int(a.get("window", 0) or 0)
    return min(kv, w) if w > 0 else kv


def rewrite_attention(graph: Graph, idx: int, spec: dict) -> list[Op]:
    """The ops replacing ``graph.ops[idx]`` (an attention); new tensors go into ``graph``."""
    att = graph.ops[idx]
    a = att.attrs
    seen = visible(a)
    kk = spec_keys(spec, seen)
    if kk >= seen:
        return [att]
    bld = _Builder(graph, att, spec["method"])
    if spec["mode"] == "value":
        # SpAtten: one pass scores all keys, the top-k engine picks the v_len largest
        # probabilities of each row inside the attention, and only those values are
        # fetched and weighted
        bld.ops.append(replace(att, attrs={**a, "v_len": kk}))
        return bld.ops
    if spec["mode"] == "hip":
        _hip(bld, graph, att, kk, spec["block"])
    elif spec["mode"] == "minference":
        _minference(bld, graph, att, spec["vertical"], spec["slash"])
    else:
        _topk(bld, graph, att, kk)
    return bld.ops


def _sparse_attention(bld: _Builder, att: Op, keys: int, block: int) -> None:
    """The attention over the selected keys, reading them where they lie in K and V.

    Every attribute of the dense attention stays (``kv_heads``, ``window``,
    ``v_len``, ...): the selection is made among the keys the mask lets a query
    see."""
    attrs = dict(att.attrs)
    attrs.update(sparse_keys=keys, sparse_block=block)
    bld.ops.append(Op(-1, "attention", att.inputs[:3], att.outputs[:1], attrs, att.layer,
                      att.module, "sparse_attention"))


def _expanded_keys(bld: _Builder, graph: Graph, att: Op) -> int:
    """K as every query head sees it: a broadcast of grouped keys (a view, no copy)."""
    a = att.attrs
    K = att.inputs[1]
    if a["kv_heads"] == a["heads"]:
        return K
    K2 = bld.t([a["batch"], a["heads"], a["kv_len"], a["head_dim"]], graph.tensors[K].dtype)
    bld.op("view", "expand_kv", {"note": "broadcast"}, [K], [K2], False)
    return K2


def _topk(bld: _Builder, graph: Graph, att: Op, kk: int) -> None:
    """Top-k attention: the full score matrix (machinery: which keys are best is known
    only after all scores are), a top-k per query row, then the attention over each
    query's k keys.

    The scores cover the keys some query can see (all of them, or under a sliding
    window the window's span: a decode step's last ``window`` keys, a slice of the
    cache). Each key/value head's keys are scored by its group's query heads packed
    as rows (``batch = b·kv_heads``, ``m = group x q``), so they are read once."""
    a = att.attrs
    b, h, hk, d, q, kv = (a["batch"], a["heads"], a["kv_heads"], a["head_dim"], a["q_len"],
                          a["kv_len"])
    Q, K = att.inputs[0], att.inputs[1]
    dt = graph.tensors[Q].dtype
    w = int(a.get("window", 0) or 0)
    n = window_keys(q, kv, w, bool(a["causal"])) if w > 0 else kv  # keys some query sees
    if n < kv:  # the window's keys: the last n rows of each key/value head's cache
        Kw = bld.t([b, hk, n, d], graph.tensors[K].dtype)
        bld.op("view", "window_keys", {"note": "slice"}, [K], [Kw], False)
        K = Kw
    rows = b * h * q
    s = bld.t([b * hk, (h // hk) * q, n], dt)
    bld.op("matmul", "scores", dict(batch=b * hk, m=(h // hk) * q, n=n, k=d), [Q, K], [s],
           True)
    vals, idx = bld.t([rows, kk], dt), bld.t([rows, kk], "int64")
    bld.op("topk", "topk", dict(rows=rows, n=n, k=kk), [s], [vals, idx], True)
    _sparse_attention(bld, att, kk, 1)


def _hip(bld: _Builder, graph: Graph, att: Op, kk: int, block: int) -> None:
    """HiP: per block of queries, ceil(log2(T / k)) refinements of a key selection
    (each scores 2k representative keys read where they lie in the cache, keeps k),
    then the block-sparse attention over the k selected keys."""
    a = att.attrs
    b, h, d, q = a["batch"], a["heads"], a["head_dim"], a["q_len"]
    Q = att.inputs[0]
    dt = graph.tensors[Q].dtype
    bq = min(block, q)
    nqb = math.ceil(q / bq)
    groups = b * h * nqb
    K = _expanded_keys(bld, graph, att)
    kdt = graph.tensors[K].dtype
    qb = bld.t([b * h * nqb, bq, d], dt)  # the queries by block
    if nqb * bq == q:
        bld.op("view", "query_blocks", {"note": "reshape"}, [Q], [qb], False)
    else:  # the last block is padded: a copy
        bld.op("gather", "query_blocks", dict(elements=groups * bq * d), [Q], [qb], True)
    seen = visible(a)  # the span a block's selection refines: all keys, or the window's
    iters = max(1, math.ceil(math.log2(seen / kk)))
    cand = min(2 * kk, seen)
    for _ in range(iters):
        reps = bld.t([groups, d, cand], kdt)  # representative keys: a view of the cache
        bld.op("view", "representative_keys", {"note": "strided view of K"}, [K], [reps],
               False)
        s = bld.t([groups, bq, cand], dt)
        bld.op("matmul", "representative_scores", dict(batch=groups, m=bq, n=cand, k=d),
               [qb, reps], [s], True)
        m = bld.t([groups * cand], dt)
        bld.op("reduce", "block_max", dict(fn="max", elements=groups * bq * cand,
                                           out_elements=groups * cand), [s], [m], True)
        vals, idx = bld.t([groups, kk], dt), bld.t([groups, kk], "int64")
        bld.op("topk", "topk", dict(rows=groups, n=cand, k=kk), [m], [vals, idx], True)
    _sparse_attention(bld, att, kk, bq)


def _minference(bld: _Builder, graph: Graph, att: Op, vertical: int, slash: int) -> None:
    """MInference's ``vertical_and_slash_kernel`` (github.com/microsoft/MInference,
    ``minference/modules/minference_forward.py``): the last ``last_q = 64`` queries'
    attention over all T keys estimates each head's vertical lines (column sums, the top
    ``vertical``) and slash lines (sums along the diagonals, the top ``slash``), the
    index lists are sorted and turned into per-64-row-block key lists
    (``convert_vertical_slash_indexes``), and the sparse kernel attends each query to
    those keys. The budgets are capped as released: ``min(T, max(vertical, 30))`` and
    ``min(T, max(slash, 50))``. Each key/value head's keys are scored by its group's
    query heads packed as rows (``batch = b·kv_heads``), as top-k attention does."""
    a = att.attrs
    b, h, hk, d, q, kv = (a["batch"], a["heads"], a["kv_heads"], a["head_dim"], a["q_len"],
                          a["kv_len"])
    Q, K = att.inputs[0], att.inputs[1]
    dt = graph.tensors[Q].dtype
    last = min(MINFERENCE_LAST_Q, q)
    v, s = min(kv, max(vertical, 30)), min(kv, max(slash, 50))
    ql = bld.t([b * hk, (h // hk) * last, d], dt)
    bld.op("view", "last_queries", {"note": "slice: the last 64 query rows"}, [Q], [ql], False)
    rows = b * h * last
    sc = bld.t([b * hk, (h // hk) * last, kv], dt)
    bld.op("matmul", "last_q_scores", dict(batch=b * hk, m=(h // hk) * last, n=kv, k=d),
           [ql, K], [sc], True)
    p = bld.t([rows, kv], "fp32")
    bld.op("softmax", "last_q_softmax", dict(rows=rows, cols=kv), [sc], [p], True)
    for name, n_lines, k_lines in (("vertical", kv, v), ("slash", kv, s)):
        line = bld.t([b * h, n_lines], "fp32")
        bld.op("reduce", f"{name}_sum", dict(fn="sum", elements=rows * kv,
                                             out_elements=b * h * n_lines), [p], [line], True)
        vals, idx = bld.t([b * h, k_lines], "fp32"), bld.t([b * h, k_lines], "int64")
        bld.op("topk", f"{name}_topk", dict(rows=b * h, n=n_lines, k=k_lines), [line],
               [vals, idx], True)
        svals, sidx = bld.t([b * h, k_lines], "int64"), bld.t([b * h, k_lines], "int64")
        bld.op("topk", f"{name}_sort", dict(rows=b * h, n=k_lines, k=k_lines), [idx],
               [svals, sidx], True)
    blocks = math.ceil(q / MINFERENCE_LAST_Q)
    merged = bld.t([b * h * blocks * (v + s)], "int64")
    bld.op("elementwise", "block_indexes", dict(fn="compare", elements=b * h * blocks * (v + s)),
           [bld.t([b * h * (v + s)], "int64")], [merged], True)
    _sparse_attention(bld, att, min(visible(a), v + s), MINFERENCE_LAST_Q)
