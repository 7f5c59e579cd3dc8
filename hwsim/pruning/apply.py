"""Applying the workload's pruning steps to a graph, in order.

:func:`apply` builds a :class:`~hwsim.pruning.plan.Plan` from the dense graph,
lets each step's method transform it, and materializes the result once.
:data:`PASSES` offers each method as a ``Graph -> Graph`` pass as well; a
pruned graph carries its plan, so ``PASSES["fastv"](PASSES["hawk"](g, a), b)``
equals ``apply(g, [a, b])``.

Resizing token counts per layer needs the dense graph's size template: a
graph built from a ``model:`` or from a template trace carries a reference to
it (``template_ref`` in its header, see :func:`hwsim.zoo.template_of`).
A concrete traced graph can still lose heads, layers, precision or attend
sparsely, but token and KV methods are an error on it.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Mapping, Sequence

from ..errors import InputError
from ..ir import Graph
from ..trace.zoo_names import EXTEND
from ..zoo import template_of
from . import experts, heads, holitom, kv, layers, merging, quant, sparse, tokens, width
from .materialize import materialize
from .plan import Plan, Step
from .registry import METHODS

# method name -> plan transformation (plan, step) -> None
PLAN_PASSES: dict[str, Callable[[Plan, Step], None]] = {
    "spatten": tokens.spatten,
    "fastv": tokens.fastv,
    "hawk": tokens.hawk,
    "divprune": tokens.divprune,
    "topv": tokens.topv,
    "lazyllm": tokens.lazyllm,
    "zero-tprune": tokens.zero_tprune,
    "tome": merging.tome,
    "holitom": holitom.holitom,
    "fastervlm": tokens.fastervlm,
    "spatten-heads": heads.spatten_heads,
    "heads": heads.heads,
    "flap": width.flap,
    "layer-drop": layers.layer_drop,
    "h2o": kv.h2o,
    "kvcrush": kv.kvcrush,
    "streamingllm": kv.streamingllm,
    "snapkv": kv.snapkv,
    "mustafar": kv.mustafar,
    "topk-attention": sparse.topk_attention,
    "hip": sparse.hip,
    "minference": sparse.minference,
    "deltallm": sparse.deltallm,
    "quant": quant.quant,
    "experts": experts.experts,
}

_PLAN_KEYS = ("pruning", "pruning_plan")


def apply(graph: Graph, steps: Sequence[Mapping[str, Any]], source: str = "", *,
          cache_tokens: Sequence[int] | None = None, rows: Sequence[int] | None = None,
          ) -> Graph:
    """``graph`` with every step applied in order (the graph itself when there are none).

    ``cache_tokens``: a decode step's KV cache per layer of the pruned stack, where a
    prefill's token pruning left fewer than the graph's ``kv_len`` (a generation,
    :mod:`hwsim.generation`); set after the steps, never raised. ``rows``: with it, a
    generation's LazyLLM step: each layer's query rows (the new token and the tokens
    revived at or before it), the cache and rows set *before* the steps, whose LazyLLM
    step then costs its selection over them (:func:`hwsim.pruning.tokens.lazyllm`); a
    layer of several rows instantiates the model's ``extend`` template."""
    if not steps and cache_tokens is None:
        return graph
    template = template_of(graph.header)
    if rows is not None and any(r > 1 for r in rows):
        template = _extend_template(graph, source)
    if graph.header.get("pruning_plan") and template is None:
        raise InputError("this graph was pruned already and has no size template to re-derive "
                         "it from: give all steps to one apply()", source=source,
                         field="pruning")
    plan = Plan.from_graph(graph, resizable=template is not None)
    if plan.num == 0 or not any(plan.heads):
        raise InputError("pruning acts on the layers of a model; this graph has no "
                         "transformer layers (an ops: kernel study?)", source=source,
                         field="pruning")
    if rows is not None:
        _set_cache(plan, cache_tokens if cache_tokens is not None else
                   [plan.tokens(layer) for layer in range(plan.num)], source)
        plan.rows = [int(r) for r in rows]
    for i, raw in enumerate(steps):
        _check(raw, i, plan, source)
        PLAN_PASSES[raw["method"]](plan, Step(raw, i, source))
    if cache_tokens is not None and rows is None:
        _set_cache(plan, cache_tokens, source)
    dense = graph
    if graph.header.get("pruning_plan"):
        header = {k: v for k, v in graph.header.items() if k not in _PLAN_KEYS}
        dense = Graph(header, graph.tensors.values(), graph.ops)
    return materialize(plan, template, dense, source)


def _extend_template(graph: Graph, source: str) -> Graph:
    """The ``extend`` template (several query rows per sequence) of ``graph``'s model."""
    ref = graph.header.get("template_ref") or {}
    if "model" not in ref:
        raise InputError("a step that computes several tokens per layer (LazyLLM's revival) "
                         "needs the model's multi-token decode template: use model:, not a "
                         "trace file", source=source, field="pruning")
    return template_of({**graph.header, "template_ref": {**ref, "phase": EXTEND}})


def _set_cache(plan: Plan, tokens: Sequence[int], source: str) -> None:
    """Each layer's cache cut to ``tokens[layer]`` (a decode step's plan)."""
    if plan.phase != "decode" or len(tokens) != plan.num:
        raise InputError(f"a cache per layer is a decode step's, one per layer of the "
                         f"{plan.stack} stack ({plan.num}); got {len(tokens)} for a "
                         f"{plan.phase}", source=source, field="pruning")
    for layer, n in enumerate(tokens):
        if layer in plan.dropped or n >= plan.tokens(layer):
            continue
        c = plan.counts[layer]
        c.clear()
        c.update({b: 0 for b in plan.buckets})
        c[plan.buckets[-1]] = int(n)
        plan.changed_by.setdefault(layer, "prefill")


def _check(step: Any, index: int, plan: Plan, source: str) -> None:
    """The load-time checks, for steps given to the API directly."""
    from ..errors import Collector  # noqa: PLC0415
    from .registry import check_step  # noqa: PLC0415

    errs = Collector(source)
    segments = {b: None for b in plan.buckets if b != "other"}
    check_step(step, index, segments if plan.phase == "prefill" else {}, plan.num, errs.add)
    errs.raise_if_any()


def _as_pass(method: str, graph: Graph, step: Mapping[str, Any], source: str = "") -> Graph:
    return apply(graph, [{"method": method, **{k: v for k, v in step.items()
                                                if k != "method"}}], source)


# method name -> Graph -> Graph pass
PASSES: dict[str, Callable[..., Graph]] = {m: partial(_as_pass, m) for m in METHODS}
