"""Helpers of the pruning tests: a workload's graph pruned by one step, a method's ops."""

from __future__ import annotations

from hwsim.pruning import apply
from hwsim.workload import build_graph, workload_from_dict


def pruned(base: dict, step: dict):
    """(dense, pruned) graphs of the workload ``base`` with the one pruning ``step``."""
    wl = workload_from_dict({**base, "pruning": [step]})
    dense = build_graph(wl)
    g = apply(dense, wl.pruning, wl.source)
    assert g.verify() == []
    return dense, g


def method_ops(g, method: str, prefix: str = "") -> list:
    """The ops ``method`` added (its ``pruning`` attribute), their names from ``prefix``."""
    return [op for op in g.ops if op.attrs.get("pruning") == method
            and op.name.startswith(prefix)]
