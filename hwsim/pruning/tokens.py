"""Token pruning: fewer tokens from some layer on, and the machinery that chooses them.

Every pass here shrinks the token counts of the plan (the prompt in a
prefill, the KV cache in a decode step) and adds the ops its method runs to
decide which tokens survive, sized from its paper's algorithm:

==============  ===========================================================
method          machinery (per pruning point)
==============  ===========================================================
spatten         importance = attention probabilities summed over heads and
                queries (``reduce``), accumulated across layers
                (``elementwise add``), ``topk``
fastv           the last query's scores against layer K-1's keys
                (``matmul`` + ``softmax``), mean over heads restricted to the
                segment (``reduce``), ``topk``
hawk            text-token queries and segment keys (two ``matmul``), their
                scores (``matmul`` + ``softmax``), mean over text queries,
                head-importance weighting (``elementwise mul``), sum over
                heads, ``topk``
divprune        as released: norms and normalization, the n x n cosine
                similarity (``matmul``) and distance (``elementwise sub``),
                then k greedy max-min picks, each a ``gather`` of the i picked
                rows, their column minimum (``reduce min``) and the next pick
                (``reduce argmax``): O(n² d + k² n); ``algorithm:
                incremental``: k picks of O(n d) each (``matmul`` 1 x n x d,
                ``elementwise min``, ``reduce argmax``): O(n k d)
topv            the cost matrix between segment and text tokens (``matmul``),
                its Gibbs kernel (``elementwise exp``), per Sinkhorn
                iteration two matrix-vector products and two divisions,
                the transport plan's row mass (``reduce``), ``topk``
lazyllm         the last token's attention (``matmul`` + ``softmax``), mean
                over heads, ``topk``; pruned tokens' hidden states written to
                the auxiliary cache (``kv_write``); in a generation's decode
                step the same ranking, and revived tokens' states read back
                from the auxiliary cache (``gather``, :func:`lazyllm_step`)
zero-tprune     I-stage: the head-averaged attention graph (``reduce``), per
                PageRank iteration a vector-matrix product and the damping
                (``matmul`` + ``elementwise fma``), ``topk``; S-stage: the
                survivors' keys in importance order (``gather``), norms,
                the similarity of the less important half to the rest
                (``matmul``), each one's best match (``reduce max``),
                ``topk`` of the most similar: O(h n² + t n² + n² D / 4)
fastervlm       before the language model: the vision tower's [CLS] query
                against its penultimate layer's keys (``matmul`` + ``softmax``),
                the mean over heads of the patch columns (``reduce``),
                ``topk`` per image: O(h n d_h)
==============  ===========================================================

plus, in every case, the ``gather`` of the surviving tokens that
:func:`hwsim.ir.layered.instantiate_layers` inserts where the size changes.

Scores are per query head; with grouped-query attention the keys they are
computed against are the key/value heads' (TinyLlama: 4 heads of keys for 32
query heads). The group's query heads are the rows of one product against
their key/value head's keys (``matmul`` with ``batch = b·kv_heads`` and
``m = group x queries``: the same FLOPs as one product per query head over a
broadcast of the keys, as ``repeat_kv`` does in the models' code, with no copy
of the keys), so each head's keys are read once. A token selection is one per
sequence, shared by every head (the pruned tokens leave the hidden states).
"""

from __future__ import annotations

import os

from ..yamlfile import resolve_path
from .common import keep_list, layer_param, progressive_factors, quarter_layers, scalar_keep
from .plan import Plan, Step, kept, round_half_up
from .registry import DIVPRUNE_ALGORITHMS

TOPV_ITERATIONS = 10  # Sinkhorn iterations when the step does not say (M)
PAGERANK_ITERATIONS = 30  # weighted-PageRank iterations when the step does not say (M)
ZERO_TPRUNE_SIMILARITY_SHARE = 0.5  # share of a layer's pruned tokens the S-stage removes (M)


def _prefill_only(plan: Plan, step: Step, what: str) -> None:
    if plan.phase != "prefill":
        raise step.error("", f"{what}; this workload is a decode step (use a KV-cache method "
                         f"such as h2o or kvcrush, or simulate the prefill)")


