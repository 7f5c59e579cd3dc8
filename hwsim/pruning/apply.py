"""Applying the workload's pruning steps to a graph, in order."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..errors import InputError
from ..ir import Graph

# method name -> pass(graph, step) -> graph; filled in as passes are implemented
PASSES: dict[str, Any] = {}


def apply(graph: Graph, steps: Sequence[Mapping[str, Any]], source: str = "") -> Graph:
    """Run each step's pass. A method without a pass yet is an error, not a no-op."""
    for i, step in enumerate(steps):
        fn = PASSES.get(step["method"])
        if fn is None:
            raise InputError(f"pruning method {step['method']!r} is recognised but its graph "
                             f"pass is not implemented in this version of hwsim",
                             source=source, field=f"pruning.{i}.method")
        graph = fn(graph, step)
    return graph
