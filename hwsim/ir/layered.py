"""Instantiating a template with a different size in each layer.

Token pruning makes later layers run on fewer tokens; KV-cache pruning makes
their attention read fewer keys; layer pruning removes blocks. All three are
*size schedules* over the layers of a template: layer ``l`` is instantiated
with its own ``seq_len`` / ``kv_len`` (:func:`instantiate_layers`).

Where a tensor crosses from a layer with one size into a layer with another
(the residual stream entering a pruned layer), the tokens that survive must be
selected: a ``gather`` op is inserted, reading the surviving rows and writing a
tensor of the new size. It is real work, costed by every target like any other
op (the pruning machinery is never free).

Sizes follow the op that computes a tensor; a graph input or parameter takes
the size of its first reader. Ops outside the layers take the size of the
nearest layer before them (the size at the start before the first layer).
Dropped layers vanish, and readers of their output read their input instead:
a block's output is its residual input plus its update, so without the update
it is the input.

A multi-token decode template (several query rows per sequence, each layer its
own ``seq_len``) marks the ops PyTorch runs only for several rows
(:data:`hwsim.ir.graph.ONE_ROW_VIEW`: the attention output's layout copy, a view
at one row); a layer instantiated at ``seq_len = 1`` leaves them out, as a
one-row trace has them.

Every attribute of an op survives the re-instantiation, evaluated at the
layer's sizes: an attention keeps ``heads`` and ``kv_heads`` (grouped-query
attention), ``causal`` and its sliding ``window``. A window counts cached
entries, so a layer whose pruned sequence is shorter than the window simply
attends causally (:func:`hwsim.ir.kinds.visible_scores`). The per-query key
counts ``v_len`` and ``sparse_keys`` are capped at the layer's ``kv_len``: a
query cannot weight more keys than the pruned layer holds.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from .graph import ONE_ROW_VIEW, Graph, Op, Sizes, Tensor, new_op, new_tensor

Env = Mapping[str, int]


def instantiate_layers(template: Graph, base: Env, per_layer: Mapping[int, Env] | None = None,
                       drop_layers: Iterable[int] = (), method: str = "") -> Graph:
    """A concrete graph: ``template`` at ``base`` sizes, overridden per layer.

    Inserted token selections carry ``pruning=method`` when ``method`` is given.
    """
    per_layer = dict(per_layer or {})
    dropped = set(drop_layers)
    ops = list(template.ops)
    full = {"batch": 1, "seq_len": 1, "kv_len": 0, **base}

    # sizes of every op (one environment per layer, shared by its ops)
    op_sizes: list[Sizes] = []
    current = Sizes(full)
    layer_sizes: dict[int, Sizes] = {}
    for op in ops:
        if op.layer is not None:
            current = layer_sizes.get(op.layer)
            if current is None:
                current = layer_sizes[op.layer] = Sizes({**full,
                                                          **per_layer.get(op.layer, {})})
        op_sizes.append(current)

    # a tensor whose shape has no size to evaluate (a weight) has its shape in every
    # environment: the template's own (frozen) Tensor, never a token selection
    table, flags = template.sized_tensors()
    sized = {t.id for t, f in zip(table, flags) if f}

    producer: dict[int, int] = {}
    first_reader: dict[int, int] = {}
    for i, op in enumerate(ops):
        for o in op.outputs:
            producer[o] = i
        for t in op.inputs:
            first_reader.setdefault(t, i)

    alias = _drop_aliases(template, ops, dropped, producer)

    # every template tensor keeps its id, sized where it is computed (or first read)
    out = Graph(dict(template.header))
    for tid, t in template.tensors.items():
        if tid not in sized:
            out.tensors[tid] = t
            continue
        at = op_sizes[producer[tid]] if tid in producer else op_sizes[first_reader.get(tid, 0)]
        out.tensors[tid] = new_tensor(tid, at.shape(tid, t), t.dtype, t.kind)
    next_id = max(template.tensors, default=-1) + 1
    selected: dict[tuple[int, tuple], int] = {}  # (tensor, size) -> its token selection

    def read(tid: int, at: Sizes, op: Op) -> int:
        nonlocal next_id
        tid = alias.get(tid, tid)
        if tid not in sized:
            return tid
        t = template.tensors[tid]
        shape = at.shape(tid, t)
        if shape == out.tensors[tid].shape:
            return tid
        key = (tid, shape)
        if key not in selected:
            sel = next_id
            next_id += 1
            out.tensors[sel] = Tensor(sel, shape, t.dtype, t.kind)
            attrs = {"elements": out.tensors[sel].numel}
            if method:
                attrs["pruning"] = method
            out.ops.append(Op(len(out.ops), "gather", (tid,), (sel,), attrs, op.layer,
                              op.module, "token_select"))
            selected[key] = sel
        return selected[key]

    skipped = False
    for i, op in enumerate(ops):
        if op.layer in dropped:
            continue
        at = op_sizes[i]
        if op.attrs.get(ONE_ROW_VIEW) and at.env["seq_len"] == 1:  # a view at one row
            (src,), (dst,) = op.inputs, op.outputs
            alias[dst] = alias.get(src, src)
            skipped = True
            continue
        ins = tuple([read(t, at, op) for t in op.inputs])
        attrs = at.attrs(op.attrs)
        if op.kind == "attention":
            _cap_keys(attrs)
        out.ops.append(new_op(len(out.ops), op.kind, ins, op.outputs, attrs, op.layer,
                              op.module, op.name, op.repeat))
    if dropped or skipped:
        used = {t for op in out.ops for t in op.inputs + op.outputs}
        out.tensors = {tid: t for tid, t in out.tensors.items() if tid in used}
    out.header.update(batch=full["batch"], seq_len=full["seq_len"], kv_len=full["kv_len"])
    out.header.pop("template", None)
    return out


def _cap_keys(attrs: dict) -> None:
    """Per-query key counts of an attention capped at the keys its layer holds."""
    kv = attrs.get("kv_len")
    for key in ("v_len", "sparse_keys"):
        if isinstance(attrs.get(key), int) and isinstance(kv, int) and attrs[key] > kv:
            attrs[key] = kv


def _drop_aliases(template: Graph, ops: list[Op], dropped: set[int],
                  producer: dict[int, int]) -> dict[int, int]:
    """For each dropped layer, its output tensor -> its residual input tensor."""
    alias: dict[int, int] = {}
    for layer in sorted(dropped):
        idx = [i for i, op in enumerate(ops) if op.layer == layer]
        if not idx:
            raise ValueError(f"layer {layer} has no ops")
        inside = set(idx)
        produced = {o for i in idx for o in ops[i].outputs}
        inputs = {t for i in idx for t in ops[i].inputs
                  if t not in produced and t in producer and producer[t] not in inside}
        outputs = {o for o in produced
                   if any(o in ops[j].inputs for j in range(idx[-1] + 1, len(ops)))}
        outputs = {o for o in outputs if template.tensors[o].kind != "kv_cache"}
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"layer {layer} is not a residual block with one input and one "
                             f"output (inputs {sorted(inputs)}, outputs {sorted(outputs)})")
        (src,) = inputs
        (dst,) = outputs
        alias[dst] = alias.get(src, src)
    return alias
