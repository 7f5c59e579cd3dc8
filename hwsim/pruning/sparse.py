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

- ``deltallm`` (DeltaLLM, Qi, Gao, Ren and Chen, arXiv 2507.19608, 2025: temporal-delta
  attention for edge prefill and decode): each query attends fully to the keys of a
  local window of ``w`` tokens (a fused ``attention`` with ``window = w``); outside it,
  its score row is the previous query's, updated by the product of the thresholded
  delta of the query with the keys (the delta-network update y_t = y_{t-1} + W Δ_t of
  Neil et al. 2017 and Gao et al. 2018). The machinery: the delta formed against the
  stored query memory, thresholded, the memory updated, the kept components compacted
  (four passes over q x d per head), the sparse product (``matmul`` q x o x (1 - s) d,
  o = n - w keys outside the window, s the delta's sparsity), the previous row added
  (q x o), the softmax and the values over the o keys, the two partial attentions
  merged (q x d_v), and the state kept for the next query (the last score row and
  the query memory: n + d values per head held, o + d written per call). O(q w d) +
  O(q o (1 - s) d) + O(q o d_v) + O(q (o + d + d_v)) per head, against O(q n (d + d_v));
  what is from the paper
  and what is assumed: :func:`deltallm`.

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


# DeltaLLM (arXiv 2507.19608). From the abstract: attention sparsity 0 -> 60 % in the
# prefill, about 57 % across prefill and decode (BitNet-b1.58-2B-4T, Llama-3.2-1B-Instruct).
DELTALLM_SPARSITY = {"prefill": 0.60, "decode": 0.57}
# ASSUMED: the abstract names a local window of full attention but not its size.
DELTALLM_WINDOW = 64


def deltallm(plan: Plan, step: Step) -> None:
    """DeltaLLM's context-aware hybrid attention, prefill or decode.

    **From the paper** (its abstract; the method section could not be read here):
    a training-free framework for edge prefill *and* decode; "an accuracy- and
    memory-aware delta matrix construction strategy that introduces temporal
    sparsity" and "a context-aware hybrid attention mechanism that combines full
    attention in a local context window with delta approximation outside it";
    attention sparsity 60 % in the prefill and about 57 % across both stages (the
    defaults of ``sparsity``: 0.60 for a prefill, 0.57 for a decode step).

    **Assumed** (hwsim's model, after the delta networks of the same group: Neil et
    al. 2017, "Delta Networks for Optimized Recurrent Network Computation"; Gao et al.
    2018, DeltaRNN): the delta is that of the query, q_t - q̂, against a memory q̂ of
    the components last propagated; components whose change is below the threshold
    are not propagated (their share is ``sparsity``: the threshold itself is not
    modelled) and q̂ keeps their old value; a score row outside the window is the
    previous row plus the sparse delta's product with the keys (s_t = s_{t-1} +
    Δq_t Kᵀ), fetching only the kept components' columns of the keys (a
    component-major key layout, as delta networks fetch only the weight columns of
    non-zero deltas); the scores outside the window are kept in fp32 (an fp16 running
    sum would drift); the softmax and the values outside the window stay dense (the
    delta saves the score product: probabilities are not linear in it); the state
    kept per head between queries is the last score row
    (n values) and the query memory (d values), held beside the KV cache (counted
    in it); the window's attention and the delta part are two partial attentions
    merged by their log-sum-exp, as split attention kernels merge theirs; ``window``
    defaults to 64 tokens (the abstract gives no size). A window covering every key
    a query sees leaves the attention dense (``dense_layers``). The ops and their
    sizes: :func:`_deltallm`; docs/pruning.md, "Temporal-delta attention".
    """
    if plan.phase not in DELTALLM_SPARSITY:
        raise step.error("", f"DeltaLLM acts on a prefill or a decode step (phase: "
                         f"{plan.phase})")
    if plan.stack == "encoder":
        raise step.error("", "DeltaLLM updates each query's scores from the previous "
                         "query's: a causal decoder's (this model is an encoder)")
    sparsity = float(step.get("sparsity", DELTALLM_SPARSITY[plan.phase]))
    window = int(step.get("window", DELTALLM_WINDOW))
    spec = {"method": "deltallm", "mode": "deltallm", "window": window,
            "sparsity": sparsity}
    layers = layers_param(plan, step)
    for layer in layers:
        plan.sparse[layer] = dict(spec)
    d = sorted({plan.head_dim[layer] for layer in layers})
    plan.record(step, sparse_layers=layers, window=window, sparsity=sparsity,
                delta_components=[delta_components(x, sparsity) for x in d],
                keys_outside_window=sorted({max(0, plan.visible_keys(layer) - window)
                                            for layer in layers}),
                dense_layers=[layer for layer in layers
                              if window >= plan.visible_keys(layer)])


def delta_components(head_dim: int, sparsity: float) -> int:
    """Components of a query's delta propagated (over the threshold): ceil((1 - s) d)."""
    return max(1, math.ceil(round((1.0 - sparsity) * head_dim, 9)))


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
    if spec["mode"] == "deltallm":
        if spec["window"] >= seen:  # every key a query sees is in its window: dense
            return [att]
        bld = _Builder(graph, att, spec["method"])
        _deltallm(bld, graph, att, spec["window"], spec["sparsity"])
        return bld.ops
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


def _deltallm(bld: _Builder, graph: Graph, att: Op, window: int, sparsity: float) -> None:
    """DeltaLLM's hybrid attention over one layer (see :func:`deltallm` for what is the
    paper's and what is assumed).

    Sizes per call: b sequences, h query heads over h_k key/value heads (group g =
    h / h_k), q query rows, n keys a query sees, w = the window, o = n - w keys
    outside it, d and d_v the head widths, d' = ceil((1 - s) d) delta components kept.
    The local window is the dense attention restricted to its band (``window = w``,
    ``sparse_keys = w``: a query's w keys). The rest is the method's machinery:

    ====================  ============================  ==========================
    op                    kind                          size
    ====================  ============================  ==========================
    ``delta_form``        elementwise sub               b h q d (q - q̂)
    ``delta_threshold``   elementwise compare           b h q d (|Δ| > θ)
    ``delta_memory``      elementwise where             b h q d (q̂ takes the kept)
    ``delta_compact``     gather                        b h q d' (values kept)
    ``delta_scores``      matmul                        b h_k x g q x o x d'
    ``delta_accumulate``  elementwise add               b h q o (s_{t-1} + Δs), fp32
    ``delta_softmax``     softmax                       b h q rows x o
    ``delta_values``      matmul                        b h_k x g q x d_v x o
    ``delta_merge``       elementwise fma               b h q d_v (two partials)
    ``store_scores``      kv_write                      b h o (last score row)
    ``store_memory``      kv_write                      b h d (q̂)
    ====================  ============================  ==========================

    The state is held as n + d values per head (the row's allocation spans every key a
    query sees); each call writes the o accumulated scores of its last row (the one key
    that leaves the window each decode step enters the row with the score the window's
    attention gave it: h values per step, not costed).

    In a prefill the rows form one running sum (row t adds to row t-1's scores: the
    accumulation is a scan down the rows) and the memory q̂ of row t is row t-1's; in a
    decode step both come from the state the previous call kept, read from memory.
    With sparsity 0 the window's attention, the delta product and the values do the
    dense attention's FLOPs, 2 b h q n (d + d_v)."""
    a = att.attrs
    b, h, hk, d, q = a["batch"], a["heads"], a["kv_heads"], a["head_dim"], a["q_len"]
    dv = a.get("v_head_dim", d)
    kv = a["kv_len"]
    Q, K, V = att.inputs[:3]
    dt = graph.tensors[Q].dtype
    kdt, vdt = graph.tensors[K].dtype, graph.tensors[V].dtype
    n = visible(a)
    w = min(window, n)
    o = n - w
    dz = delta_components(d, sparsity)
    g = h // hk
    rows = b * h * q
    decode = q < kv  # the queries are the cache's last rows: a state from a previous call
    # -- the local window: the dense attention over each query's last w keys
    attrs = dict(a)
    attrs.update(window=min(int(a.get("window", 0) or 0) or w, w), sparse_keys=w,
                 sparse_block=1)
    local = bld.t([b, h, q, dv], dt)
    bld.ops.append(Op(-1, "attention", att.inputs[:3], (local,), attrs, att.layer, att.module,
                      "window_attention"))
    # -- the query's delta against the memory of its propagated components
    if decode:
        mem_prev = bld.t([b, h, d], dt, "kv_cache")  # the memory the last call kept
        score_prev = bld.t([b, h, n], "fp32", "kv_cache")  # and its last score row
        ins = [Q, mem_prev]
    else:  # row t's memory is row t-1's: the scan starts from the prompt's first query
        shifted = bld.t([b, h, q, d], dt)
        bld.op("view", "previous_queries", {"note": "the query rows shifted by one"}, [Q],
               [shifted], False)
        ins = [Q, shifted]
    delta = bld.t([b, h, q, d], dt)
    bld.op("elementwise", "delta_form", dict(fn="sub", elements=rows * d), ins, [delta], True)
    mask = bld.t([b, h, q, d], "bool")
    bld.op("elementwise", "delta_threshold", dict(fn="compare", elements=rows * d), [delta],
           [mask], True)
    memory = bld.t([b, h, q, d], dt)
    bld.op("elementwise", "delta_memory", dict(fn="where", elements=rows * d),
           [mask, Q] + ([mem_prev] if decode else []), [memory], True)
    kept = bld.t([b * hk, g * q, dz], dt)
    bld.op("gather", "delta_compact", dict(elements=rows * dz), [delta, mask], [kept], True)
    # -- outside the window: the previous row plus the sparse delta's product
    kcols = bld.t([b * hk, dz, o], kdt)
    bld.op("view", "delta_key_columns",
           {"note": "the kept components' columns of the keys outside the window"}, [K],
           [kcols], False)
    dscore = bld.t([b * hk, g * q, o], dt)
    bld.op("matmul", "delta_scores", dict(batch=b * hk, m=g * q, n=o, k=dz), [kept, kcols],
           [dscore], True)
    acc_in = [dscore]
    if decode:
        prev_out = bld.t([b, h, o], "fp32")
        bld.op("view", "previous_scores", {"note": "slice: the keys outside the window"},
               [score_prev], [prev_out], False)
        acc_in.append(prev_out)
    scores = bld.t([b * hk, g * q, o], "fp32")
    bld.op("elementwise", "delta_accumulate", dict(fn="add", elements=rows * o), acc_in,
           [scores], True)
    probs = bld.t([b * hk, g * q, o], dt)
    bld.op("softmax", "delta_softmax", dict(rows=rows, cols=o), [scores], [probs], True)
    vout = bld.t([b * hk, o, dv], vdt)
    bld.op("view", "values_outside_window", {"note": "slice: the values outside the window"},
           [V], [vout], False)
    far = bld.t([b * hk, g * q, dv], dt)
    bld.op("matmul", "delta_values", dict(batch=b * hk, m=g * q, n=dv, k=o), [probs, vout],
           [far], True)
    # -- the two partial attentions merged by their log-sum-exp
    bld.op("elementwise", "delta_merge", dict(fn="fma", elements=rows * dv), [local, far],
           [att.outputs[0]], True)
    # -- the state the next query starts from: the last score row and the memory
    last_row = bld.t([b, h, o], "fp32")
    bld.op("view", "last_score_row", {"note": "slice: each head's last row"}, [scores],
           [last_row], False)
    row_out = bld.t([b, h, n], "fp32", "kv_cache")
    bld.op("kv_write", "store_scores", dict(elements=b * h * o),
           [last_row] + ([score_prev] if decode else []), [row_out], True)
    last_mem = bld.t([b, h, d], dt)
    bld.op("view", "last_memory", {"note": "slice: each head's last memory row"}, [memory],
           [last_mem], False)
    mem_out = bld.t([b, h, d], dt, "kv_cache")
    bld.op("kv_write", "store_memory", dict(elements=b * h * d),
           [last_mem] + ([mem_prev] if decode else []), [mem_out], True)
