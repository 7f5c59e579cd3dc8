"""Quantization widths per tensor (SpAtten's progressive quantization).

``tensors`` gives the storage width of the attention's operands: ``query``,
``key``, ``value`` (or ``kv`` for both), as bits (``6`` is the fixed-point
type ``fix6``) or a dtype name (``int8``, ``fp8``). Every attention of the
pruned stack then reads its operands at that width: a ``cast`` (the
quantizer) writes the narrow copy, before the KV-cache write when the operand
is cached (so the cache itself is narrow, and so is what a decode step
reads), else just before the attention.

Progressive quantization re-fetches the low bits of the keys where the
attention is flat (SpAtten: max probability under 0.05). Which rows are flat
depends on the data, so the decision belongs to the machine running the
attention: with ``refetch: auto`` each attention carries ``lsb_bits`` and a
fourth operand, the keys' low-bit plane (a ``kv_cache`` tensor: it is held in
memory beside the MSB plane), and the target decides per row from the
probabilities against its re-quantization threshold which rows re-fetch it.
With a number, ``refetch`` is a fixed fraction of key rows: each attention then
also costs the flatness check and the ``gather`` of ``lsb_bits`` more bits for
those rows. The check needs no pass over the probabilities: a softmax keeps
each row's maximum score and exponential sum, and the largest probability is
1 / sum, so it is one ``elementwise compare`` per query row.

The attention's arithmetic runs at the query's type; a target must know how
to price a narrow type it is asked to compute with (the roofline presets know
fp and int types, so quantize keys and values, or give the query a dtype such
as ``int8``).
"""

from __future__ import annotations

import math
from dataclasses import replace

from ..ir import Graph, Op, Tensor
from .plan import Plan, Step
from .registry import tensor_dtype


def quant(plan: Plan, step: Step) -> None:
    tensors = step.get("tensors")
    for name, width in tensors.items():
        dt = tensor_dtype(width)
        if name == "kv":
            plan.dtypes["key"] = plan.dtypes["value"] = dt
        else:
            plan.dtypes[name] = dt
    if step.get("refetch") == "auto":
        plan.refetch = {"auto": True, "bits": int(step.get("lsb_bits", 4))}
    elif step.get("refetch") is not None:
        plan.refetch = {"fraction": float(step.get("refetch")),
                        "bits": int(step.get("lsb_bits", 4))}
    plan.record(step, dtypes=dict(plan.dtypes), refetch=dict(plan.refetch))


_OPERAND = {"query": 0, "key": 1, "value": 2}


def retype(graph: Graph, layers: set[int], dtypes: dict, refetch: dict) -> Graph:
    """Quantize the attention operands of ``layers`` (global indices)."""
    if not dtypes and not refetch:
        return graph
    tensors = dict(graph.tensors)
    producer = {o: i for i, op in enumerate(graph.ops) for o in op.outputs}
    next_id = max(tensors, default=-1) + 1
    before: dict[int, list[Op]] = {}  # op index -> ops inserted before it
    new_inputs: dict[int, dict[int, int]] = {}  # op index -> {input position: tensor}

    def fresh(shape, dtype, kind="activation") -> int:
        nonlocal next_id
        tid = next_id
        next_id += 1
        tensors[tid] = Tensor(tid, tuple(shape), dtype, kind)
        return tid

    def cast(at: int, src: int, dt: str, layer, module, what: str) -> int:
        t = tensors[src]
        out = fresh(t.shape, dt)
        before.setdefault(at, []).append(Op(-1, "elementwise", (src,), (out,), {
            "fn": "cast", "elements": t.numel, "pruning": "quant"}, layer, module,
            f"quant.quantize_{what}"))
        return out

    done: set[int] = set()
    auto_lsb: dict[int, tuple[int, int]] = {}  # attention index -> (LSB plane, bits)
    for i, op in enumerate(graph.ops):
        if op.kind != "attention" or op.layer not in layers:
            continue
        for what, pos in _OPERAND.items():
            dt = dtypes.get(what)
            if dt is None:
                continue
            tid = op.inputs[pos]
            p = producer.get(tid)
            if p is not None and graph.ops[p].kind == "kv_write":
                if tid in done:
                    continue
                done.add(tid)
                kw = graph.ops[p]
                tensors[tid] = replace(tensors[tid], dtype=dt)
                for old in kw.inputs[1:]:  # the entries cached by earlier steps
                    tensors[old] = replace(tensors[old], dtype=dt)
                q = cast(p, kw.inputs[0], dt, kw.layer, kw.module, what)
                new_inputs.setdefault(p, {})[0] = q
            else:
                new_inputs.setdefault(i, {})[pos] = cast(i, tid, dt, op.layer, op.module, what)
        if refetch.get("auto"):
            a = op.attrs
            plane = fresh([a["batch"], a["kv_heads"], a["kv_len"], a["head_dim"]],
                          f"int{refetch['bits']}", "kv_cache")
            auto_lsb[i] = (plane, refetch["bits"])
        elif refetch.get("fraction"):
            a = op.attrs
            rows = a["batch"] * a["heads"] * a["q_len"]
            sums = fresh([rows], "fp32")
            flat = fresh([rows], "bool")
            before.setdefault(i, []).append(Op(-1, "elementwise", (sums,), (flat,), {
                "fn": "compare", "elements": rows, "pruning": "quant"}, op.layer, op.module,
                "quant.flatness_check"))
            n = math.ceil(refetch["fraction"] * a["batch"] * a["kv_heads"] * a["kv_len"]
                          * a["head_dim"])
            bits = f"int{refetch['bits']}"
            plane = fresh([a["batch"] * a["kv_heads"] * a["kv_len"] * a["head_dim"]], bits)
            idx = fresh([max(1, n // a["head_dim"])], "int64")
            lsb = fresh([n], bits)
            before.setdefault(i, []).append(Op(-1, "gather", (plane, idx), (lsb,), {
                "elements": n, "pruning": "quant"}, op.layer, op.module, "quant.lsb_refetch"))
    ops: list[Op] = []
    for i, op in enumerate(graph.ops):
        ops.extend(before.get(i, []))
        if i in new_inputs:
            ins = list(op.inputs)
            for pos, tid in new_inputs[i].items():
                ins[pos] = tid
            op = replace(op, inputs=tuple(ins))
        if i in auto_lsb:
            plane, bits = auto_lsb[i]
            op = replace(op, inputs=(*op.inputs[:3], plane), attrs={**op.attrs, "lsb_bits": bits})
        ops.append(op)
    return graph.replace_ops(ops, tensors.values())