def _last_query_scores(blk, name: str, b: int, h: int, hk: int, d: int, n: int,
                       n_seg: int) -> int:
    """Scores of the last query over ``n`` keys, softmax, mean over heads of ``n_seg`` of them.

    The ``h`` query heads score the keys of the ``hk`` key/value heads (grouped-query
    attention): one product per key/value head whose rows are its group's query heads,
    so each head's keys are read once (``batch = b·hk``, ``m = h / hk``)."""
    hk = max(1, hk)
    g = h // hk
    q = blk.t([b * hk, g, d])
    keys = blk.t([b * hk, d, n])
    s = blk.matmul(f"{name}.last_query_scores", batch=b * hk, m=g, n=n, k=d, a=q, b=keys)
    p = blk.softmax(f"{name}.last_query_softmax", rows=b * h, cols=n, x=s)
    if n_seg != n:
        seg = blk.t([b * h * n_seg])
        blk.op("view", f"{name}.segment_columns", {"note": "slice"}, [p], [seg])
        p = seg
    return blk.reduce(f"{name}.head_mean", "mean", b * h * n_seg, b * n_seg, x=p)


# ---------------------------------------------------------------------------- FastV
def fastv(plan: Plan, step: Step) -> None:
    """After layer K, keep ``keep`` of the segment's tokens, ranked by the last query."""
    _prefill_only(plan, step, "FastV prunes the prompt during the prefill")
    K = layer_param(plan, step)
    if K < 1:
        raise step.error("at_layer", "FastV ranks tokens by the attention of layer K-1, so K "
                         "must be >= 1 (to prune before the language model use hawk or "
                         "divprune)")
    keep = scalar_keep(step)
    bucket = plan.bucket_of(step)
    n_seg, n_keys = plan.tokens(K, bucket), plan.keys(K - 1)
    plan.scale_tokens(step, {layer: keep for layer in range(K, plan.num)}, bucket)
    k = plan.tokens(K, bucket)
    b, h, d = plan.batch, plan.heads[K - 1], plan.head_dim[K - 1]
    blk = plan.block(step, K)
    imp = _last_query_scores(blk, "fastv", b, h, plan.kv_kept(K - 1), d, n_keys, n_seg)
    blk.topk("fastv.topk", rows=b, n=n_seg, k=k, x=imp)
    plan.record(step, selected=f"{k} of {n_seg}")


