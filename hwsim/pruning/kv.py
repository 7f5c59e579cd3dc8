"""KV-cache policies: a budget of cached tokens, and the machinery that keeps it.

A decode step with a budget of B tokens (``tokens``, or ``keep`` of the
cache) attends to at most B cached keys plus its own, in every layer listed
(``layers``, all by default). A budget at or above the cache plus the new
token evicts nothing that step (a generation's cache still growing towards
its budget): the scores still accumulate, no top-k runs. In a prefill the
same methods cost the selection at the prompt's end, which cuts the prompt's
cache to the budget before the first decode step (a generation,
``phase: generate``, runs both; :mod:`hwsim.generation`).

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
  At the prompt's end the first scores are the prompt's probabilities summed
  over its queries (``h2o.prompt_scores``: H2O's ``attn_weights.sum`` over
  the query axis, which reads the n x n probabilities an unfused attention
  writes; a fused kernel never writes them, which is why H2O's releases run
  eager attention), then the same ``topk``.
- ``kvcrush``: the accumulated importance summed over all query heads and its
  ``topk``, one selection per sequence that every KV head shares (as
  OpenVINO GenAI's release of KVCrush evicts a layer's cache blocks for all
  its heads at once, from one score per token); besides, each token's binary
  head signature (one bit per query head: its attention above a threshold,
  ``elementwise compare``), its Hamming distance to the anchor (``elementwise
  compare`` and ``reduce sum``), which groups evicted tokens so one
  representative per group stays. At the prompt's end, as H2O's, from the
  prompt's probabilities.
- ``streamingllm`` (Xiao et al., ICLR 2024, arXiv 2309.17453): the cache keeps
  the first ``sinks`` tokens (attention sinks, 4 in the paper) and the
  ``window`` most recent; eviction is a ring buffer's index, free. What it
  costs per step is positions within the cache (paper, Sec. 3.2): keys are
  cached before the rotary embedding, and every step re-rotates the whole
  cache's keys (``streamingllm.rerotate_keys``, a ``rope`` over them).
- ``snapkv`` (Li et al., NeurIPS 2024, arXiv 2404.14469): one selection at the
  prompt's end, none while decoding. Per layer, the last ``window`` prompt
  queries (the observation window) attend to the prompt's keys
  (``snapkv.window_scores``, a matmul, and its softmax), their probabilities
  are summed over the window (``reduce``), smoothed by a 1-D pooling of
  ``kernel`` keys (``elementwise``), averaged over each KV head's group of
  query heads with grouped-query attention, and a ``topk`` per KV head keeps
  ``B - window`` prefix keys; the kept keys and values are gathered into the
  compressed cache (``gather``) beside the window's. Defaults are the
  released ``SnapKVCluster``'s (FasterDecoding/SnapKV,
  ``snapkv/monkeypatch/snapkv_utils.py``: window 64, kernel 5, avgpool). A
  single decode step has no prompt to compress: use ``phase: generate``.

The probabilities are read as written by the attention kernel (one row per
query head): their bytes are part of the cost.
"""

from __future__ import annotations

from .common import keep_list, layers_param, scalar_keep
from .plan import Plan, Step, kept

SINKS = 4  # StreamingLLM's attention sinks (Xiao et al., ICLR 2024, Sec. 3.2: four initial tokens)
# the released SnapKVCluster's defaults (FasterDecoding/SnapKV, snapkv_utils.py)
SNAPKV_WINDOW = 64
SNAPKV_KERNEL = 5


def _budgets(plan: Plan, step: Step) -> dict[int, int]:
    """The budget in tokens per layer listed: ``tokens``, or ``keep`` of the layer's
    cache (a prefill: of its prompt tokens)."""
    if plan.phase not in ("decode", "prefill"):
        raise step.error("", f"{step.method} acts on a KV cache (phase: {plan.phase})")
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
        else:
            f = lst[layer] if lst is not None else float(step.get("keep"))
            budget = kept(have, f)
        out[layer] = budget
    return out


def _apply_budgets(plan: Plan, step: Step, budgets: dict[int, int]) -> None:
    """Cut each layer's cache to its budget (a layer whose cache is within it keeps it)."""
    cut = {layer: b for layer, b in budgets.items() if b < plan.tokens(layer)}
    factors = {layer: budget / plan.tokens(layer) for layer, budget in cut.items()
               if plan.tokens(layer)}
    plan.scale_tokens(step, factors, None)
    for layer, budget in cut.items():  # exact, whatever the rounding of the fraction
        c = plan.counts[layer]
        c.clear()
        c.update({b: 0 for b in plan.buckets})
        c[plan.buckets[-1]] = budget


