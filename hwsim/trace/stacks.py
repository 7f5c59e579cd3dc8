"""Finding a model's transformer blocks, to number every op's layer.

A *stack* is an ``nn.ModuleList`` of blocks of one class, each block with
submodules of its own: BERT's ``encoder.layer``, GPT-2's ``transformer.h``,
Llama's ``model.layers``, LLaVA's ``...vision_model.encoder.layers`` and
``model.language_model.layers``. Module lists nested inside a block (experts,
heads) belong to that block and are not stacks.

Layer indices are global across stacks, in the order the stacks are defined in
the model (the order they run, for every model in the zoo): LLaVA's 24 CLIP
blocks are layers 0-23 and its language model's blocks 24-55, in a prefill and
in a decode step alike, so a layer number names the same block in both. The
graph header lists the stacks that ran, as ``{name: {"first_layer",
"num_layers"}}``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from ..ir import Graph
from .lower import Stack

_LIST_NAMES = ("layers", "layer", "h", "blocks", "block")


def find_stacks(model: torch.nn.Module, names: Mapping[str, str] | None = None) -> list[Stack]:
    """The block stacks of ``model``; ``names`` maps a ModuleList path to a stack name."""
    names = names or {}
    stacks: list[Stack] = []
    first = 0
    for path, module in model.named_modules():
        if not isinstance(module, torch.nn.ModuleList) or len(module) == 0:
            continue
        if any(path.startswith(s.prefix + ".") for s in stacks):
            continue
        blocks = list(module)
        if len({type(b) for b in blocks}) != 1 or next(blocks[0].children(), None) is None:
            continue
        name = names.get(path) or _default_name(path, {s.name for s in stacks})
        stacks.append(Stack(path, name, first, len(blocks)))
        first += len(blocks)
    return stacks


def _default_name(path: str, taken: set[str]) -> str:
    parts = path.split(".")
    if len(parts) > 1 and parts[-1] in _LIST_NAMES:
        parts = parts[:-1]
    base = parts[-1] or "blocks"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}{n}"
    return name


def stacks_header(graph: Graph, stacks: list[Stack]) -> dict[str, Any]:
    """``{name: {"first_layer", "num_layers"}}`` for the stacks whose blocks have ops."""
    used = {op.layer for op in graph.ops if op.layer is not None}
    return {s.name: {"first_layer": s.first_layer, "num_layers": s.count}
            for s in stacks if any(s.first_layer <= u < s.first_layer + s.count for u in used)}
