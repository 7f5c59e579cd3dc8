"""What each tensor and op of a graph is to SpAtten: keys, values, queries, weights.

Where a tensor lives (HBM or an on-chip buffer) is :mod:`.residency`'s plan.
DRAM traffic is reported by tensor class, so the graph is read once (per graph
object) to name the classes:

- ``query``, ``key``, ``value``: the operands of an ``attention`` op, the
  KV-cache entries a ``kv_write`` appends to them, and the operands of the
  matrix products a pruning pass splits an attention into (the product that
  reads the key cache and feeds a softmax is Q·K; the gathered values feed
  prob·V);
- ``lsb``: the low bits of keys that progressive quantization re-fetches (a
  ``gather`` marked ``pruning=quant``);
- ``weight``: parameters (projections, FFN, embedding tables);
- ``act``: every other activation that spills to DRAM.

The op after a LSB re-fetch that consumes it (its attention) gives the
re-fetch its query count and head dim.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Roles:
    tensor_class: dict[int, str] = field(default_factory=dict)
    consumer_attention: dict[int, object] = field(default_factory=dict)  # op id -> op
    qk_matmuls: set[int] = field(default_factory=set)
    pv_matmuls: set[int] = field(default_factory=set)
    value_gathers: set[int] = field(default_factory=set)


def analyse(graph) -> Roles:
    r = Roles()
    t = graph.tensors
    consumers: dict[int, list] = {}
    # the ops of the kinds the passes below read, each kind in graph order (a pass
    # over one kind's ops in order is the pass over all ops that skips the others)
    of_kind: dict[str, list] = {"attention": [], "matmul": [], "kv_write": [], "gather": []}
    by_module: dict[str, list] = {}  # attention and KV-cache products by module
    for op in graph.ops:
        for i in op.inputs:
            got = consumers.get(i)
            if got is None:
                consumers[i] = [op]
            else:
                got.append(op)
        same = of_kind.get(op.kind)
        if same is not None:
            same.append(op)
            if op.kind == "attention" or (op.kind == "matmul" and any(
                    t[i].kind == "kv_cache" for i in op.inputs)):
                by_module.setdefault(op.module, []).append(op)
    cls = r.tensor_class
    for op in of_kind["attention"]:
        for pos, name in enumerate(("query", "key", "value")):
            if pos < len(op.inputs):
                cls.setdefault(op.inputs[pos], name)
    for op in of_kind["kv_write"]:  # their cache is the attention operand's class
        if op.outputs:
            c = cls.get(op.outputs[0])
            if c is None:
                c = _downstream_class(op.outputs[0], consumers, cls)
            if c:
                for i in (*op.inputs[1:], op.outputs[0]):
                    cls.setdefault(i, c)
    for op in of_kind["gather"]:
        if op.attrs.get("pruning") == "quant" or op.name.endswith("lsb_refetch"):
            for i in op.inputs[:1]:
                cls[i] = "lsb"
            r.consumer_attention[op.id] = _nearest(by_module.get(op.module, []), op)
        elif op.inputs and t[op.inputs[0]].kind == "kv_cache" and (
                op.attrs.get("pruning") or op.name.endswith("gather_values")):
            src = op.inputs[0]
            if cls.get(src) != "key":
                cls[src] = cls.get(src, "value")
                r.value_gathers.add(op.id)
                for o in op.outputs:
                    for c in consumers.get(o, []):
                        if c.kind == "matmul":
                            r.pv_matmuls.add(c.id)
    for op in of_kind["matmul"]:
        if op.id in r.pv_matmuls:
            continue
        cache = [i for i in op.inputs if t[i].kind == "kv_cache"]
        if not cache:
            continue
        feeds_softmax = any(c.kind == "softmax" for o in op.outputs
                            for c in consumers.get(o, []))
        if feeds_softmax or cls.get(cache[0]) == "key":
            r.qk_matmuls.add(op.id)
            cls[cache[0]] = "key"
            for i in op.inputs:
                if i != cache[0]:
                    cls.setdefault(i, "query")
        else:
            r.pv_matmuls.add(op.id)
            cls.setdefault(cache[0], "value")
    for tid, ten in t.items():
        if ten.kind == "param":
            cls.setdefault(tid, "weight")
    return r


def _downstream_class(tid: int, consumers, cls) -> str | None:
    for c in consumers.get(tid, []):
        if c.kind == "attention":
            for pos, name in enumerate(("query", "key", "value")):
                if pos < len(c.inputs) and c.inputs[pos] == tid:
                    return name
    return None


def _nearest(candidates: list, op):
    """The attention (or Q·K product) of the same module nearest to ``op``."""
    return min(candidates, key=lambda o: abs(o.id - op.id), default=None)


def class_of(roles: Roles, tid: int, default: str = "act") -> str:
    return roles.tensor_class.get(tid, default)