def _evictions(plan: Plan, step: Step, budgets: dict[int, int]):
    """Apply the budgets; then, per live layer: (budget, keys scored, layer, its overhead
    block, whether a top-k evicts). A decode step scores its keys (the cache it kept and
    its own token) and evicts when they exceed the budget; a prefill scores its prompt
    and evicts down to the budget at the prompt's end, where the cache is not cut
    (the prompt's attention ran over all of it)."""
    if plan.phase == "decode":
        _apply_budgets(plan, step, budgets)
    for layer, budget in budgets.items():
        if layer in plan.dropped:
            continue
        n = plan.keys(layer)
        yield budget, n, layer, plan.block(step, layer, "end"), budget < n


def _prompt_probs(plan: Plan, blk, name: str, n: int, out_rows: int) -> int:
    """The prompt's probabilities summed over its queries: one score per key and head
    (``out_rows`` heads), read from the n x n probabilities per query head."""
    b, h = plan.batch, plan.heads[blk.layer]
    return blk.reduce(name, "sum", b * h * n * n, out_rows * n)


def h2o(plan: Plan, step: Step) -> None:
    budgets = _budgets(plan, step)
    per_head = bool(step.get("per_head", True))
    group_score = step.get("group_score", "first")
    if not per_head and step.get("group_score") is not None:
        raise step.error("group_score", "scores a KV head from its group of query heads; with "
                         "per_head: false one selection serves every head (leave it out)")
    b = plan.batch
    rows = set()
    prompt = plan.phase == "prefill"
    for budget, n, layer, blk, evict in _evictions(plan, step, budgets):
        if prompt and not evict:
            continue  # the prompt fits the budget: nothing to select at its end
        h, hk = plan.heads[layer], plan.kv_kept(layer)
        if per_head:
            if prompt:
                probs = _prompt_probs(plan, blk, "h2o.prompt_scores", n, b * h)
            else:
                probs = blk.t([b * h * n])
            if hk == h:
                score = probs
            elif group_score == "sum":
                score = blk.reduce("h2o.group_sum", "sum", b * h * n, b * hk * n, x=probs)
            else:  # the first query head of each group: a strided slice, read in place
                score = blk.t([b * hk * n])
                blk.op("view", "h2o.group_first_head", {"note": "slice"}, [probs], [score])
            acc = score if prompt else blk.elementwise("h2o.accumulate", "add", b * hk * n,
                                                       ins=[score, None])
            if evict:
                blk.topk("h2o.evict_topk", rows=b * hk, n=n, k=budget, x=acc)
            rows.add(b * hk)
        else:
            if prompt:
                acc = _prompt_probs(plan, blk, "h2o.prompt_scores", n, b * h)
            else:
                acc = blk.elementwise("h2o.accumulate", "add", b * h * n, ins=[None, None])
            tot = blk.reduce("h2o.head_sum", "sum", b * h * n, b * n, x=acc)
            if evict:
                blk.topk("h2o.evict_topk", rows=b, n=n, k=budget, x=tot)
            rows.add(b)
    extra = {"group_score": group_score} if per_head else {}
    plan.record(step, budget_tokens=sorted(set(budgets.values())), per_head=per_head,
                selection="per key/value head" if per_head else "per sequence",
                selections_per_layer=sorted(rows), **extra)


def kvcrush(plan: Plan, step: Step) -> None:
    budgets = _budgets(plan, step)
    b = plan.batch
    prompt = plan.phase == "prefill"
    for budget, n, layer, blk, evict in _evictions(plan, step, budgets):
        if prompt and not evict:
            continue
        h = plan.heads[layer]
        if prompt:
            acc = probs = _prompt_probs(plan, blk, "kvcrush.prompt_scores", n, b * h)
        else:
            probs = blk.t([b * h * n])
            acc = blk.elementwise("kvcrush.accumulate", "add", b * h * n, ins=[probs, None])
        tot = blk.reduce("kvcrush.head_sum", "sum", b * h * n, b * n, x=acc)
        if evict:
            blk.topk("kvcrush.evict_topk", rows=b, n=n, k=budget, x=tot)
        sig = blk.elementwise("kvcrush.binary_signature", "compare", b * h * n, ins=[probs])
        ham = blk.elementwise("kvcrush.anchor_xor", "compare", b * h * n, ins=[sig, None])
        blk.reduce("kvcrush.hamming_distance", "sum", b * h * n, b * n, x=ham)
    plan.record(step, budget_tokens=sorted(set(budgets.values())), selection="per sequence")


