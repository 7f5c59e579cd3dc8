"""From a plan to the graph the targets cost.

1. :func:`~hwsim.ir.layered.instantiate_layers` instantiates the template
   with each layer's token count (prompt tokens in a prefill, cached tokens in
   a decode step, and a decode step's query rows where a generation's LazyLLM
   step revives tokens) and without the dropped layers; the ``gather`` ops it
   inserts where sizes change are marked with the method that shrank the layer.
2. The methods' machinery blocks are inserted at the start (or end) of their
   layer, as ordinary ops marked ``pruning=<method>``.
3. Head counts, FFN widths (:mod:`~hwsim.pruning.width`), operand widths,
   sparse attention and the experts of mixture-of-experts layers are rewritten
   in place (:mod:`~hwsim.pruning.heads`, :mod:`~hwsim.pruning.quant`, :mod:`~hwsim.pruning.sparse`,
   :mod:`~hwsim.pruning.experts`).
4. The header keeps the dense header, the step records (``pruning``) and the
   plan itself (``pruning_plan``), so a later pass continues from it.
"""

from __future__ import annotations

import re

from ..errors import InputError
from ..ir import Graph, Op, Tensor
from ..ir.graph import new_op
from ..ir.layered import instantiate_layers
from .experts import prune_experts
from .heads import scale_heads
from .kv import apply_kv_formats
from .plan import Plan
from .quant import retype
from .sparse import rewrite_attention
from .width import scale_ffn

_BLOCK_PREFIX = re.compile(r"^(.*?\.(?:layers|layer|h|blocks)\.\d+)(?:\.|$)")


def materialize(plan: Plan, template: Graph | None, dense: Graph, source: str = "") -> Graph:
    per_layer = {}
    for layer in range(plan.num):
        total = plan.tokens(layer)
        if total != plan.dense_tokens():
            per_layer[plan.first + layer] = {plan.axis: total}
        if plan.rows and plan.rows_at(layer) != plan.base["seq_len"]:
            per_layer.setdefault(plan.first + layer, {})["seq_len"] = plan.rows_at(layer)
    drop = [plan.first + layer for layer in plan.dropped]
    if per_layer and template is None:  # pragma: no cover - the passes check resizability
        raise InputError("token counts changed on a graph that is not a template", source=source)
    if template is not None or drop:
        try:
            g = instantiate_layers(template if template is not None else dense, plan.base,
                                   per_layer, drop)
        except ValueError as e:
            raise InputError(f"cannot prune this graph: {e}", source=source,
                             field="pruning") from None
    else:
        g = Graph(dense.header, dense.tensors.values(), dense.ops)
    g = _label_selections(g, plan)
    g = _insert_blocks(g, plan)
    for layer in plan.alive():
        if plan.heads[layer] < plan.dense_heads[layer]:
            g = scale_heads(g, plan.first + layer, plan.heads[layer], source)
    for layer in plan.alive() if plan.ffn_width else ():
        if plan.ffn_width[layer] < plan.ffn:
            g = scale_ffn(g, plan.first + layer, plan.ffn, plan.ffn_width[layer], source)
    alive = {plan.first + layer for layer in plan.alive()}
    g = retype(g, alive, plan.dtypes, plan.refetch)
    g = apply_kv_formats(g, {plan.first + layer: f for layer, f in plan.kv_formats.items()
                             if layer not in plan.dropped})
    g = _sparse(g, plan)
    g = prune_experts(g, plan)
    header = dict(dense.header)
    header["pruning"] = _records(plan, g)
    header["pruning_plan"] = plan.to_dict()
    return Graph(header, g.tensors.values(), g.ops)