# ---------------------------------------------------------------------------- HAWK
def hawk(plan: Plan, step: Step) -> None:
    """Before the language model: text-guided attention weighted by head importance."""
    _prefill_only(plan, step, "HAWK prunes the prompt's visual tokens before the language model")
    keep = scalar_keep(step)
    bucket = plan.bucket_of(step)
    first = plan.alive()[0]
    n_seg = plan.tokens(first, bucket)
    n_text = max(1, plan.tokens(first) - n_seg)
    plan.scale_tokens(step, {layer: keep for layer in range(plan.num)}, bucket)
    k = plan.tokens(first, bucket)
    b, h, d, D = plan.batch, plan.heads[first], plan.head_dim[first], plan.hidden
    hk = max(1, plan.kv_kept(first))
    blk = plan.block(step, first)
    q = blk.matmul("hawk.text_queries", batch=1, m=b * n_text, n=h * d, k=D)
    # the keys through the key projection: one per key/value head (hk x d wide); a
    # group's query heads are the rows of one product against their head's keys
    key = blk.matmul("hawk.segment_keys", batch=1, m=b * n_seg, n=hk * d, k=D)
    s = blk.matmul("hawk.text_guided_scores", batch=b * hk, m=(h // hk) * n_text, n=n_seg,
                   k=d, a=q, b=key)
    p = blk.softmax("hawk.text_guided_softmax", rows=b * h * n_text, cols=n_seg, x=s)
    r = blk.reduce("hawk.text_mean", "mean", b * h * n_text * n_seg, b * h * n_seg, x=p)
    w = blk.elementwise("hawk.head_weighting", "mul", b * h * n_seg, ins=[r, blk.t([h])])
    imp = blk.reduce("hawk.head_sum", "sum", b * h * n_seg, b * n_seg, x=w)
    blk.topk("hawk.topk", rows=b, n=n_seg, k=k, x=imp)
    plan.record(step, selected=f"{k} of {n_seg}")


# ---------------------------------------------------------------------------- DivPrune
def divprune(plan: Plan, step: Step) -> None:
    """Greedy max-min diversity selection of k of the segment's n tokens, at layer K (0).

    DivPrune (Alvar et al., "DivPrune: Diversity-based Visual Token Pruning for Large
    Multimodal Models", CVPR 2025, arXiv 2503.02175) keeps the k tokens that solve a
    max-min diversity problem greedily: each pick is the token farthest (cosine distance)
    from all the tokens picked so far. How much that costs depends on how the greedy loop
    is written, so the step names the algorithm:

    ``algorithm: released`` (the default) follows the released code, github.com/vbdi/divprune,
    function ``DivPrune`` with ``pairwise_cosine_similarity``. On the n x d hidden states of
    the candidates (d: the model's hidden size) it computes

    1. the row norms and the normalized rows (``reduce norm``, ``elementwise div``: n d);
    2. the whole n x n cosine similarity by one product (``matmul`` n x n x d: 2 n² d
       FLOPs) and the distance matrix ``1 - similarity`` (``elementwise sub``, n²);
    3. pick 0: per column the second smallest distance over the whole matrix (``topk`` 2
       of n along dim 0, for n columns) and its argmax (``reduce argmax`` over n);
    4. pick i = 1 .. k-1: the i rows of the tokens picked so far (``gather`` i x n from
       the n x n matrix, ``index_select``), their minimum per column (``reduce min``
       i x n -> n) and the argmax over the n columns (``reduce argmax``).

    So O(n² d + k² n): 2 n² d FLOPs for the similarity, sum over i of i·n = k(k-1)/2 · n
    elements gathered and reduced. It emits 3k + 3 ops (and two free views; each greedy
    step reads a different number of rows, so the steps are distinct ops of growing
    size, not one op repeated). With k in
    the thousands that is thousands of ops per pruning point and the k² n gathers dominate
    the machinery: n = 4,096, k = 2,048 gathers 8.6 G elements (17 GB at fp16) where the
    similarity is 137 GFLOP.

    ``algorithm: incremental`` is the O(n k d) variant that keeps a running minimum
    instead of re-reducing the picked rows: per pick, the distances of the last pick to
    all n tokens (``matmul`` 1 x n x d), the running minimum (``elementwise min``) and the
    next pick (``reduce argmax``); no n x n matrix. It selects the same tokens.
    """
    _prefill_only(plan, step, "DivPrune prunes the prompt's visual tokens during the prefill")
    K = layer_param(plan, step, default=0)
    keep = scalar_keep(step)
    algorithm = step.get("algorithm", "released")
    if algorithm not in DIVPRUNE_ALGORITHMS:
        raise step.error("algorithm", f"expected one of {', '.join(DIVPRUNE_ALGORITHMS)}, "
                         f"got {algorithm!r}")
    bucket = plan.bucket_of(step)
    n = plan.tokens(K, bucket)
    plan.scale_tokens(step, {layer: keep for layer in range(K, plan.num)}, bucket)
    k = plan.tokens(K, bucket)
    b, D = plan.batch, plan.hidden
    blk = plan.block(step, K)
    x = blk.t([b * n * D])
    norms = blk.reduce("divprune.norms", "norm", b * n * D, b * n, x=x)
    xn = blk.elementwise("divprune.normalize", "div", b * n * D, ins=[x, norms])
    if algorithm == "incremental":
        best = blk.t([b * n])
        for _ in range(k):
            dist = blk.matmul("divprune.distances", batch=b, m=1, n=n, k=D, b=xn)
            best = blk.elementwise("divprune.min_distance", "min", b * n, ins=[dist, best])
            blk.reduce("divprune.argmax", "argmax", b * n, b, x=best)
    else:
        xt = blk.t([b, D, n])
        blk.op("view", "divprune.transpose", {"note": "transpose"}, [xn], [xt])
        sim = blk.matmul("divprune.similarity", batch=b, m=n, n=n, k=D, a=xn, b=xt)
        dist = blk.elementwise("divprune.distance", "sub", b * n * n, ins=[sim])
        two, _ = blk.topk("divprune.second_smallest", rows=b * n, n=n, k=2, x=dist)
        second = blk.t([b * n])
        blk.op("view", "divprune.second_column", {"note": "slice"}, [two], [second])
        blk.reduce("divprune.argmax", "argmax", b * n, b, x=second)
        for i in range(1, k):
            picked = blk.t([b * i], "int64")
            rows = blk.t([b * i * n])
            blk.op("gather", "divprune.picked_rows", {"elements": b * i * n}, [dist, picked],
                   [rows])
            low = blk.reduce("divprune.min_over_picked", "min", b * i * n, b * n, x=rows)
            blk.reduce("divprune.argmax", "argmax", b * n, b, x=low)
    plan.record(step, selected=f"{k} of {n}", greedy_steps=k, algorithm=algorithm)


# ---------------------------------------------------------------------------- TopV
def topv(plan: Plan, step: Step) -> None:
    """Once at layer K (2): Sinkhorn optimal transport between segment and text tokens."""
    _prefill_only(plan, step, "TopV prunes the prompt during the prefill")
    K = layer_param(plan, step, default=min(2, plan.num - 1))
    keep = scalar_keep(step)
    iters = int(step.get("iterations", TOPV_ITERATIONS))
    bucket = plan.bucket_of(step)
    n = plan.tokens(K, bucket)
    m = max(1, plan.tokens(K) - n)
    plan.scale_tokens(step, {layer: keep for layer in range(K, plan.num)}, bucket)
    k = plan.tokens(K, bucket)
    b, D = plan.batch, plan.hidden
    blk = plan.block(step, K)
    cost = blk.matmul("topv.cost", batch=b, m=n, n=m, k=D)
    kern = blk.elementwise("topv.gibbs_kernel", "exp", b * n * m, ins=[cost])
    v = blk.t([b, m, 1])
    u = None
    for _ in range(iters):
        kv = blk.matmul("topv.sinkhorn_Kv", batch=b, m=n, n=1, k=m, a=kern, b=v)
        u = blk.elementwise("topv.sinkhorn_u", "div", b * n, ins=[blk.t([b * n]), kv])
        ktu = blk.matmul("topv.sinkhorn_KTu", batch=b, m=m, n=1, k=n, a=kern, b=u)
        v = blk.elementwise("topv.sinkhorn_v", "div", b * m, ins=[blk.t([b * m]), ktu])
    plan_t = blk.elementwise("topv.transport_plan", "mul", b * n * m,
                             ins=[kern, u if u is not None else blk.t([b * n])])
    imp = blk.reduce("topv.token_mass", "sum", b * n * m, b * n, x=plan_t)
    blk.topk("topv.topk", rows=b, n=n, k=k, x=imp)
    plan.record(step, selected=f"{k} of {n}", iterations=iters)


# ---------------------------------------------------------------------------- SpAtten
def spatten(plan: Plan, step: Step) -> None:
    """Cascade token pruning (and, optionally, head and local value pruning)."""
    from .heads import spatten_heads_schedule  # noqa: PLC0415 - sibling module

    fractions, origin = _spatten_fractions(plan, step)
    if plan.phase == "prefill" and fractions[0] < 1:
        raise step.error("keep", "SpAtten ranks tokens by the attention of earlier layers, so "
                         "in a prefill layer 0 runs on every token (keep[0] must be 1)")
    if any(f < 1 for f in fractions):
        before = [plan.tokens(layer) for layer in range(plan.num)]
        plan.scale_tokens(step, dict(enumerate(fractions)), None)
        _spatten_machinery(plan, step, before)
    if step.get("heads_keep") is not None:
        spatten_heads_schedule(plan, step, "heads_keep")
    if step.get("value_keep") is not None:
        for layer in plan.alive():
            plan.sparse[layer] = {"method": "spatten", "mode": "value",
                                  "keep": float(step.get("value_keep"))}
    extra = {}
    if step.get("scores") is not None:  # the SpAtten target's seeded top-k reads them too

        extra["scores_path"] = os.path.abspath(resolve_path(step.get("scores"), step.source))
    plan.record(step, schedule=origin, keep_fractions=fractions, **extra)


def _spatten_fractions(plan: Plan, step: Step) -> tuple[list[float], str]:
    if step.get("schedule") is not None or step.get("scores") is not None:
        # (numpy, which reading scores needs, loaded only for a file: a keep list or a
        # single keep is plain Python)
        from .schedules import resolve_schedule  # noqa: PLC0415

        return resolve_schedule(plan, step)
    lst = keep_list(plan, step)
    if lst is not None:
        return lst, "keep list"
    keep = float(step.get("keep"))
    if plan.phase == "prefill":
        return [1.0] + [keep] * (plan.num - 1), "keep from layer 1"
    return [keep] * plan.num, "keep at every layer"


def _spatten_machinery(plan: Plan, step: Step, before: list[int]) -> None:
    b = plan.batch
    alive = plan.alive()
    for i, layer in enumerate(alive):
        n_l = plan.tokens(layer)
        prev = alive[i - 1] if i else None
        if plan.phase == "prefill":
            if prev is None or n_l >= plan.tokens(prev):
                continue
            n_prev, h = plan.tokens(prev), plan.heads[prev]
            blk = plan.block(step, layer)
            imp = blk.reduce("spatten.importance", "sum", b * h * n_prev * n_prev, b * n_prev)
            acc = blk.elementwise("spatten.accumulate", "add", b * n_prev, ins=[imp, None])
            blk.topk("spatten.topk", rows=b, n=n_prev, k=n_l, x=acc)
        else:
            if n_l >= before[layer]:
                continue
            n_keys, h = plan.keys(layer), plan.heads[layer]
            n_all = plan.tokens(prev) if prev is not None else before[layer]
            n_all = max(n_all, n_l)
            blk = plan.block(step, layer)
            imp = blk.reduce("spatten.importance", "sum", b * h * n_keys, b * n_keys)
            blk.elementwise("spatten.accumulate", "add", b * n_keys, ins=[imp, None])
            blk.topk("spatten.topk", rows=b, n=n_all, k=n_l)


# ---------------------------------------------------------------------------- LazyLLM
def lazyllm(plan: Plan, step: Step) -> None:
    """Progressive pruning by the last token's attention; pruned states go to an aux cache.

    A prefill prunes the prompt at each pruning layer; a decode step (one forward)
    prunes its cache there. A generation's decode step (the plan's ``rows`` set, its
    cache per layer what the generation computed so far, :mod:`hwsim.generation`) only
    costs the selection: :func:`lazyllm_step`."""
    if plan.phase == "decode" and plan.rows:
        lazyllm_step(plan, step)
        return
    if plan.phase == "decode" and step.get("revive", 0):
        raise step.error("revive", "tokens revive over a generation's decode steps (phase: "
                         "generate); a single decode step prunes its cache (leave revive out)")
    before = [plan.tokens(layer) for layer in range(plan.num)]
    prev_keys = [plan.keys(layer) for layer in range(plan.num)]
    factors = progressive_factors(plan, step, quarter_layers(plan.num))
    if plan.phase == "prefill" and factors.get(0, 1.0) < 1:
        raise step.error("keep", "LazyLLM ranks tokens by the attention of the layer before, "
                         "so in a prefill layer 0 runs on every token")
    plan.scale_tokens(step, factors, None)
    b, D = plan.batch, plan.hidden
    alive = plan.alive()
    points = []
    for i, layer in enumerate(alive):
        prev = alive[i - 1] if i else None
        n_prev = plan.tokens(prev) if prev is not None else before[layer]
        n_l = plan.tokens(layer)
        if n_l >= n_prev:
            continue
        points.append(layer)
        src = prev if prev is not None else layer
        h, hk, d = plan.heads[src], plan.kv_kept(src), plan.head_dim[src]
        keys = plan.keys(prev) if prev is not None else prev_keys[layer]
        blk = plan.block(step, layer)
        if plan.phase == "prefill":
            imp = _last_query_scores(blk, "lazyllm", b, h, hk, d, n_prev, n_prev)
            blk.topk("lazyllm.topk", rows=b, n=n_prev, k=n_l, x=imp)
            pruned = b * (n_prev - n_l) * D
            blk.kv_write("lazyllm.aux_cache_write", pruned, pruned)
        else:
            imp = _last_query_scores(blk, "lazyllm", b, h, hk, d, keys, keys)
            cand = blk.t([b * n_prev])
            blk.op("view", "lazyllm.cached_columns", {"note": "slice"}, [imp], [cand])
            blk.topk("lazyllm.topk", rows=b, n=n_prev, k=n_l, x=cand)
            new = b * plan.base["seq_len"] * D
            blk.kv_write("lazyllm.aux_cache_write", new, b * (n_prev - n_l + 1) * D)
    plan.record(step, pruning_layers=points)


def lazyllm_points(plan: Plan, step: Step) -> list[int]:
    """LazyLLM's pruning layers: where its kept fraction falls (its ``layers``, by default a
    quarter, half and three quarters in; or where a ``keep`` list falls)."""
    factors = progressive_factors(plan, step, quarter_layers(plan.num))
    alive = plan.alive()
    return [layer for prev, layer in zip(alive, alive[1:])
            if factors.get(layer, 1.0) < factors.get(prev, 1.0)]


def lazyllm_step(plan: Plan, step: Step) -> None:
    """A generation's decode step under LazyLLM (Fu et al. 2024, arXiv 2407.14057, Sec. 3).

    At each pruning layer the step ranks again the tokens present at the layer
    before (its cache plus the step's rows there) by the last token's attention
    (``matmul`` + ``softmax`` + head mean) and keeps the top ``keep`` of them
    (``topk``). A selected token that this layer never computed is *revived*: its
    hidden state at this layer is read from the auxiliary cache (``gather``) and it is
    computed from here on, a query row of every later layer (the plan's ``rows``,
    set by the generation with the caches; never more than were pruned, so each token
    is computed at most once per layer). The pruned stack's sizes are not changed
    here: the generation set them."""
    factors = progressive_factors(plan, step, quarter_layers(plan.num))
    b, D = plan.batch, plan.hidden
    alive = plan.alive()
    points, revived = [], []
    for prev, layer in zip(alive, alive[1:]):
        if factors.get(layer, 1.0) >= factors.get(prev, 1.0):
            continue
        points.append(layer)
        plan.changed_by[layer] = step.method  # its rows' selection is LazyLLM's
        n_prev = plan.keys(prev)  # the tokens present at the layer before, this step's too
        k = kept(n_prev, factors[layer] / factors.get(prev, 1.0))
        h, hk, d = plan.heads[prev], plan.kv_kept(prev), plan.head_dim[prev]
        blk = plan.block(step, layer)
        imp = _last_query_scores(blk, "lazyllm", b, h, hk, d, n_prev, n_prev)
        blk.topk("lazyllm.topk", rows=b, n=n_prev, k=k, x=imp)
        r = plan.rows_at(layer) - plan.rows_at(prev)
        revived.append(r)
        if r > 0:
            pool = max(r, plan.tokens(prev) - plan.tokens(layer))  # pruned here, not revived
            blk.gather("lazyllm.aux_cache_read", b * r * D, b * pool * D)
    plan.record(step, pruning_layers=points, revived_per_layer=revived,
                rows_per_layer=[None if layer in plan.dropped else plan.rows_at(layer)
                                for layer in range(plan.num)])


# ---------------------------------------------------------------------------- Zero-TPrune
def zero_tprune(plan: Plan, step: Step) -> None:
    """ViT token pruning: weighted PageRank (I-stage), then similarity (S-stage).

    Zero-TPrune (Wang, Dedhia and Jha, "Zero-TPrune: Zero-Shot Token Pruning through
    Leveraging of the Attention Graph in Pre-Trained Transformers", CVPR 2024, arXiv
    2305.17328) ranks tokens by the attention graph and then prunes by similarity: the
    importance distribution "guides the partition of tokens into two groups" whose
    similarity decides which tokens go (the paper's abstract). At each pruning layer,
    with n tokens reaching it, n' kept, r = round(``similarity_share`` x (n - n')) of the
    removed ones removed by similarity (capped at half the I-stage's survivors), h heads
    and D = the hidden size:

    I-stage (weighted PageRank): the head-averaged attention graph of the layer before
    (``reduce`` mean, h x n x n), per iteration a vector-matrix product (``matmul``
    1 x n x n) and the damping (``elementwise fma``), the I-stage's ``topk`` keeping
    m = n' + r: O(h n² + t n²) for t iterations.

    S-stage (similarity): the m survivors, already in importance order from the top-k,
    split into two groups, the less important half (source, s = ceil(m/2)) and the rest
    (target, m - s): a ``gather`` of their features (the layer's keys, D wide, in the
    order of the partition), their norms and normalization (``reduce norm``,
    ``elementwise div``), the source x target cosine similarity (``matmul`` s x (m - s) x
    D), each source token's largest similarity (``reduce max`` over the target group), and
    the ``topk`` of the r most similar source tokens, which are pruned: O(m² D / 4).

    ``similarity_share: 0`` is the I-stage alone. The share (default 0.5) and the
    features (keys) are assumptions (M): the paper's abstract states the two stages and
    the partition, not the split of the pruned tokens between them.
    """
    _prefill_only(plan, step, "Zero-TPrune prunes a ViT's tokens in its forward pass")
    iters = int(step.get("iterations", PAGERANK_ITERATIONS))
    share = float(step.get("similarity_share", ZERO_TPRUNE_SIMILARITY_SHARE))
    factors = progressive_factors(plan, step, quarter_layers(plan.num))
    if factors.get(0, 1.0) < 1:
        raise step.error("keep", "Zero-TPrune ranks tokens by the attention of the layer "
                         "before, so layer 0 runs on every token")
    plan.scale_tokens(step, factors, None)
    b, D = plan.batch, plan.hidden
    alive = plan.alive()
    points, by_similarity = [], []
    for prev, layer in zip(alive, alive[1:]):
        n, n_l = plan.tokens(prev), plan.tokens(layer)
        if n_l >= n:
            continue
        points.append(layer)
        h = plan.heads[prev]
        blk = plan.block(step, layer)
        graph = blk.reduce("zero-tprune.attention_graph", "mean", b * h * n * n, b * n * n)
        s = blk.t([b, 1, n])
        for _ in range(iters):
            s = blk.matmul("zero-tprune.pagerank_step", batch=b, m=1, n=n, k=n, a=s, b=graph)
            s = blk.elementwise("zero-tprune.damping", "fma", b * n, ins=[s])
        r = min(round_half_up(share * (n - n_l)), n_l)  # at most the source half of n_l + r
        m = n_l + r
        blk.topk("zero-tprune.topk", rows=b, n=n, k=m, x=s)
        by_similarity.append(r)
        if r:
            src = (m + 1) // 2
            feats = blk.gather("zero-tprune.partition", b * m * D, b * n * D)
            norms = blk.reduce("zero-tprune.norms", "norm", b * m * D, b * m, x=feats)
            xn = blk.elementwise("zero-tprune.normalize", "div", b * m * D, ins=[feats, norms])
            a_grp, b_grp = blk.t([b, src, D]), blk.t([b, D, m - src])
            blk.op("view", "zero-tprune.source_group", {"note": "slice"}, [xn], [a_grp])
            blk.op("view", "zero-tprune.target_group", {"note": "slice, transpose"}, [xn],
                   [b_grp])
            sim = blk.matmul("zero-tprune.similarity", batch=b, m=src, n=m - src, k=D,
                             a=a_grp, b=b_grp)
            best = blk.reduce("zero-tprune.most_similar", "max", b * src * (m - src), b * src,
                              x=sim)
            blk.topk("zero-tprune.similar_topk", rows=b, n=src, k=r, x=best)
    plan.record(step, pruning_layers=points, iterations=iters, similarity_share=share,
                pruned_by_similarity=by_similarity)


# ---------------------------------------------------------------------------- FasterVLM
def fastervlm(plan: Plan, step: Step) -> None:
    """Before the language model: the vision encoder's own [CLS] attention ranks the patches.

    FasterVLM (Zhang et al., "[CLS] Attention is All You Need for Training-Free Visual
    Token Pruning: Make VLM Inference Faster", arXiv 2412.01818) keeps the visual tokens
    the vision tower's [CLS] token attends to most, so text-visual attention inside the
    language model (FastV's signal) is never needed and the language model runs on the
    kept tokens from its first layer. The released code (github.com/Theia-4869/FasterVLM,
    ``clip_vision_tower_feature_select`` and ``LlavaMetaForCausalLM.encode_images``) takes
    the attention of the layer LLaVA reads its features from (``mm_vision_select_layer =
    -2``, the penultimate CLIP layer), its [CLS] row over the patch columns
    (``attentions[:, :, 0, 1:]``), the mean over heads and a ``topk`` of
    ``int(patches x retention_ratio)`` (truncated: 10 % of 576 keeps 57). Per image (or
    crop) with n = patches + 1 tokens, h heads of width d_h:

    - the [CLS] query's scores against the layer's n keys (``matmul`` per head 1 x n x
      d_h) and their ``softmax``: a fused attention never writes its probabilities, so
      the row is recomputed (the released code instead asks CLIP for ``output_attentions``,
      which makes every layer write its h x n x n probabilities);
    - the mean over heads of the patch columns (``reduce`` h x (n - 1) -> n - 1);
    - the ``topk`` of the kept patches; the language model's gather of the survivors
      (``fastervlm.token_select``).

    O(h n d_h + n log k) per image: the cheapest ranking in the library. The projector
    runs on every patch, as in the released code (it projects all of them and then
    selects, ``image_features[index_mask]``). Only a vision tower with a [CLS] token
    (CLIP, as in LLaVA-1.5) has the signal; SigLIP's and Qwen2.5-VL's have none.
    """
    _prefill_only(plan, step, "FasterVLM prunes the prompt's visual tokens before the "
                  "language model")
    v = plan.vision
    if not v:
        raise step.error("", "FasterVLM ranks visual tokens by the vision encoder's [CLS] "
                         "attention; this model has no vision tower (use a vision-language "
                         "model such as llava-1.5-7b)")
    if not v["cls"]:
        raise step.error("", f"FasterVLM ranks visual tokens by the [CLS] token's attention, "
                         f"and the vision tower of {plan.model or 'this model'} has no [CLS] "
                         f"token (SigLIP and Qwen2.5-VL towers have none): use hawk or "
                         f"divprune")
    seg = step.get("segment", "visual")
    if seg not in plan.buckets:
        raise step.error("segment", f"unknown segment {seg!r} (graph has: "
                         f"{', '.join(b for b in plan.buckets if b != 'other') or 'none'})")
    keep = scalar_keep(step)
    first = plan.alive()[0]
    n_seg = plan.tokens(first, seg)
    k = max(1, int(n_seg * keep))  # the released int(num_visual_tokens * retention_ratio)
    plan.scale_tokens(step, {layer: k / n_seg for layer in range(plan.num)}, seg)
    k = plan.tokens(first, seg)
    bv, h, dh, n = v["batch"], v["heads"], v["head_dim"], v["tokens"]
    per_image = max(1, -(-k // max(1, bv // plan.batch)))  # kept patches per image (crop)
    blk = plan.block(step, first)
    q = blk.t([bv * h, 1, dh])
    keys = blk.t([bv * h, dh, n])
    s = blk.matmul("fastervlm.cls_scores", batch=bv * h, m=1, n=n, k=dh, a=q, b=keys)
    p = blk.softmax("fastervlm.cls_softmax", rows=bv * h, cols=n, x=s)
    patches = blk.t([bv * h * (n - 1)])
    blk.op("view", "fastervlm.patch_columns", {"note": "slice [:, :, 0, 1:]"}, [p], [patches])
    imp = blk.reduce("fastervlm.head_mean", "mean", bv * h * (n - 1), bv * (n - 1), x=patches)
    blk.topk("fastervlm.topk", rows=bv, n=n - 1, k=min(n - 1, per_image), x=imp)
    plan.record(step, selected=f"{k} of {n_seg}", vision_layer=v["first"] + v["layer"],
                segment=seg)
