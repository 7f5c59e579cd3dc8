"""KV-cache pruning in decode: a budget of cached tokens, and the eviction machinery.

A decode step with a budget of B tokens (``tokens``, or ``keep`` of the
cache) attends to B cached keys plus its own, in every layer listed
(``layers``, all by default). Each step, per layer:

- ``h2o`` (heavy hitters): the step's attention probabilities are added to
  each cached token's running score (``elementwise add``), and a ``topk``
  keeps B and evicts the rest. The budget is per key/value head: each KV
  head's cache holds its own B tokens, shared by the query heads of its group.
  With ``per_head: true`` (H2O's policy) each KV head keeps its own selection:
  the running scores are KV heads x keys, and the ``topk`` runs per KV head.
  With grouped-query attention a KV head is scored from one query head of its
  group, as H2O's authors' Llama-3 port does (``HHCache.update_slimming`` in
  meta-llama/llama-recipes, end-to-end-use-cases/long_context/H2O/utils/cache.py:
  ``attention_scores.sum(2)[:, ::num_kv_groups, :]``, a strided view of the
  probabilities, ``h2o.group_first_head``), or from the group's summed
  probabilities with ``group_score: sum`` (a ``reduce``, ``h2o.group_sum``).
  With ``per_head: false`` the probabilities of every query head are summed
  (``reduce``) and one selection serves the whole sequence. The new token's
  key and value overwrite the evicted slot, which the KV write already costs.
- ``kvcrush``: the accumulated importance summed over all query heads and its
  ``topk``, one selection per sequence that every KV head shares (as
  OpenVINO GenAI's release of KVCrush evicts a layer's cache blocks for all
  its heads at once, from one score per token); besides, each token's binary
  head signature (one bit per query head: its attention above a threshold,
  ``elementwise compare``), its Hamming distance to the anchor (``elementwise
  compare`` and ``reduce sum``), which groups evicted tokens so one
  representative per group stays.

The probabilities are read as written by the attention kernel (one row per
query head): their bytes are part of the cost.
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
    """Apply the budgets; then, per live layer: (budget, keys, layer, its overhead block)."""
    _apply_budgets(plan, step, budgets)
    for layer, budget in budgets.items():
        if layer not in plan.dropped:
            yield budget, plan.keys(layer), layer, plan.block(step, layer, "end")


def h2o(plan: Plan, step: Step) -> None:
    budgets = _budgets(plan, step)
    per_head = bool(step.get("per_head", True))
    group_score = step.get("group_score", "first")
    if not per_head and step.get("group_score") is not None:
        raise step.error("group_score", "scores a KV head from its group of query heads; with "
                         "per_head: false one selection serves every head (leave it out)")
    b = plan.batch
    rows = set()
    for budget, n, layer, blk in _evictions(plan, step, budgets):
        h, hk = plan.heads[layer], plan.kv_kept(layer)
        if per_head:
            probs = blk.t([b * h * n])
            if hk == h:
                score = probs
            elif group_score == "sum":
                score = blk.reduce("h2o.group_sum", "sum", b * h * n, b * hk * n, x=probs)
            else:  # the first query head of each group: a strided slice, read in place
                score = blk.t([b * hk * n])
                blk.op("view", "h2o.group_first_head", {"note": "slice"}, [probs], [score])
            acc = blk.elementwise("h2o.accumulate", "add", b * hk * n, ins=[score, None])
            blk.topk("h2o.evict_topk", rows=b * hk, n=n, k=budget, x=acc)
            rows.add(b * hk)
        else:
            acc = blk.elementwise("h2o.accumulate", "add", b * h * n, ins=[None, None])
            tot = blk.reduce("h2o.head_sum", "sum", b * h * n, b * n, x=acc)
            blk.topk("h2o.evict_topk", rows=b, n=n, k=budget, x=tot)
            rows.add(b)
    extra = {"group_score": group_score} if per_head else {}
    plan.record(step, budget_tokens=sorted(set(budgets.values())), per_head=per_head,
                selection="per key/value head" if per_head else "per sequence",
                selections_per_layer=sorted(rows), **extra)


def kvcrush(plan: Plan, step: Step) -> None:
    budgets = _budgets(plan, step)
    b = plan.batch
    for budget, n, layer, blk in _evictions(plan, step, budgets):
        h = plan.heads[layer]
        probs = blk.t([b * h * n])
        acc = blk.elementwise("kvcrush.accumulate", "add", b * h * n, ins=[probs, None])
        tot = blk.reduce("kvcrush.head_sum", "sum", b * h * n, b * n, x=acc)
        blk.topk("kvcrush.evict_topk", rows=b, n=n, k=budget, x=tot)
        sig = blk.elementwise("kvcrush.binary_signature", "compare", b * h * n, ins=[probs])
        ham = blk.elementwise("kvcrush.anchor_xor", "compare", b * h * n, ins=[sig, None])
        blk.reduce("kvcrush.hamming_distance", "sum", b * h * n, b * n, x=ham)
    plan.record(step, budget_tokens=sorted(set(budgets.values())), selection="per sequence")
