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

- ``mustafar`` (Joo et al., NeurIPS 2025, arXiv 2505.22913): unstructured
  sparsity *inside* each cached key and value row, not fewer tokens. Every
  token's key and value rows are pruned by magnitude to ``keep`` of their
  ``head_dim`` elements and stored in a bitmap format; the attention reads the
  compressed cache. Followed as released (github.com/dhjoo98/mustafar,
  ``models/llama_mustafar_kernel.py`` and ``kernel/compression.py``): a token's
  kept elements are those whose magnitude is at least the ``int(sparsity·D)``-th
  smallest (``torch.kthvalue`` of ``|x|`` per row, then a mask), so
  ``D - int(sparsity·D) + 1`` stay; the format is 64-element tiles (a key tile
  is one channel of 64 tokens, a value tile 64 channels of one token), each a
  64-bit bitmap, a 32-bit running count and its kept fp16 values padded to a
  multiple of 8; the most recent tokens stay dense (the ``residual`` window, 32
  in the released scripts, which fills up to 256 more tokens before they are
  pruned and compressed together). hwsim charges each decode step the write of
  its own token (:func:`mustafar`), and stores the cache in a
  ``bitmapV@B`` dtype (:mod:`hwsim.ir.dtypes`) whose B averages the compressed
  tokens' bits and the dense window's, so every target reads, and every
  capacity check holds, the compressed bytes.

