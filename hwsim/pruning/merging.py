"""Token merging: fewer tokens by averaging similar ones, not by dropping them.

ToMe (Bolya, Fu, Dai, Zhang, Feichtenhofer and Hoffman, "Token Merging: Your ViT
But Faster", ICLR 2023, arXiv 2210.09461) shrinks a ViT by ``r`` tokens in every
layer. A dropped token's information is lost; a merged one is averaged into the
token it is most similar to, so ToMe keeps accuracy without retraining. Its
released code (github.com/facebookresearch/ToMe, ``tome/merge.py``:
``bipartite_soft_matching`` and ``merge_wavg``; ``tome/patch/timm.py``: the
attention with ``prop_attn``) runs, in each layer, between the attention and the
MLP, on the n tokens of the layer (h key heads of width d_h, model width D):

1. the matching metric: the layer's keys averaged over heads (``k.mean(1)``:
   ``reduce mean`` h x n x d_h -> n x d_h), their norms and normalization
   (``reduce norm``, ``elementwise div``);
2. bipartite soft matching: the tokens alternately into sets A (even positions,
   ceil(n/2)) and B (odd, floor(n/2)) (free views), A's cosine similarity to B
   (``matmul`` ceil(n/2) x floor(n/2) x d_h: about n² d_h / 2 FLOPs), each A
   token's best match (``reduce max``, value and index), the edges sorted by
   similarity (``node_max.argsort``: a ``topk`` of all ceil(n/2)), and the
   destinations of the r best edges (``gather`` of r indices);
3. the weighted merge (``merge_wavg``): tokens scaled by their sizes (``elementwise
   mul``, n x D), the r source rows (``gather`` r x D) added into their
   destinations (``scatter_reduce`` with ``sum``: an ``elementwise add`` of r x D
   that reads the sources and the destination rows and writes those rows), the
   same for the sizes (width 1), the n - r survivors assembled (``torch.cat``: the
   ``tome.token_select`` gather of the next layer's tokens) and divided by their
   sizes (``elementwise div``, (n - r) x D);
4. proportional attention (``prop_attn``, on by default) in every later layer:
   ``log(size)`` of its n' tokens (``elementwise log``) added to every attention
   logit (``elementwise add`` over h x n' x n' scores), so that a merged token
   counts as the tokens it stands for.

So a merging layer costs O(n² d_h / 2 + n log n + r D + n D) and every layer
after the first merge O(h n'²) more for the proportional bias: unlike dropping,
the bias grows with the square of the tokens, and the merge is a scatter-add.

**Where the merge sits.** ToMe merges inside a layer, after its attention and
before its MLP, so layer l's MLP already runs on r fewer tokens. hwsim's layers
change size at their boundaries: the merge of layer l-1 is placed at the start
of layer l (which runs on n - r tokens throughout) and computed from layer l-1's
keys. The MLP of each merging layer is therefore costed on r more tokens than
ToMe runs it on, and the last layer's merge (which would only shrink its own
MLP) is not modelled: a conservative cost. ``layers`` (default: every layer from
1) are the layers that start on r fewer tokens than the layer before.

**Protected tokens.** The class token is never merged (ToMe sets its row of the
scores to -inf, ``class_token``): ``protected`` (default 1) leading tokens are
not merged, and a merge takes at most half of the unprotected tokens,
``r = min(r, (n - protected) // 2)`` as the released code caps it.
"""

from __future__ import annotations

from .common import layers_param
from .plan import Plan, Step

TOME_PROTECTED = 1  # the class token of DeiT / ViT (ToMe's class_token)


