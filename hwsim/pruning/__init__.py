"""Pruning strategies as graph passes (``Graph -> Graph``).

A workload lists pruning steps in order; each step names a ``method`` and its
parameters. Every method of the seed literature is a pass that rewrites the
graph's shapes *and* inserts the ops its own machinery runs (importance
scores, top-k, solver iterations, the gather of the survivors), marked
``pruning=<method>``, so every target costs both the savings and the overhead.

- token pruning: ``spatten``, ``fastv``, ``hawk``, ``divprune``, ``topv``,
  ``lazyllm``, ``zero-tprune`` (:mod:`~hwsim.pruning.tokens`);
- head pruning: ``spatten-heads``, ``heads`` (:mod:`~hwsim.pruning.heads`);
- layer pruning: ``layer-drop`` (:mod:`~hwsim.pruning.layers`);
- KV-cache pruning in decode: ``h2o``, ``kvcrush``, ``streamingllm``, ``snapkv``, and
  ``mustafar``'s bitmap-compressed cache (:mod:`~hwsim.pruning.kv`);
- sparse attention: ``topk-attention``, ``hip``, ``minference``, and ``deltallm``'s
  temporal-delta attention (:mod:`~hwsim.pruning.sparse`);
- precision: ``quant`` (:mod:`~hwsim.pruning.quant`).

Parameters that mean the same thing keep one name everywhere: ``keep`` (a
fraction, or a list with one fraction per layer), ``at_layer``, ``segment``,
``layers`` (:mod:`~hwsim.pruning.registry`, checked when a workload loads).
Steps compose through a plan (:mod:`~hwsim.pruning.plan`) materialized once
(:mod:`~hwsim.pruning.materialize`); each applied step leaves a record in the
graph's header (``pruning``): tokens, KV entries and heads per layer, dropped
layers, its overhead ops. Attention scores traced from a real model become
schedules in :mod:`~hwsim.pruning.schedules`; the papers' own FLOPs
convention is :mod:`~hwsim.pruning.paper`. See docs/pruning.md.
"""

from .apply import PASSES, PLAN_PASSES, apply
from .paper import paper_flops, paper_flops_ratio
from .plan import Plan
from .registry import METHODS, MethodSpec, check_step

__all__ = ["METHODS", "MethodSpec", "check_step", "apply", "PASSES", "PLAN_PASSES", "Plan",
           "paper_flops", "paper_flops_ratio"]