def _label_selections(g: Graph, plan: Plan) -> Graph:
    fallback = next(iter(plan.changed_by.values()), "")
    ops = []
    for op in g.ops:
        if op.kind == "gather" and op.name == "token_select" and "pruning" not in op.attrs:
            rel = (op.layer if op.layer is not None else plan.first) - plan.first
            method = fallback
            for layer in range(min(rel, plan.num - 1), -1, -1):
                if layer in plan.changed_by:
                    method = plan.changed_by[layer]
                    break
            if method:
                op = new_op(op.id, op.kind, op.inputs, op.outputs,
                            {**op.attrs, "pruning": method}, op.layer, op.module,
                            f"{method}.token_select", op.repeat)
        ops.append(op)
    return g.replace_ops(ops)


def _insert_blocks(g: Graph, plan: Plan) -> Graph:
    if not plan.blocks:
        return g
    alive = plan.alive()
    first_op: dict[int, int] = {}
    last_op: dict[int, int] = {}
    for i, op in enumerate(g.ops):
        if op.layer is not None:
            first_op.setdefault(op.layer, i)
            last_op[op.layer] = i
    tensors = dict(g.tensors)
    next_id = max(tensors, default=-1) + 1
    # op index -> the ops to insert before (after) it, each as its fields but the id:
    # every op is built once, numbered by its place in the result
    before: dict[int, list[tuple]] = {}
    after: dict[int, list[tuple]] = {}
    for blk in plan.blocks:
        rel, where = blk.layer, blk.where
        if rel not in alive:
            later = [x for x in alive if x > rel]
            rel, where = (later[0], "start") if later else (alive[-1], "end")
        layer = plan.first + rel
        if layer not in first_op:
            continue
        prefix = _BLOCK_PREFIX.match(g.ops[first_op[layer]].module or "")
        module = f"{prefix.group(1) if prefix else plan.stack}.pruning.{blk.method}"
        ids = []
        for shape, dtype, kind in blk.tensors:
            tensors[next_id] = Tensor(next_id, tuple(shape), dtype, kind)
            ids.append(next_id)
            next_id += 1
        ops = [(o["kind"], tuple(ids[i] for i in o["ins"]), tuple(ids[i] for i in o["outs"]),
                {**o["attrs"], "pruning": blk.method}, layer, module, o["name"])
               for o in blk.ops]
        if where == "end":
            after.setdefault(last_op[layer], []).extend(ops)
        else:
            before.setdefault(first_op[layer], []).extend(ops)
    out: list[Op] = []
    for i, op in enumerate(g.ops):
        for fields in before.get(i, ()):
            out.append(new_op(len(out), *fields))
        out.append(op)  # (renumbered by replace_ops, the inserted ops kept as built)
        for fields in after.get(i, ()):
            out.append(new_op(len(out), *fields))
    return g.replace_ops(out, tensors.values())


def _sparse(g: Graph, plan: Plan) -> Graph:
    if not plan.sparse:
        return g
    layers = {plan.first + layer: spec for layer, spec in plan.sparse.items()
              if layer not in plan.dropped}
    g = Graph(g.header, g.tensors.values(), g.ops)  # rewriting adds tensors
    out: list[Op] = []
    for i, op in enumerate(g.ops):
        if op.kind == "attention" and op.layer in layers:
            out.extend(rewrite_attention(g, i, layers[op.layer]))
        else:
            out.append(op)
    return g.replace_ops(out)


def _records(plan: Plan, g: Graph) -> list[dict]:
    counts: dict[str, int] = {}
    kinds: dict[str, dict[str, int]] = {}
    for op in g.ops:
        m = op.attrs.get("pruning")
        if m:
            counts[m] = counts.get(m, 0) + 1
            kinds.setdefault(m, {})
            kinds[m][op.kind] = kinds[m].get(op.kind, 0) + 1
    out = []
    for rec in plan.records:
        rec = dict(rec)
        rec["overhead_ops"] = counts.get(rec["method"], 0)
        rec["overhead_kinds"] = dict(sorted(kinds.get(rec["method"], {}).items()))
        out.append(rec)
    return out
