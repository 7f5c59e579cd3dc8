"""KV-cache pruning in decode: a budget of cached tokens, and the eviction machinery.

A decode step with a budget of B tokens (``tokens``, or ``keep`` of the
cache) attends to B cached keys plus its own, in every layer listed
(``layers``, all by default). Each step, per layer:

- ``h2o`` (heavy hitters): the step's attention probabilities are added to
  each cached token's running score (``elementwise add`` over heads x keys);
  with ``per_head: false`` they are first summed over heads (``reduce``);
  a ``topk`` per head (or per sequence) keeps B and evicts the rest. The new
  token's key and value overwrite the evicted slot, which the KV write
  already costs.
- ``kvcrush``: the same accumulated importance, summed over heads, and its
  ``topk``; besides, each token's binary head signature (attention above a
  threshold, ``elementwise compare``), its Hamming distance to the anchor
  (``elementwise compare`` and ``reduce sum``), which groups evicted tokens
  so one representative per group stays.

The probabilities are read as written by the attention kernel: their bytes
are part of the cost.
"""

from __future__ import annotations

from .common import keep_list, layers_param
from .plan import Plan, Step, kept


def _budgets(plan: Plan, step: Step) -> dict[int, int]:
    if plan.phase != "decode":
        raise step.error("", f"{step.method} keeps a KV-cache budget while decoding; this "
                         f"workload is a prefill (use phase: decode with kv_len)")
    plan.require_resizable(step)
    layers = layers_param(plan, step)
    lst = keep_list(plan, step)
    out = {}
    for layer in layers:
        have = plan.tokens(layer)
        if step.get("tokens") is not None:
            if step.get("keep") is not None:
                raise step.error("tokens", "give either tokens (the budget) or keep (a "
                                 "fraction of the cache), not both")
            budget = int(step.get("tokens"))
            if budget > have:
                raise step.error("tokens", f"budget of {budget} tokens exceeds the KV cache "
                                 f"of layer {layer} ({have} tokens)")
        else:
            f = lst[layer] if lst is not None else float(step.get("keep"))
            budget = kept(have, f)
        out[layer] = budget
    return out


def _apply_budgets(plan: Plan, step: Step, budgets: dict[int, int]) -> None:
    factors = {layer: budget / plan.tokens(layer) for layer, budget in budgets.items()
               if plan.tokens(layer)}
    plan.scale_tokens(step, factors, None)
    for layer, budget in budgets.items():  # exact, whatever the rounding of the fraction
        c = plan.counts[layer]
        c.clear()
        c.update({b: 0 for b in plan.buckets})
        c[plan.buckets[-1]] = budget


def _evictions(plan: Plan, step: Step, budgets: dict[int, int]):
    """Apply the budgets; then, per live layer: (budget, keys, heads, its overhead block)."""
    _apply_budgets(plan, step, budgets)
    for layer, budget in budgets.items():
        if layer not in plan.dropped:
            yield budget, plan.keys(layer), plan.heads[layer], plan.block(step, layer, "end")


def h2o(plan: Plan, step: Step) -> None:
    budgets = _budgets(plan, step)
    per_head = bool(step.get("per_head", True))
    b = plan.batch
    for budget, n, h, blk in _evictions(plan, step, budgets):
        acc = blk.elementwise("h2o.accumulate", "add", b * h * n, ins=[None, None])
        if per_head:
            blk.topk("h2o.evict_topk", rows=b * h, n=n, k=budget, x=acc)
        else:
            tot = blk.reduce("h2o.head_sum", "sum", b * h * n, b * n, x=acc)
            blk.topk("h2o.evict_topk", rows=b, n=n, k=budget, x=tot)
    plan.record(step, budget_tokens=sorted(set(budgets.values())), per_head=per_head)


def kvcrush(plan: Plan, step: Step) -> None:
    budgets = _budgets(plan, step)
    b = plan.batch
    for budget, n, h, blk in _evictions(plan, step, budgets):
        probs = blk.t([b * h * n])
        acc = blk.elementwise("kvcrush.accumulate", "add", b * h * n, ins=[probs, None])
        tot = blk.reduce("kvcrush.head_sum", "sum", b * h * n, b * n, x=acc)
        blk.topk("kvcrush.evict_topk", rows=b, n=n, k=budget, x=tot)
        sig = blk.elementwise("kvcrush.binary_signature", "compare", b * h * n, ins=[probs])
        ham = blk.elementwise("kvcrush.anchor_xor", "compare", b * h * n, ins=[sig, None])
        blk.reduce("kvcrush.hamming_distance", "sum", b * h * n, b * n, x=ham)
    plan.record(step, budget_tokens=sorted(set(budgets.values())))