The probabilities are read as written by the attention kernel (one row per
query head): their bytes are part of the cost.
"""

from __future__ import annotations

from dataclasses import replace

from ..ir import Graph
from ..ir.dtypes import bitmap_dtype, dtype_bits
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


# Mustafar's released settings (github.com/dhjoo98/mustafar): mem_spd_test.py's kernel
# benchmark prunes keys and values to 70 % sparsity (K_SPARSITY = V_SPARSITY = 0.7), keeps
# the last GROUP_SIZE = 32 tokens dense (residual_length), and llama_mustafar_kernel.py
# compresses the window's oldest 256 tokens at once
MUSTAFAR_KEEP = 0.3
MUSTAFAR_RESIDUAL = 32
MUSTAFAR_GROUP = 256
MUSTAFAR_TILE = 64  # elements per bitmap tile (a 64-bit bitmap)
MUSTAFAR_TILE_META_BITS = 64 + 32  # the tile's bitmap and its int32 running count


def mustafar_kept(head_dim: int, keep: float) -> int:
    """Elements of a ``head_dim`` row the released ``dh_prune_key``/``dh_prune_value``
    keep at sparsity ``1 - keep``: those at or above the ``max(1, int(s·D))``-th smallest
    magnitude (``torch.kthvalue``), ``D - max(1, int(s·D)) + 1`` without ties."""
    sparsity = round(1.0 - keep, 12)
    return head_dim - max(1, int(sparsity * head_dim)) + 1


def _pad8(n: int) -> int:
    return (n + 7) & ~7  # the released count: padded to the nearest multiple of 8


def _tiles_bits(tiles: int, kept_total: int, value_bits: float) -> int:
    """Bits of ``tiles`` bitmap tiles holding ``kept_total`` values, spread as evenly as
    the tiles allow (each tile's values padded to a multiple of 8)."""
    q, r = divmod(kept_total, tiles)
    values = r * _pad8(q + 1) + (tiles - r) * _pad8(q)
    return tiles * MUSTAFAR_TILE_META_BITS + int(value_bits * values)


def mustafar_bits(head_dim: int, kept: int, value_bits: float, what: str) -> float:
    """Bits per element of a compressed key (``what = "key"``) or value cache: a key
    tile is one channel of 64 tokens (the released ``convert_key_batched`` transposes
    the cache), so 64 tokens' ``64·kept`` values spread over ``head_dim`` tiles; a value
    tile is 64 channels of one token, so a row's ``kept`` values spread over
    ``head_dim / 64`` tiles. The spread is the even one: where a channel is kept by
    more tokens than another (the keys' outlier channels), padding differs (M)."""
    if what == "key":
        return _tiles_bits(head_dim, MUSTAFAR_TILE * kept, value_bits) / (
            MUSTAFAR_TILE * head_dim)
    return _tiles_bits(head_dim // MUSTAFAR_TILE, kept, value_bits) / head_dim


def mustafar_window(cache: int, residual: int) -> int:
    """Tokens a decode step's attention reads dense out of ``cache`` (its own
    included): the released code compresses the oldest 256 of the window whenever
    it reaches ``residual + 256`` tokens, after the step's attention, so a step sees
    between ``residual + 1`` and ``residual + 256`` dense tokens; a cache within
    ``residual + 256`` is all dense."""
    if cache <= residual + MUSTAFAR_GROUP:
        return cache
    return (cache - residual - 1) % MUSTAFAR_GROUP + residual + 1


def mustafar(plan: Plan, step: Step) -> None:
    """Mustafar's per-token magnitude pruning of the KV cache, stored bitmap-compressed.

    Per decode step and layer, the write of its own token's key and value rows (the
    released code prunes and compresses the window's oldest 256 tokens every 256 steps:
    per step, one token's share of that work): ``|x|`` (``elementwise abs``), the
    threshold (``topk`` of ``kept`` of the ``head_dim`` magnitudes per KV head, the
    released ``kthvalue``), the mask (``elementwise mul``), each 64-element tile's
    bitmap and count (``reduce sum``), and the kept values packed (``gather``): O(b·hk·D)
    per layer, whatever the cache length. The attention then reads a cache of
    ``bitmapV@B``: O(n·D·B/16) bytes where the dense one reads O(n·D).
    """
    if plan.phase != "decode":
        raise step.error("", "mustafar prunes and compresses the KV cache a decode step "
                         "reads; the prompt's own attention runs dense in its released code "
                         "(simulate a decode step)")
    keep = scalar_keep(step) if step.get("keep") is not None else MUSTAFAR_KEEP
    keep_k = float(step.get("keep_keys", keep))
    keep_v = float(step.get("keep_values", keep))
    residual = int(step.get("residual", MUSTAFAR_RESIDUAL))
    b = plan.batch
    value_bits = dtype_bits(plan.dtype)
    windows, bits_out, kept_out = {}, {}, {}
    for layer in layers_param(plan, step):
        if layer in plan.dropped:
            continue
        d, hk = plan.head_dim[layer], plan.kv_kept(layer)
        if d % MUSTAFAR_TILE:
            raise step.error("", f"the released bitmap format tiles each row in "
                             f"{MUSTAFAR_TILE}-element tiles: head_dim must be a multiple of "
                             f"{MUSTAFAR_TILE}, layer {layer} has {d}")
        n = plan.keys(layer)
        window = mustafar_window(n, residual)
        compressed = n - window
        fmt = {}
        for what, f in (("key", keep_k), ("value", keep_v)):
            kk = mustafar_kept(d, f)
            bits = mustafar_bits(d, kk, value_bits, what)
            eff = (compressed * bits + window * value_bits) / n
            fmt[what] = bitmap_dtype(value_bits, eff) if compressed else plan.dtype
            bits_out[what], kept_out[what] = bits, kk
            blk = plan.block(step, layer, "end")
            rows = b * hk
            x = blk.t([rows * d])
            mag = blk.elementwise(f"mustafar.{what}_magnitude", "abs", rows * d, ins=[x])
            thr, _ = blk.topk(f"mustafar.{what}_threshold_topk", rows=rows, n=d, k=kk, x=mag)
            pruned = blk.elementwise(f"mustafar.{what}_mask", "mul", rows * d, ins=[x, mag])
            blk.reduce(f"mustafar.{what}_bitmap", "sum", rows * d, rows * d // MUSTAFAR_TILE,
                       x=pruned)
            blk.gather(f"mustafar.{what}_pack", rows * kk, rows * d)
        plan.kv_formats[layer] = fmt
        windows[layer] = window
    plan.record(step, keep_keys=keep_k, keep_values=keep_v, residual=residual,
                kept_per_row=kept_out, compressed_bits_per_element=bits_out,
                dense_window=sorted(set(windows.values())),
                cache_dtypes=sorted({v for f in plan.kv_formats.values() for v in f.values()}))


def apply_kv_formats(graph: Graph, formats: dict[int, dict[str, str]]) -> Graph:
    """Store each listed layer's (global index) KV cache in its format: the tensors its
    ``kv_write`` appends to and produces, which its attention reads. The new token's
    own row is written as computed (it joins the dense window)."""
    if not formats:
        return graph
    tensors = dict(graph.tensors)
    producer = {o: op for op in graph.ops for o in op.outputs}
    for op in graph.ops:
        fmt = formats.get(op.layer) if op.kind == "attention" else None
        if not fmt:
            continue
        for what, pos in (("key", 1), ("value", 2)):
            kw = producer.get(op.inputs[pos])
            if kw is None or kw.kind != "kv_write" or fmt[what] == tensors[op.inputs[pos]].dtype:
                continue
            for tid in (op.inputs[pos], *kw.inputs[1:]):
                tensors[tid] = replace(tensors[tid], dtype=fmt[what])
    return graph.replace_ops(list(graph.ops), tensors.values())
