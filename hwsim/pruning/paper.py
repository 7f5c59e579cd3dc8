"""FLOPs as the token-pruning papers count them, for comparing with their tables.

FastV (Chen et al., "An Image is Worth 1/2 Tokens After Layer 2", ECCV 2024,
arXiv 2403.06764: its FLOPs estimate and code) and DivPrune (Alvar et al.,
CVPR 2025: its code) count, for a language model of T layers, hidden size d and
FFN width m, on n tokens::

    FLOPs(n) = T (4 n d² + 2 n² d + 2 n d m)

(the four attention projections, the score and value products, two FFN
matrices), and pruning at layer K keeps the first K layers at the dense n.
:func:`paper_flops` sums that per layer over any token schedule, so the same
convention covers every method's schedule; :func:`paper_flops_ratio` reads the
schedule a graph's pruning passes applied. hwsim's own count
(:meth:`hwsim.ir.Graph.flops`) is exact instead: it includes the vision tower,
norms, rotary embeddings, the LM head, Llama's third (gate) FFN matrix and
the pruning machinery; docs/pruning.md compares the two.
"""

from __future__ import annotations

from typing import Iterable

from ..errors import InputError
from ..ir import Graph


def layer_flops(n: int, hidden: int, ffn: int) -> int:
    """One layer on ``n`` tokens: ``4 n d² + 2 n² d + 2 n d m``."""
    return 4 * n * hidden * hidden + 2 * n * n * hidden + 2 * n * hidden * ffn


def paper_flops(tokens_per_layer: Iterable[int | None], hidden: int, ffn: int) -> int:
    """The papers' FLOPs of a token schedule (``None`` marks a dropped layer)."""
    return sum(layer_flops(n, hidden, ffn) for n in tokens_per_layer if n is not None)


def paper_flops_ratio(graph: Graph) -> float:
    """Pruned over dense FLOPs in the papers' convention, from the graph's pruning record."""
    plan = graph.header.get("pruning_plan")
    records = graph.header.get("pruning") or []
    if not plan or not records:
        return 1.0
    if plan["phase"] != "prefill":
        raise InputError("the papers' FLOPs formula counts a prefill over n tokens; this "
                         "graph is a decode step", field="metric")
    tokens = records[-1]["tokens_per_layer"]
    dense = [records[-1]["dense_tokens"]] * len(tokens)
    return paper_flops(tokens, plan["hidden"], plan["ffn"]) / paper_flops(
        dense, plan["hidden"], plan["ffn"])