def streaming_cache(step_or_params) -> int:
    """The tokens a StreamingLLM cache holds: its sinks and its window."""
    get = step_or_params.get
    return int(get("sinks", SINKS)) + int(get("window"))


def streamingllm(plan: Plan, step: Step) -> None:
    limit = streaming_cache(step)
    layers = layers_param(plan, step)
    b = plan.batch
    if plan.phase == "decode":
        plan.require_resizable(step)
        _apply_budgets(plan, step, {layer: limit for layer in layers})
        for layer in layers:
            if layer in plan.dropped:
                continue
            blk = plan.block(step, layer, "start")
            cached = plan.tokens(layer)  # the new token's key is rotated by the model's rope
            elements = b * plan.kv_kept(layer) * cached * plan.head_dim[layer]
            keys = blk.t([elements])  # read from the cache (not a cache of its own)
            out = blk.t([elements])
            blk.op("rope", "streamingllm.rerotate_keys", dict(elements=elements), [keys], [out])
    # a prefill computes the whole prompt; keeping sinks and window after it is an index
    plan.record(step, cache_tokens=limit, sinks=int(step.get("sinks", SINKS)),
                window=int(step.get("window")))


def snapkv_budget(plan_tokens: int, params) -> int:
    """SnapKV's capacity for a prompt of ``plan_tokens``: ``tokens``, or ``keep`` of it."""
    if params.get("tokens") is not None:
        return int(params.get("tokens"))
    return kept(plan_tokens, float(params.get("keep")))


def snapkv(plan: Plan, step: Step) -> None:
    if plan.phase != "prefill":
        raise step.error("", "snapkv compresses the prompt's cache once, at the prefill's end; "
                         "a single decode step has no prompt (use phase: generate, or a "
                         "prefill for the selection's cost)")
    if step.get("tokens") is not None and step.get("keep") is not None:
        raise step.error("tokens", "give either tokens (the capacity) or keep (a fraction of "
                         "the prompt), not both")
    if step.get("keep") is not None:
        scalar_keep(step)
    window = int(step.get("window", SNAPKV_WINDOW))
    kernel = int(step.get("kernel", SNAPKV_KERNEL))
    b = plan.batch
    budgets = {}
    for layer in layers_param(plan, step):
        if layer in plan.dropped:
            continue
        n = plan.tokens(layer)
        budget = snapkv_budget(n, step.params)
        budgets[layer] = budget
        if budget <= window:
            raise step.error("tokens" if step.get("tokens") is not None else "keep",
                             f"the capacity ({budget} tokens at layer {layer}) must exceed the "
                             f"observation window ({window})")
        if budget >= n:
            continue  # the prompt fits: nothing to select
        h, hk, d = plan.heads[layer], plan.kv_kept(layer), plan.head_dim[layer]
        prefix = n - window
        blk = plan.block(step, layer, "end")
        s = blk.matmul("snapkv.window_scores", b * h, window, n, d)
        p = blk.softmax("snapkv.window_softmax", b * h * window, n, x=s)
        votes = blk.reduce("snapkv.window_sum", "sum", b * h * window * prefix, b * h * prefix,
                           x=p)
        pooled = blk.elementwise("snapkv.pool", "add", b * h * prefix, ins=[votes])
        if h != hk:  # grouped queries: each KV head's group averaged
            pooled = blk.reduce("snapkv.group_mean", "sum", b * h * prefix, b * hk * prefix,
                                x=pooled)
        _, idx = blk.topk("snapkv.select_topk", rows=b * hk, n=prefix, k=budget - window,
                          x=pooled)
        for what in ("keys", "values"):
            blk.gather(f"snapkv.gather_{what}", b * hk * (budget - window) * d,
                       b * hk * n * d, index=idx)
    plan.record(step, budget_tokens=sorted(set(budgets.values())), window=window,
                kernel=kernel, selection="per key/value head, once at the prompt's end")
