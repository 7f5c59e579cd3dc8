"""HBM capacity: the one account of :mod:`hwsim.capacity` (weights, KV cache,
the largest op's working set), with the workspace of Ascend's attention
strategies: the standard attention materialises the scores and the
probabilities, ``batch·heads·q·kv`` each, and the N × N mask; a fused attention
without tiling-mask reads an N × N mask from HBM.
"""

from __future__ import annotations

from hwsim.capacity import Footprint, footprint
from hwsim.ir.dtypes import dtype_bits


def attention_workspace(op, graph, tiling) -> float:
    """HBM bytes an attention op needs beyond its inputs and output."""
    from .attention import strategy_of  # noqa: PLC0415

    a = op.attrs
    eb = dtype_bits(graph.tensors[op.inputs[0]].dtype) / 8
    n2 = a["q_len"] * a["kv_len"] * eb
    strategy = strategy_of(tiling)
    if strategy == "standard":
        return 2 * a["batch"] * a["heads"] * n2 + (n2 if a["causal"] else 0)
    mask_tile = getattr(tiling, "tiling_mask", True) if tiling is not None else True
    return n2 if a["causal"] and not mask_tile else 0.0


def ascend_footprint(graph, tiling) -> Footprint:
    """The one account of :mod:`hwsim.capacity` plus attention workspace."""
    return footprint(graph, lambda op: attention_workspace(op, graph, tiling)
                     if op.kind == "attention" else 0.0)
