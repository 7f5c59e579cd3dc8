"""HBM capacity: the one account of :mod:`hwsim.capacity` (weights, KV cache,
the largest op's working set), with the workspace of Ascend's attention
strategies: the standard attention materialises the scores and the
probabilities, ``batch·heads·q·kv`` each, and the N × N mask (a block-sparse
one its gathered keys and values instead, a value-pruned one the top-k of each
row); a fused attention without tiling-mask reads an N × N mask from HBM. The
fused kernels' split-KV partials stay in L2.
"""

from __future__ import annotations

from hwsim.capacity import Footprint, footprint
from hwsim.ir import AttentionShape
from hwsim.ir.dtypes import dtype_bits


def attention_workspace(op, graph, tiling) -> float:
    """HBM bytes an attention op needs beyond its inputs and output."""
    from .attention import strategy_of, tiling_mask_of  # noqa: PLC0415

    standard = strategy_of(tiling) == "standard"
    if not standard and tiling_mask_of(tiling):
        # a fused kernel with a tiling mask: nothing beyond its operands, whatever the
        # shape (a sweep point's twelve BERT layers made twelve shapes to learn this)
        return 0.0
    att = AttentionShape.of(op, graph)
    eb = dtype_bits(att.dtype) / 8
    mask = att.q_len * att.kv_len * eb  # the N x N mask in GM (causal and/or window)
    if standard:
        cols = att.sparse_keys or att.kv_len
        rows = att.batch * att.heads * att.q_len
        need = 2 * rows * cols * eb  # the scores and the probabilities
        if att.sparse_keys:  # the gathered keys and values of each query block
            blocks = -(-att.q_len // att.sparse_block)
            need += (att.batch * att.heads * blocks * att.sparse_keys
                     * (att.head_dim + att.v_head_dim) * eb)
        elif att.masked:
            need += mask
        if att.selects_values:  # each row's top v_len probabilities and their indices
            need += rows * att.values * (eb + 4)
        return need
    return mask if att.masked and not att.sparse_keys else 0.0


def ascend_footprint(graph, tiling) -> Footprint:
    """The one account of :mod:`hwsim.capacity` plus attention workspace."""
    return footprint(graph, lambda op: attention_workspace(op, graph, tiling)
                     if op.kind == "attention" else 0.0)
