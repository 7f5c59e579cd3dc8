"""Sparse attention: each query (or block of queries) attends to its best keys only.

The passes record per layer what to keep; :func:`rewrite_attention` then
replaces the layer's fused ``attention`` by what the method runs:

- ``topk-attention`` (and SpAtten's local value pruning, ``value_keep``): the
  full score matrix (``matmul`` Q·Kᵀ, needed to know the best keys), a
  ``topk`` per query row, the ``softmax`` of the kept scores (SpAtten: of the
  whole row, before the top-k), a ``gather`` of the kept value rows per
  query, and the product with them (``matmul``). The score matrix is written
  and read: top-k attention cannot be one fused kernel over the kept keys,
  because which keys those are is known only after all scores are.
- ``hip`` (hierarchical pruning): queries in blocks of ``block`` share a
  selection of ``k`` keys, refined over ceil(log2(T / k)) iterations: each
  scores 2k candidate keys, one representative per half of each kept span
  (``matmul`` block x 2k x d, ``reduce max`` over the block's queries), and
  keeps k (``topk``): O(T log T) in all. Then each block attends to its k keys
  (``attention``, batched over blocks). HiP's kernels read the representative
  and selected keys where they lie in the cache, without copying them: those
  operands are tensors of the size the kernel reads, with no gather.
"""

from __future__ import annotations

import math

from ..ir import Graph, Op, Tensor
from .common import layers_param
from .plan import Plan, Step

HIP_BLOCK = 32  # queries sharing one key selection when the step does not say (HiP's default)


def topk_attention(plan: Plan, step: Step) -> None:
    _sparse(plan, step, {"method": "topk-attention", "mode": "topk"})


def hip(plan: Plan, step: Step) -> None:
    _sparse(plan, step, {"method": "hip", "mode": "hip",
                         "block": int(step.get("block", HIP_BLOCK))})


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
        keys.append(min(plan.keys(layer), spec_keys(spec, plan.keys(layer))))
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


def rewrite_attention(graph: Graph, idx: int, spec: dict) -> list[Op]:
    """The ops replacing ``graph.ops[idx]`` (an attention); new tensors go into ``graph``."""
    att = graph.ops[idx]
    a = att.attrs
    b, h, hk, d = a["batch"], a["heads"], a["kv_heads"], a["head_dim"]
    dv, q, kv = a.get("v_head_dim", d), a["q_len"], a["kv_len"]
    kk = spec_keys(spec, kv)
    if kk >= kv:
        return [att]
    Q, K, V = att.inputs[:3]
    (out_t,) = att.outputs[:1]
    dt = graph.tensors[Q].dtype
    bld = _Builder(graph, att, spec["method"])
    if hk != h:  # grouped keys and values, shared by the heads of a group
        K2, V2 = bld.t([b, h, kv, d], graph.tensors[K].dtype), bld.t([b, h, kv, dv],
                                                                     graph.tensors[V].dtype)
        bld.op("view", "expand_kv", {"note": "broadcast"}, [K], [K2], False)
        bld.op("view", "expand_kv", {"note": "broadcast"}, [V], [V2], False)
        K, V = K2, V2
    if spec["mode"] == "hip":
        _hip(bld, graph, Q, K, V, out_t, b, h, d, dv, q, kv, kk, spec["block"], a, dt)
    else:
        _topk(bld, Q, K, V, out_t, b, h, d, dv, q, kv, kk, spec["mode"] == "value", dt,
              graph.tensors[V].dtype)
    return bld.ops


def _topk(bld: _Builder, Q, K, V, out_t, b, h, d, dv, q, kv, kk, softmax_first: bool, dt, vdt):
    rows = b * h * q
    s = bld.t([b * h, q, kv], dt)
    bld.op("matmul", "scores", dict(batch=b * h, m=q, n=kv, k=d), [Q, K], [s], False)
    if softmax_first:  # SpAtten: probabilities of the whole row, then the top-k of them
        p = bld.t([rows, kv], dt)
        bld.op("softmax", "softmax", dict(rows=rows, cols=kv), [s], [p], False)
        vals, idx = bld.t([rows, kk], dt), bld.t([rows, kk], "int64")
        bld.op("topk", "topk", dict(rows=rows, n=kv, k=kk), [p], [vals, idx], True)
        probs = vals
    else:
        vals, idx = bld.t([rows, kk], dt), bld.t([rows, kk], "int64")
        bld.op("topk", "topk", dict(rows=rows, n=kv, k=kk), [s], [vals, idx], True)
        probs = bld.t([rows, kk], dt)
        bld.op("softmax", "softmax", dict(rows=rows, cols=kk), [vals], [probs], False)
    vsel = bld.t([rows, kk, dv], vdt)
    bld.op("gather", "gather_values", dict(elements=rows * kk * dv), [V, idx], [vsel], True)
    bld.op("matmul", "probs_values", dict(batch=rows, m=1, n=dv, k=kk), [probs, vsel], [out_t],
           False)


def _hip(bld: _Builder, graph: Graph, Q, K, V, out_t, b, h, d, dv, q, kv, kk, block, a, dt):
    bq = min(block, q)
    nqb = math.ceil(q / bq)
    kdt, vdt = graph.tensors[K].dtype, graph.tensors[V].dtype
    groups = b * h * nqb
    qb = bld.t([b * nqb, h, bq, d], dt)
    if nqb * bq == q:
        bld.op("view", "query_blocks", {}, [Q], [qb], False)
    else:  # the last block is padded: a copy
        bld.op("gather", "query_blocks", dict(elements=groups * bq * d), [Q], [qb], True)
    iters = max(1, math.ceil(math.log2(kv / kk)))
    cand = min(2 * kk, kv)
    for _ in range(iters):
        reps = bld.t([groups, d, cand], kdt)  # representative keys, read where they lie
        s = bld.t([groups, bq, cand], dt)
        bld.op("matmul", "representative_scores", dict(batch=groups, m=bq, n=cand, k=d),
               [qb, reps], [s], True)
        m = bld.t([groups * cand], dt)
        bld.op("reduce", "block_max", dict(fn="max", elements=groups * bq * cand,
                                           out_elements=groups * cand), [s], [m], True)
        vals, idx = bld.t([groups, kk], dt), bld.t([groups, kk], "int64")
        bld.op("topk", "topk", dict(rows=groups, n=cand, k=kk), [m], [vals, idx], True)
    # the block-sparse kernel reads each block's selected keys and values where they lie
    ks, vs = bld.t([b * nqb, h, kk, d], kdt), bld.t([b * nqb, h, kk, dv], vdt)
    attrs = dict(batch=b * nqb, heads=h, kv_heads=h, head_dim=d, q_len=bq, kv_len=kk,
                 causal=a["causal"])
    if dv != d:
        attrs["v_head_dim"] = dv
    if nqb * bq == q:
        bld.op("attention", "block_sparse_attention", attrs, [qb, ks, vs], [out_t], False)
    else:
        out = bld.t([b * nqb, h, bq, dv], graph.tensors[out_t].dtype)
        bld.op("attention", "block_sparse_attention", attrs, [qb, ks, vs], [out], False)
        bld.op("view", "unpad", {"note": "slice"}, [out], [out_t], False)
