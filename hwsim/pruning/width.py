"""Structured width pruning: narrower FFNs and fewer attention heads, decided offline.

FLAP (An, Zhao, Yu, Tang and Wang, "Fluctuation-based Adaptive Structured Pruning for
Large Language Models", AAAI 2024, arXiv 2312.11983) removes whole attention heads and
whole FFN intermediate channels of every layer, ranked by the fluctuation of their
input features over calibration data, and adds to each layer's output projections a
*bias* (the baseline fluctuation of the removed channels times their weights), so the
pruned model needs no retraining. Nothing is chosen at run time: the matmuls of each
layer are simply narrower, and the weights are smaller (memory and weight bytes fall).
What the pruned model runs, per layer with T tokens and model width D:

- attention: ``heads`` kept of the dense heads (whole groups with grouped-query
  attention, as :func:`~hwsim.pruning.common.kept_heads` counts them); q/k/v
  projections, the attention and the cache shrink, and ``o_proj`` reads fewer inputs
  (:func:`~hwsim.pruning.heads.scale_heads`);
- FFN: ``ffn`` channels kept of the dense intermediate width: the gate and up
  projections' outputs, the activation and the product, and the down projection's
  inputs shrink (:func:`scale_ffn`): 3 x 2 T D ffn' FLOPs for a gated FFN;
- bias compensation: two vector adds per layer (``flap.attn_bias``, ``flap.mlp_bias``:
  ``elementwise add`` of T x D with a D-wide bias, the only ops marked
  ``pruning=flap``): O(T D) per layer, against O(T D ffn) saved.

FLAP's ratios are adaptive per layer and module (its "AL-AM" structure): the global
score ranking decides how much each layer keeps. Those ratios come from calibration
activations hwsim does not have, so ``keep`` is a uniform fraction of each layer's heads
and channels by default (FLAP's "UL-UM" structure), or a list with one fraction per
layer; ``heads_keep`` and ``ffn_keep`` set the two modules apart. ``align`` rounds the
kept channels down to a multiple (default 1: exactly ``round(keep x ffn)``): a GPU whose
tensor cores need dimensions in multiples of 8 (cuBLAS on Volta) runs 8,806 channels
(Llama-2-7B at 0.8) on its CUDA cores, 8,800 on its tensor cores.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import InputError
from ..ir import Graph
from .common import keep_list, kept_heads
from .plan import Plan, Step, round_half_up


def flap(plan: Plan, step: Step) -> None:
    """Offline width pruning of every layer's heads and FFN channels, with bias compensation."""
    if plan.moe:
        raise step.error("", "FLAP narrows dense FFNs; this model's FFNs are mixtures of "
                         "experts (use experts)")
    per_layer = {key: _fractions(plan, step, key) for key in ("heads_keep", "ffn_keep")}
    align = int(step.get("align", 1))
    b = plan.batch
    rows = [plan.queries(layer) for layer in range(plan.num)]
    dense_ffn = plan.ffn
    if not plan.ffn_width:
        plan.ffn_width = [dense_ffn] * plan.num
    for layer in plan.alive():
        plan.heads[layer] = kept_heads(plan, step, layer, per_layer["heads_keep"][layer],
                                       "heads_keep" if "heads_keep" in step.params else "keep")
        width = plan.ffn_width[layer]
        kept = max(1, min(width, round_half_up(width * per_layer["ffn_keep"][layer])))
        plan.ffn_width[layer] = max(min(align, width), kept // align * align)
        blk = plan.block(step, layer)
        elements = b * rows[layer] * plan.hidden
        for name in ("flap.attn_bias", "flap.mlp_bias"):
            bias = blk.t([plan.hidden], kind="param")
            blk.elementwise(name, "add", elements, ins=[None, bias])
    plan.record(step, ffn_per_layer=[None if layer in plan.dropped else plan.ffn_width[layer]
                                     for layer in range(plan.num)], dense_ffn=dense_ffn)


def _fractions(plan: Plan, step: Step, key: str) -> list[float]:
    """One fraction per layer: ``key`` if given, else ``keep`` (scalar or list)."""
    src = key if key in step.params else "keep"
    if step.get(src) is None:
        raise step.error("keep", "missing: FLAP needs keep (or both heads_keep and ffn_keep)")
    lst = keep_list(plan, step, src)
    return lst if lst is not None else [float(step.get(src))] * plan.num


def scale_ffn(graph: Graph, layer: int, dense: int, new: int, source: str = "") -> Graph:
    """``graph`` with layer ``layer``'s FFN intermediate width ``dense`` cut to ``new``.

    The FFN is found from its width: the projections with a weight whose output width
    is ``dense`` (gate and up, or GPT-2's ``c_fc``) narrow their outputs and weights, the
    projection whose input width is ``dense`` (down) narrows its input and weight, and
    every activation of the layer ``dense`` wide (the activation function, the gate's
    product) narrows with them. A model whose FFN width equals its hidden or attention
    width is refused: the width could not tell the FFN apart."""
    if new >= dense:
        return graph
    ops = graph.ops
    in_layer = [i for i, op in enumerate(ops) if op.layer == layer]
    hidden = {int(graph.tensors[ops[i].outputs[0]].shape[-1]) for i in in_layer
              if ops[i].kind == "attention"}
    widths = {int(ops[i].attrs.get("heads", 0)) * int(ops[i].attrs.get("head_dim", 0))
              for i in in_layer if ops[i].kind == "attention"}
    if dense in hidden | widths:
        raise InputError(f"cannot narrow the FFN of layer {layer}: its width {dense} equals "
                         f"the attention's, so the FFN cannot be told apart", source=source,
                         field="pruning")
    tensors = dict(graph.tensors)
    scaled: set[int] = set()

    def narrow(tid: int, prefer_last: bool = True) -> None:
        if tid in scaled:
            return
        t = tensors[tid]
        dims = list(t.shape)
        order = range(len(dims) - 1, -1, -1) if prefer_last else range(len(dims))
        for d in order:
            if dims[d] == dense:
                dims[d] = new
                tensors[tid] = replace(t, shape=tuple(dims))
                scaled.add(tid)
                return

    new_ops = list(ops)
    found = {"up": 0, "down": 0}
    for i in in_layer:
        op = ops[i]
        attrs = dict(op.attrs)
        is_linear = op.kind == "matmul" and len(op.inputs) > 1 and \
            tensors[op.inputs[1]].kind == "param"
        if is_linear and attrs.get("n") == dense:
            attrs["n"] = new
            found["up"] += 1
            for p in op.inputs[1:]:
                if tensors[p].kind == "param":
                    narrow(p, prefer_last=False)
            for o in op.outputs:
                narrow(o)
        elif is_linear and attrs.get("k") == dense:
            attrs["k"] = new
            found["down"] += 1
            narrow(op.inputs[1])
            narrow(op.inputs[0])
        elif op.kind not in ("matmul", "attention") and any(
                tensors[t].shape and tensors[t].shape[-1] == dense for t in op.outputs):
            if "elements" in attrs:
                if attrs["elements"] * new % dense:
                    raise InputError(f"cannot narrow the FFN of layer {layer}: {op.name} has "
                                     f"{attrs['elements']} elements, not rows of {dense}",
                                     source=source, field="pruning")
                attrs["elements"] = attrs["elements"] * new // dense
            for t in op.inputs + op.outputs:
                if tensors[t].kind != "param" and tensors[t].shape \
                        and tensors[t].shape[-1] == dense:
                    narrow(t)
        else:
            continue
        new_ops[i] = replace(op, attrs=attrs)
    if not found["up"] or not found["down"]:
        raise InputError(f"cannot narrow the FFN of layer {layer}: no projection {dense} wide "
                         f"(found {found['up']} into and {found['down']} out of it)",
                         source=source, field="pruning")
    return Graph(graph.header, tensors.values(), new_ops)
