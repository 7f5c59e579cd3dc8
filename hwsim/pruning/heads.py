"""Head pruning: fewer attention heads, so narrower q/k/v projections and o_proj input.

Two passes decide how many heads each layer keeps:

- ``spatten-heads``: SpAtten's cascade head pruning. At run time the
  magnitude of each head's attention output is summed (``reduce``) and
  accumulated across layers (``elementwise add``), and a ``topk`` picks the
  heads the following layers compute;
- ``heads``: static removal (AMP, SHRP): heads removed offline, nothing to
  decide at run time.

With grouped-query attention (TinyLlama: 32 query heads over 4 key/value
heads) both remove **whole groups**: a key/value head with the query heads that
share it (:func:`~hwsim.pruning.common.kept_heads`), so the attention keeps
``heads`` a multiple of ``kv_heads``, the K and V projections and the KV cache
shrink with the query heads, and a keep that rounds to no group is an error.
SpAtten (designed for multi-head attention) then ranks groups: the magnitudes
of a group's query heads are summed (``reduce``, ``spatten.group_score``) and
the ``topk`` runs over the groups.

:func:`scale_heads` then rewrites one layer of a concrete graph, found from
its structure like the tensor-parallel pass does (:mod:`hwsim.parallel`):
walking back from the attention's query, key and value through views, rotary
embeddings, KV-cache writes and copies to the projections whose weights they
come from (their output width shrinks, a fused QKV projection included), and
forward from the attention's output to the projection that reads it (its
input width shrinks). The attention runs ``heads`` and ``kv_heads`` scaled
alike, so grouped-query attention keeps whole groups (a count that is not
whole groups is rounded down to them: the attention never runs a number of
heads that is not a multiple of its ``kv_heads``).
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import InputError
from ..ir import Graph, Op, Tensor
from .common import keep_list, kept_heads, layers_param
from .plan import Plan, Step


def spatten_heads(plan: Plan, step: Step) -> None:
    spatten_heads_schedule(plan, step, "keep")
    plan.record(step)


def spatten_heads_schedule(plan: Plan, step: Step, key: str) -> None:
    """Cascade head keep (layer 0 dense in a prefill) and its run-time machinery."""
    lst = keep_list(plan, step, key)
    if lst is None:
        keep = float(step.get(key))
        lst = ([1.0] if plan.phase == "prefill" else [keep]) + [keep] * (plan.num - 1)
    elif plan.phase == "prefill" and lst[0] < 1:
        raise step.error(key, "SpAtten ranks heads by the outputs of earlier layers, so in a "
                         "prefill layer 0 keeps every head")
    b = plan.batch
    alive = plan.alive()
    for i, layer in enumerate(alive):
        new = kept_heads(plan, step, layer, lst[layer], key)
        if new >= plan.heads[layer]:
            continue
        src = alive[i - 1] if i else layer
        q, h, d = plan.queries(src), plan.heads[src], plan.head_dim[src]
        n, g = plan.heads[layer], plan.group(layer)
        blk = plan.block(step, layer)
        mag = blk.reduce("spatten.head_magnitude", "norm", b * q * h * d, b * h)
        acc = blk.elementwise("spatten.head_accumulate", "add", b * h, ins=[mag, None])
        if h != n:
            acc = None
        if g > 1:  # rank whole groups: the sum of their query heads' scores
            acc = blk.reduce("spatten.group_score", "sum", b * n, b * (n // g), x=acc)
        blk.topk("spatten.head_topk", rows=b, n=n // g, k=new // g, x=acc)
        plan.heads[layer] = new


def heads(plan: Plan, step: Step) -> None:
    """Static head removal: ``keep`` of the heads of each listed layer (all by default)."""
    lst = keep_list(plan, step)
    if lst is not None and step.get("layers") is not None:
        raise step.error("layers", "give layers with a scalar keep; a keep list already says "
                         "what each layer keeps")
    layers = layers_param(plan, step)
    for layer in layers:
        f = lst[layer] if lst is not None else float(step.get("keep"))
        plan.heads[layer] = kept_heads(plan, step, layer, f)
    plan.record(step)


# ---------------------------------------------------------------------------- rewrite
_PASS_THROUGH = ("view", "rope", "kv_write", "elementwise", "concat")


def scale_heads(graph: Graph, layer: int, new_heads: int, source: str = "") -> Graph:
    """``graph`` with layer ``layer``'s attention running ``new_heads`` query heads."""
    ops = graph.ops
    att = [i for i, op in enumerate(ops) if op.layer == layer and op.kind == "attention"]
    if len(att) != 1:
        raise InputError(f"head pruning needs one attention op in layer {layer}, found "
                         f"{len(att)}", source=source, field="pruning")
    a = ops[att[0]].attrs
    h, hk = a["heads"], a["kv_heads"]
    if new_heads >= h:
        return graph
    group = h // hk
    new_kv = max(1, new_heads // group)
    new_heads = new_kv * group
    producer = {o: i for i, op in enumerate(ops) for o in op.outputs}
    consumers: dict[int, list[int]] = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            consumers.setdefault(t, []).append(i)
    s = _Scaler(graph, producer, consumers, source, layer)
    q_ratio, kv_ratio = (new_heads, h), (new_kv, hk)
    att_op = ops[att[0]]
    s.back(att_op.inputs[0], q_ratio, h)
    for t in att_op.inputs[1:3]:
        s.back(t, kv_ratio, hk)
    s.forward(att_op.outputs[0], q_ratio, h)
    s.op_attrs[att[0]] = {"heads": new_heads, "kv_heads": new_kv}
    for tid, ratio in list(s.ratio.items()):
        if s.tensors[tid].kind != "param":
            s.side(tid, ratio, h if ratio == q_ratio else hk)
    return s.build()


class _Scaler:
    def __init__(self, graph: Graph, producer, consumers, source: str, layer: int):
        self.g, self.producer, self.consumers = graph, producer, consumers
        self.source, self.layer = source, layer
        self.tensors: dict[int, Tensor] = dict(graph.tensors)
        self.ratio: dict[int, tuple[int, int]] = {}  # tensor -> (new, old) heads
        self.op_attrs: dict[int, dict] = {}
        self.scaled_attrs: set[tuple[int, str]] = set()

    def fail(self, op: Op, what: str) -> InputError:
        return InputError(f"cannot prune heads of layer {self.layer}: {what} (op: "
                          f"{op.line(self.g)})", source=self.source, field="pruning")

    def scale_tensor(self, tid: int, ratio: tuple[int, int], heads: int, prefer: int | None = None,
                     op: Op | None = None) -> None:
        if tid in self.ratio:
            return
        new, old = ratio
        t = self.tensors[tid]
        shape = list(t.shape)
        order = ([prefer] if prefer is not None else []) + \
            [i for i, d in enumerate(shape) if d == heads and len(shape) >= 3] + \
            list(range(len(shape) - 1, -1, -1))
        for i in order:
            if i is not None and 0 <= i < len(shape) and shape[i] * new % old == 0 \
                    and shape[i] >= old:
                shape[i] = shape[i] * new // old
                break
        else:
            raise self.fail(op or self.g.ops[0], f"tensor t{tid} {t.shape} has no dimension "
                            f"that holds whole heads")
        self.tensors[tid] = replace(t, shape=tuple(shape))
        self.ratio[tid] = ratio

    def scale_attr(self, idx: int, key: str, ratio: tuple[int, int]) -> None:
        if (idx, key) in self.scaled_attrs:
            return
        self.scaled_attrs.add((idx, key))
        op = self.g.ops[idx]
        new, old = ratio
        value = self.op_attrs.get(idx, {}).get(key, op.attrs[key])
        if value * new % old:
            raise self.fail(op, f"{key}={value} does not hold whole heads")
        self.op_attrs.setdefault(idx, {})[key] = value * new // old

    def side(self, tid: int, ratio, heads: int) -> None:
        """Other readers of a narrowed tensor in the layer (a cache write beside the attention)."""
        for idx in self.consumers.get(tid, []):
            op = self.g.ops[idx]
            if op.layer != self.layer or op.kind not in ("kv_write", "view", "elementwise") \
                    or any((idx, k) in self.scaled_attrs for k in ("elements", "")):
                continue
            if op.kind == "elementwise" and any(
                    t not in self.ratio and self.tensors[t].kind != "param" for t in op.inputs):
                continue  # mixes with a full-width tensor: not part of the head path
            self.scaled_attrs.add((idx, ""))
            if "elements" in op.attrs:
                self.scale_attr(idx, "elements", ratio)
            for t in op.inputs[1:] if op.kind == "kv_write" else ():
                self.scale_tensor(t, ratio, heads, None, op)
            for o in op.outputs:
                if o not in self.ratio:
                    self.scale_tensor(o, ratio, heads, None, op)
                    self.side(o, ratio, heads)

    def back(self, tid: int, ratio, heads: int) -> None:
        """Shrink ``tid`` and everything it comes from, up to the projections."""
        if tid in self.ratio:
            return
        self.scale_tensor(tid, ratio, heads)
        idx = self.producer.get(tid)
        if idx is None:
            return  # a graph input: the KV cache of earlier steps
        op = self.g.ops[idx]
        if op.layer != self.layer:
            raise self.fail(op, "the attention's operand comes from outside its layer")
        if op.kind == "matmul" and len(op.inputs) > 1 and \
                self.tensors[op.inputs[1]].kind == "param":
            if idx in self.op_attrs and "n" in self.op_attrs[idx]:
                return  # a fused QKV projection, already narrowed by another operand
            self.scale_attr(idx, "n", ratio)
            n_old = op.attrs["n"]
            for p in op.inputs[1:]:
                if self.tensors[p].kind == "param" and p not in self.ratio:
                    dims = list(self.tensors[p].shape)
                    prefer = next((i for i, d in enumerate(dims) if d == n_old), None)
                    self.scale_tensor(p, ratio, heads, prefer, op)
            return
        if op.kind not in _PASS_THROUGH:
            raise self.fail(op, f"a {op.kind} between a projection and the attention")
        for key in ("elements",):
            if key in op.attrs:
                self.scale_attr(idx, key, ratio)
        operands = op.inputs[:1] if op.kind == "rope" else op.inputs
        for t in operands:
            if self.tensors[t].kind == "param":
                self.scale_tensor(t, ratio, heads, None, op)
            else:
                self.back(t, ratio, heads)

    def forward(self, tid: int, ratio, heads: int) -> None:
        """Shrink the attention output's path to the projection that reads it."""
        self.scale_tensor(tid, ratio, heads)
        for idx in self.consumers.get(tid, []):
            op = self.g.ops[idx]
            if op.kind == "matmul" and len(op.inputs) > 1 and \
                    self.tensors[op.inputs[1]].kind == "param":
                k_old = op.attrs["k"]
                self.scale_attr(idx, "k", ratio)
                w = op.inputs[1]
                dims = list(self.tensors[w].shape)
                prefer = next((i for i in range(len(dims) - 1, -1, -1) if dims[i] == k_old), None)
                self.scale_tensor(w, ratio, heads, prefer, op)
                continue
            if op.kind not in ("view", "elementwise"):
                raise self.fail(op, f"a {op.kind} between the attention and its output "
                                f"projection")
            if "elements" in op.attrs:
                self.scale_attr(idx, "elements", ratio)
            for o in op.outputs:
                self.forward(o, ratio, heads)

    def build(self) -> Graph:
        ops = [replace(op, attrs={**op.attrs, **self.op_attrs[i]}) if i in self.op_attrs else op
               for i, op in enumerate(self.g.ops)]
        return Graph(self.g.header, self.tensors.values(), ops)
