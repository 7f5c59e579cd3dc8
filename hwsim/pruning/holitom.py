"""HoliTom: merging a video's visual tokens, across frames and within them, before the LLM.

HoliTom (Shao, Zhang, Zhang, Wang, Zhang, Ji and Zhang, "HoliTom: Holistic Token Merging
for Fast Video Large Language Models", NeurIPS 2025, arXiv 2505.21334) shrinks the
visual tokens of a video LLM (LLaVA-OneVision: F frames of m = 196 pooled tokens, width
D = the language model's hidden size after the projector) by merging, not dropping:

- **temporal merging**: consecutive frames are cut into windows; inside a window, a
  token position whose features stay similar (cosine > tau) across all the window's
  frames is *static* and its w copies are averaged into one;
- **spatial merging** within each window: the remaining (dynamic) tokens of each frame
  keep the ones the vision tower attends to most (dominant) and, optionally, merge the
  rest into density-peak clusters (contextual); the static tokens are merged into
  density-peak clusters.

The released code (github.com/cokeshao/HoliTom, ``holitom/llava_arch.py``, class
``LlavaMetaForCausalLM_holitom``) does, for a video of F frames, tower tokens t = 729
(27 x 27) per frame with h heads of width d_h:

1. the attention signal (``encode_images_multi``; the SigLIP tower's
   ``attentions[-1].mean(dim=1).mean(dim=1)`` in its ``siglip_encoder.py``): the last
   tower layer's probabilities averaged over heads and queries. A fused attention never
   writes them, so they are recomputed: the scores (``matmul`` F h x t x t x d_h), the
   ``softmax`` and the mean (``reduce`` F h t² -> F t); then ``get_2dPool`` of the
   attention map to m per frame (``reduce`` F t -> F m): O(F h t² d_h);
2. the frames' similarity (``prepare_inputs_labels_for_multimodal``): the pooled
   features normalized (``reduce norm``, ``elementwise div``: F m D) and the cosine
   similarity of each frame with the next (``elementwise mul`` and ``reduce sum``,
   (F - 1) m D): O(F m D);
3. the windows (``select_static_windows``): the similarities thresholded by tau
   (``elementwise compare``, (F - 1) m), the cumulative products of its loop over the
   window starts (``elementwise mul``, F (F - 1) / 2 · m), the static count of every
   window (``reduce sum`` F² m -> F², times the window lengths) and the dynamic
   programme over windows (``elementwise max``, F · min(F, max_window_size)): O(F² m);
4. per window of w >= 2 frames (``get_static_dynamic_features``): the static mask
   (``reduce all`` (w - 1) m -> m), the s static positions of the w frames gathered and
   averaged (``gather`` and ``reduce mean``, w s D), the dynamic ones gathered
   (``gather`` w (m - s) D and their attention);
5. spatial merging (``holitom``): per frame of the window, ``merge_tokens_by_attention_
   density``: the ``topk`` of the dominant tokens by the attention and their ``gather``;
   the contextual ones (a share D of the kept, 0 by default) and the window's static
   tokens by ``cluster_dpc_knn`` + ``merge_tokens_by_clustering``: over n tokens into c
   clusters, the distance matrix (``torch.cdist``: ``matmul`` n x n x D and an
   ``elementwise sqrt``), the k nearest (``topk`` k of n per row, K = 7), the density
   (``reduce mean`` n k, ``elementwise exp``), the parent distance (``elementwise
   compare`` and ``mul`` n², ``reduce max`` and ``reduce min`` n²), the score and the c
   centres (``elementwise mul``, ``topk`` c of n), the members' distance to the centres
   (``gather`` (n - c) n), their assignment (``reduce argmin`` (n - c) c) and the merge
   (:func:`hwsim.pruning.merging.scatter_merge`, ToMe's size-weighted scatter-add: the
   default ``NO_BETA=1`` averages each centre with its members): O(n² D) per clustering.

So HoliTom costs O(F h t² d_h + F m D + F² m + Σ_windows s² D): the tower attention
recomputation and, with many static tokens in long windows, the static clustering's
distance matrix dominate. The kept count follows the code: with R tokens removed by
temporal merging (s (w - 1) per window), the spatial ratio becomes ``min(keep / ((F m -
R) / (F m)), 1)`` so that about ``keep`` of the F m tokens reach the language model
(the per-frame ``ceil`` and the clusters' ``round`` as released), and the one
``image_newline`` after the last frame is kept.

**What the simulator cannot know.** Which frames form windows and how many tokens are
static depends on the video (the threshold tau picks them at run time). ``window``
(frames per window) and ``static`` (the static share of a window's token positions)
describe the video; the windows cut the F frames in order, the last one holding the
remainder. The inner-LLM merging of the released code (``HOLITOM_k``/``HOLITOM_r``,
``modeling_qwen2.py``) is not modelled: ``holitom/main.py`` runs without it unless
both are set ("HoliTom (w/o M)").
"""