def tome(plan: Plan, step: Step) -> None:
    """ToMe's bipartite soft matching and weighted merge, r tokens per merging layer."""
    if plan.phase != "prefill":
        raise step.error("", "ToMe merges a ViT's tokens in its forward pass; this workload "
                         "is a decode step (use a KV-cache method such as h2o)")
    plan.require_resizable(step)
    r = int(step.get("r"))
    protect = int(step.get("protected", TOME_PROTECTED))
    prop = bool(step.get("proportional_attention", True))
    alive = plan.alive()
    merge_at = layers_param(plan, step, alive[1:])
    if merge_at and merge_at[0] == 0:
        raise step.error("layers", "ToMe merges by the keys of the layer before (hwsim puts "
                         "a layer's merge at the start of the next), so layer 0 runs on "
                         "every token: list layers from 1")
    # the tokens each layer runs on: r fewer than the layer before at each merging layer
    target, merged, r_at = {}, 0, {}
    before = {layer: plan.tokens(layer) for layer in alive}
    prev_count = None
    for layer in alive:
        if layer in merge_at and prev_count is not None:
            r_l = max(0, min(r, (prev_count - protect) // 2))
            if r_l:
                r_at[layer] = (prev_count, r_l)
            merged += r_l
        target[layer] = max(1, before[layer] - merged)
        prev_count = target[layer]
    plan.scale_tokens(step, {layer: target[layer] / before[layer] for layer in alive
                             if target[layer] < before[layer]}, None)
    b, D = plan.batch, plan.hidden
    first_merge = min(r_at, default=None)
    for i, layer in enumerate(alive):
        blk = None
        if layer in r_at:
            n, r_l = r_at[layer]
            prev = alive[i - 1]
            blk = plan.block(step, layer)
            _bipartite_merge(blk, b, n, r_l, D, max(1, plan.kv_kept(prev)), plan.head_dim[prev])
        if prop and first_merge is not None and layer >= first_merge:
            blk = blk or plan.block(step, layer)
            n_l, h = plan.tokens(layer), plan.heads[layer]
            logs = blk.elementwise("tome.log_size", "log", b * n_l)
            scores = blk.t([b * h * n_l * n_l])
            bias = blk.t([b * h * n_l * n_l])
            blk.op("view", "tome.size_broadcast", {"note": "broadcast"}, [logs], [bias])
            blk.elementwise("tome.proportional_attention", "add", b * h * n_l * n_l,
                            ins=[scores, bias])
    plan.record(step, merging_layers=sorted(r_at),
                merged_per_layer=[r_at[layer][1] if layer in r_at else 0
                                  for layer in range(plan.num)],
                proportional_attention=prop, protected=protect)


def _bipartite_merge(blk, b: int, n: int, r: int, D: int, hk: int, dh: int) -> None:
    """The ops of one ``bipartite_soft_matching`` + ``merge_wavg`` over ``n`` tokens."""
    na, nb = (n + 1) // 2, n // 2
    keys = blk.t([b * hk * n * dh])
    metric = blk.reduce("tome.key_mean", "mean", b * hk * n * dh, b * n * dh, x=keys)
    norms = blk.reduce("tome.norms", "norm", b * n * dh, b * n, x=metric)
    xn = blk.elementwise("tome.normalize", "div", b * n * dh, ins=[metric, norms])
    a_set, b_set = blk.t([b, na, dh]), blk.t([b, dh, nb])
    blk.op("view", "tome.set_a", {"note": "slice ::2"}, [xn], [a_set])
    blk.op("view", "tome.set_b", {"note": "slice 1::2, transpose"}, [xn], [b_set])
    sim = blk.matmul("tome.similarity", batch=b, m=na, n=nb, k=dh, a=a_set, b=b_set)
    best = blk.reduce("tome.best_match", "max", b * na * nb, b * na, x=sim)
    _, order = blk.topk("tome.sort_edges", rows=b, n=na, k=na, x=best)
    blk.gather("tome.destinations", b * r, b * na, index=order, dtype="int64")
    x = blk.t([b * n * D])
    blk.elementwise("tome.size_weight", "mul", b * n * D, ins=[x, blk.t([b * n])])
    scatter_merge(blk, "tome", b, n, r, D)


def scatter_merge(blk, prefix: str, b: int, n: int, r: int, D: int) -> None:
    """The size-weighted merge of ``r`` source rows of ``n`` (width ``D``) into the rest.

    ToMe's ``merge_wavg`` and HoliTom's cluster means are the same machinery: the r
    source rows gathered (``gather`` r x D) and scatter-added into their destinations
    (``scatter_reduce`` with ``sum``: an ``elementwise add`` of r x D), the same for the
    sizes (width 1), the n - r survivors assembled (``gather``) and divided by their
    sizes (``elementwise div``, (n - r) x D): O(n D).
    """
    src = blk.gather(f"{prefix}.merge_sources", b * r * D, b * n * D)
    blk.elementwise(f"{prefix}.merge_scatter_add", "add", b * r * D,
                    ins=[src, blk.t([b * r * D])])
    size_src = blk.gather(f"{prefix}.size_sources", b * r, b * n)
    blk.elementwise(f"{prefix}.size_scatter_add", "add", b * r, ins=[size_src, blk.t([b * r])])
    blk.gather(f"{prefix}.size_select", b * (n - r), b * n)
    blk.elementwise(f"{prefix}.size_unweight", "div", b * (n - r) * D,
                    ins=[blk.t([b * (n - r) * D]), blk.t([b * (n - r)])])