from __future__ import annotations

import math

from .common import scalar_keep
from .merging import scatter_merge
from .plan import Plan, Step, round_half_up

HOLITOM_KEEP = 0.1  # RETAIN_RATIO's default, holitom/llava_arch.py
HOLITOM_K = 7  # K's default (neighbours of the DPC-KNN density)
HOLITOM_CONTEXTUAL = 0.0  # D's default: every kept dynamic token is dominant
HOLITOM_MAX_WINDOW = 1024  # MAX_WINDOW_SIZE's default
# not from the code (they describe the video, chosen at run time by the tau threshold):
HOLITOM_WINDOW = 4
HOLITOM_STATIC = 0.5


def holitom(plan: Plan, step: Step) -> None:
    """HoliTom's temporal and spatial merging of a video's visual segment, before layer 0."""
    if plan.phase != "prefill":
        raise step.error("", "HoliTom merges a video's visual tokens in the prefill; this "
                         "workload is a decode step")
    v = plan.vision
    if not v or not v.get("frames"):
        raise step.error("", "HoliTom merges the frames of a video: this workload has no "
                         "video (give a video-language model such as llava-onevision-7b "
                         "and frames:)")
    seg = step.get("segment", "visual")
    if seg not in plan.buckets:
        raise step.error("segment", f"unknown segment {seg!r} (graph has: "
                         f"{', '.join(b for b in plan.buckets if b != 'other') or 'none'})")
    keep = scalar_keep(step) if step.get("keep") is not None else HOLITOM_KEEP
    F = int(v["frames"])
    w = int(step.get("window", HOLITOM_WINDOW))
    if w > F:
        raise step.error("window", f"{w} frames per window, but the video has {F} frames")
    static = float(step.get("static", HOLITOM_STATIC))
    ctx = float(step.get("contextual", HOLITOM_CONTEXTUAL))
    K = int(step.get("k", HOLITOM_K))
    first = plan.alive()[0]
    n_seg = plan.tokens(first, seg)
    b = plan.batch
    m, extra = divmod(n_seg - 1, F)  # F frames of m tokens and the one image_newline
    if m < 1 or extra:
        raise step.error("segment", f"segment {seg!r} has {n_seg} tokens, not {F} frames of "
                         f"equal size and one newline")
    D = plan.hidden
    windows = [w] * (F // w) + ([F % w] if F % w else [])
    s = round_half_up(static * m)
    reduced = sum(s * (wl - 1) for wl in windows if wl > 1)
    total = F * m
    # a window of w frames leaves at least its s static tokens: total - reduced >= 1
    ratio = min(keep / ((total - reduced) / total), 1.0)
    blk = plan.block(step, first)
    # 1. the attention signal: the tower's last layer, mean over heads and queries
    bv, h, dh, t = b * F, v["heads"], v["head_dim"], v["tokens"]
    sc = blk.matmul("holitom.attn_scores", batch=bv * h, m=t, n=t, k=dh)
    p = blk.softmax("holitom.attn_softmax", rows=bv * h * t, cols=t, x=sc)
    a = blk.reduce("holitom.attn_mean", "mean", bv * h * t * t, bv * t, x=p)
    blk.reduce("holitom.attn_pool", "mean", bv * t, bv * m, x=a)
    # 2. consecutive frames' cosine similarity
    x = blk.t([bv * m * D])
    norms = blk.reduce("holitom.norms", "norm", bv * m * D, bv * m, x=x)
    xn = blk.elementwise("holitom.normalize", "div", bv * m * D, ins=[x, norms])
    if F > 1:
        prod = blk.elementwise("holitom.frame_products", "mul", b * (F - 1) * m * D,
                               ins=[xn, xn])
        sim = blk.reduce("holitom.frame_similarity", "sum", b * (F - 1) * m * D,
                         b * (F - 1) * m, x=prod)
        # 3. select_static_windows
        over = blk.elementwise("holitom.threshold", "compare", b * (F - 1) * m, ins=[sim])
        blk.elementwise("holitom.cumprod", "mul", b * F * (F - 1) // 2 * m, ins=[over])
        counts = blk.reduce("holitom.window_counts", "sum", b * F * F * m, b * F * F)
        blk.elementwise("holitom.window_lengths", "mul", b * F * F, ins=[counts])
        blk.elementwise("holitom.window_dp", "max", b * F * min(F, HOLITOM_MAX_WINDOW))
    kept = 0
    for wl in windows:
        m_dyn = m
        if wl > 1 and s:
            # 4. static and dynamic tokens of the window
            blk.reduce("holitom.static_mask", "all", b * (wl - 1) * m, b * m)
            st = blk.gather("holitom.static_gather", b * wl * s * D, b * wl * m * D)
            blk.reduce("holitom.static_mean", "mean", b * wl * s * D, b * s * D, x=st)
            m_dyn = m - s
            if m_dyn:
                blk.gather("holitom.dynamic_gather", b * wl * m_dyn * D, b * wl * m * D)
                blk.gather("holitom.dynamic_attn_gather", b * wl * m_dyn, b * wl * m)
            cs = round(s * ratio)  # merge_tokens_by_density's round()
            if cs > 0:
                _dpc_knn_merge(blk, "holitom.static", b, s, cs, D, min(K, cs))
            kept += cs
        # 5. per frame: dominant tokens by attention, contextual ones clustered
        c = math.ceil(m_dyn * ratio)
        dominant = round(c * (1 - ctx))
        contextual = c - dominant
        rows = b * wl
        if dominant > 0:
            _, idx = blk.topk("holitom.dominant_topk", rows=rows, n=m_dyn, k=dominant)
            blk.gather("holitom.dominant_select", rows * dominant * D, rows * m_dyn * D,
                       index=idx)
        if contextual > 0:
            n_f = m_dyn - dominant
            blk.gather("holitom.contextual_filter", rows * n_f * D, rows * m_dyn * D)
            _dpc_knn_merge(blk, "holitom.contextual", rows, n_f, contextual, D,
                           min(K, contextual))
        kept += wl * c
    kept_seg = kept + (n_seg - total)
    plan.scale_tokens(step, {layer: kept_seg / n_seg for layer in range(plan.num)}, seg)
    plan.record(step, selected=f"{plan.tokens(first, seg)} of {n_seg}", frames=F,
                windows=windows, static_per_window=s if F > 1 else 0,
                temporally_merged=reduced, spatial_ratio=round(ratio, 6),
                vision_layer=v["first"] + v["num"] - 1, segment=seg)


def _dpc_knn_merge(blk, prefix: str, b: int, n: int, c: int, D: int, k: int) -> None:
    """``cluster_dpc_knn`` then ``merge_tokens_by_clustering``: n tokens into c clusters."""
    x = blk.t([b, n, D])
    xt = blk.t([b, D, n])
    blk.op("view", f"{prefix}.transpose", {"note": "transpose"}, [x], [xt])
    dot = blk.matmul(f"{prefix}.cdist", batch=b, m=n, n=n, k=D, a=x, b=xt)
    dist = blk.elementwise(f"{prefix}.cdist_sqrt", "sqrt", b * n * n, ins=[dot])
    near, _ = blk.topk(f"{prefix}.knn", rows=b * n, n=n, k=k, x=dist)
    dens = blk.reduce(f"{prefix}.density", "mean", b * n * k, b * n, x=near)
    dens = blk.elementwise(f"{prefix}.density_exp", "exp", b * n, ins=[dens])
    mask = blk.elementwise(f"{prefix}.parent_mask", "compare", b * n * n, ins=[dens])
    blk.reduce(f"{prefix}.dist_max", "max", b * n * n, b, x=dist)
    masked = blk.elementwise(f"{prefix}.parent_masked", "fma", b * n * n, ins=[dist, mask])
    parent = blk.reduce(f"{prefix}.parent_dist", "min", b * n * n, b * n, x=masked)
    score = blk.elementwise(f"{prefix}.score", "mul", b * n, ins=[parent, dens])
    blk.topk(f"{prefix}.centres", rows=b, n=n, k=c, x=score)
    if n > c:
        rows = blk.gather(f"{prefix}.member_rows", b * (n - c) * n, b * n * n)
        d = blk.t([b * (n - c) * c])
        blk.op("gather", f"{prefix}.centre_distances", {"elements": b * (n - c) * c},
               [rows, blk.t([b * c], "int64")], [d])
        blk.reduce(f"{prefix}.assign", "argmin", b * (n - c) * c, b * (n - c), x=d)
        scatter_merge(blk, prefix, b, n, n - c, D)
