"""The pruning methods a workload may name, their parameters, and the checks on them.

Parameters that mean the same thing keep one name everywhere:

- ``keep``: a fraction in (0, 1], or a list with one fraction per layer of the
  pruned stack (the language model of a vision-language model);
- ``at_layer``: a layer index of that stack (0-based);
- ``segment``: a token segment of the workload (``visual`` for LLaVA);
- ``layers``: a list of layer indices of that stack.

:func:`check_step` runs when a workload is loaded (all problems are collected);
what needs the graph (the phase, the token counts) is checked when the pass
runs, with the same field names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..ir.dtypes import is_known
from ..spec import suggest


@dataclass(frozen=True)
class MethodSpec:
    """One pruning method: its parameters (name -> help) and what it acts on."""

    name: str
    params: Mapping[str, str]  # parameter -> help
    required: tuple[str, ...] = ()
    source: str = ""
    # tokens | heads | layers | kv | attention | precision | experts | width
    acts_on: str = "tokens"
    static: bool = False  # decided offline: no run-time machinery to cost
    one_of: tuple[str, ...] = ()  # at least one of these must be given
    summary: str = ""


_KEEP = "fraction kept in (0, 1], or a list with one fraction per layer"
_LAYER = "layer index (0-based, in the pruned stack) where the method acts"
_SEG = "token segment the method acts on (e.g. visual); default all tokens"
_LAYERS = "list of layer indices (0-based, in the pruned stack)"
_ITER = "iterations of the solver (a positive integer)"

METHODS: dict[str, MethodSpec] = {m.name: m for m in [
    MethodSpec("spatten",
               {"keep": _KEEP, "heads_keep": _KEEP, "schedule": "schedule file (keep list, JSON)",
                "scores": "attention-scores file of the workload's model (python -m "
                          "hwsim.trace.record_scores) to derive the schedule",
                "mass": "with scores: cumulative importance each layer keeps (default 0.9)",
                "value_keep": "local value pruning: fraction of V rows fetched per query"},
               source="SpAtten, HPCA 2021 (arXiv 2012.09852)",
               one_of=("keep", "schedule", "scores"),
               summary="cascade token pruning by accumulated attention; optional heads and "
                       "local value pruning"),
    MethodSpec("fastv", {"at_layer": _LAYER, "keep": _KEEP, "segment": _SEG},
               ("at_layer", "keep"), "FastV, ECCV 2024 (arXiv 2403.06764)",
               summary="after layer K, keep the segment's tokens the last query attends most"),
    MethodSpec("hawk", {"keep": _KEEP, "segment": _SEG}, ("keep",),
               "HAWK, CVPR 2026 (arXiv 2604.07812)",
               summary="before the language model, text-guided attention weighted by head "
                       "importance"),
    MethodSpec("fastervlm", {"keep": "fraction of the segment's visual tokens kept, in (0, 1] "
                                     "(the released int(): 0.1 of 576 keeps 57)",
                             "segment": "the visual segment (default visual)"},
               ("keep",), "FasterVLM (arXiv 2412.01818)",
               summary="before the language model, the vision encoder's [CLS] attention "
                       "ranks the visual tokens"),
    MethodSpec("divprune", {"keep": _KEEP, "segment": _SEG, "at_layer": _LAYER,
                            "algorithm": "released (default: the n x n similarity, then the "
                                         "greedy picks, O(n² d + k² n), as github.com/vbdi/"
                                         "divprune's DivPrune) or incremental (a running "
                                         "minimum, O(n k d))"},
               ("keep",), "DivPrune, CVPR 2025 (arXiv 2503.02175)",
               summary="greedy max-min diversity selection of the segment's tokens"),
    MethodSpec("topv", {"keep": _KEEP, "segment": _SEG, "at_layer": _LAYER, "iterations": _ITER},
               ("keep",), "TopV, CVPR 2025",
               summary="optimal-transport (Sinkhorn) token importance at layer K, once"),
    MethodSpec("lazyllm", {"keep": _KEEP, "layers": _LAYERS,
                           "revive": "over a generation: prompt tokens each decode step "
                                     "revives from the auxiliary cache at each pruning "
                                     "layer (an integer >= 0, default 0: every step "
                                     "attends to what the prefill computed plus the "
                                     "generated tokens, revives none)"}, ("keep",),
               "LazyLLM (arXiv 2407.14057)",
               summary="progressive top-k by the last token's attention, with an auxiliary cache"),
    MethodSpec("zero-tprune", {"keep": _KEEP, "layers": _LAYERS, "iterations": _ITER,
                               "similarity_share": "share of each pruning layer's removed "
                                                   "tokens that the similarity stage (S-stage) "
                                                   "removes, in [0, 1] (default 0.5; 0: the "
                                                   "PageRank stage alone)"},
               ("keep",), "Zero-TPrune, CVPR 2024 (arXiv 2305.17328)",
               summary="weighted PageRank over the attention graph of a ViT, then "
                       "similarity-based pruning of the survivors"),
    MethodSpec("tome", {"r": "tokens merged at each merging layer (ToMe's r, a positive "
                             "integer; its DeiT-S setting is 13)",
                        "layers": "layers (0-based) that run on r fewer tokens than the layer "
                                  "before (default every layer from 1)",
                        "protected": "leading tokens never merged (the class token; default "
                                     "1)",
                        "proportional_attention": "add log(size) to every attention logit "
                                                  "after the first merge (default true, "
                                                  "ToMe's prop_attn)"},
               ("r",), "ToMe, ICLR 2023 (arXiv 2210.09461)",
               summary="bipartite soft matching in a ViT: r tokens per layer averaged into "
                       "their most similar ones"),
    MethodSpec("holitom", {"keep": "fraction of the video's visual tokens that reach the "
                                   "language model, in (0, 1] (RETAIN_RATIO; default 0.1, "
                                   "holitom/llava_arch.py)",
                           "segment": "the visual segment (default visual)",
                           "window": "frames per temporal window (a positive integer; the "
                                     "video decides at run time: default 4, an assumption)",
                           "static": "share of a window's token positions that stay similar "
                                     "across its frames and are averaged into one, in [0, 1] "
                                     "(the video decides: default 0.5, an assumption)",
                           "contextual": "share of the kept dynamic tokens merged by "
                                         "density-peak clustering instead of chosen by "
                                         "attention, in [0, 1] (the code's D, default 0)",
                           "k": "neighbours of the clustering's density (the code's K, "
                                "default 7)"},
               (), "HoliTom, NeurIPS 2025 (arXiv 2505.21334)",
               summary="a video's tokens merged before the language model: static tokens "
                       "across frame windows, then per frame by attention and clustering"),
    MethodSpec("spatten-heads", {"keep": _KEEP}, ("keep",), "SpAtten cascade head pruning",
               acts_on="heads", summary="cascade head pruning by accumulated head magnitude"),
    MethodSpec("heads", {"keep": _KEEP, "layers": _LAYERS}, ("keep",),
               "static head removal (AMP, SHRP)", acts_on="heads", static=True,
               summary="heads removed offline: smaller q/k/v/o projections"),
    MethodSpec("flap", {"keep": "fraction of each layer's attention heads and FFN channels "
                                "kept, in (0, 1], or a list with one per layer (FLAP's 20 % "
                                "pruning ratio: 0.8)",
                        "heads_keep": "fraction of the heads kept (default keep)",
                        "ffn_keep": "fraction of the FFN channels kept (default keep)",
                        "align": "FFN channels kept rounded down to a multiple of this "
                                 "(default 1; 8 keeps tensor-core shapes)"},
               (), "FLAP, AAAI 2024 (arXiv 2312.11983)", acts_on="width",
               one_of=("keep", "heads_keep", "ffn_keep"),
               summary="structured width pruning: heads and FFN channels removed offline, "
                       "a compensating bias added to the output projections"),
    MethodSpec("layer-drop", {"layers": _LAYERS, "keep": _KEEP}, (),
               "ShortGPT (arXiv 2403.03853), E3-Pruner", acts_on="layers", static=True,
               one_of=("layers", "keep"), summary="whole transformer blocks removed offline"),
    MethodSpec("h2o", {"keep": _KEEP, "tokens": "KV budget in tokens (per key/value head)",
                       "per_head": "each key/value head keeps its own tokens (default true)",
                       "group_score": "grouped-query attention: score a key/value head by the "
                                      "first query head of its group (first, default, as "
                                      "H2O's Llama-3 port) or the group's sum (sum)",
                       "layers": _LAYERS},
               (), "H2O, NeurIPS 2023 (arXiv 2306.14048)", acts_on="kv",
               one_of=("keep", "tokens"),
               summary="heavy-hitter KV cache with accumulated-attention eviction (decode; "
                       "a prefill costs the selection at the prompt's end)"),
    MethodSpec("kvcrush", {"keep": _KEEP, "tokens": "KV budget in tokens", "layers": _LAYERS},
               (), "KVCrush (arXiv 2503.00022)", acts_on="kv", one_of=("keep", "tokens"),
               summary="decode: KV budget with binary head-signature grouping"),
    MethodSpec("streamingllm", {"window": "recent tokens the cache keeps (besides the sinks)",
                                "sinks": "initial tokens always kept (attention sinks; "
                                         "default 4, the paper's)",
                                "layers": _LAYERS},
               ("window",), "StreamingLLM, ICLR 2024 (arXiv 2309.17453)", acts_on="kv",
               summary="decode: attention sinks + a window of recent tokens; the cache's keys "
                       "re-rotated every step"),
    MethodSpec("snapkv", {"tokens": "capacity in tokens the prompt's cache keeps (the "
                                    "observation window included)",
                          "keep": "capacity as a fraction of the prompt in (0, 1]",
                          "window": "observation window: the last prompt queries that vote "
                                    "(default 64, the released SnapKVCluster's)",
                          "kernel": "pooling kernel over the votes (default 5)",
                          "layers": _LAYERS},
               (), "SnapKV, NeurIPS 2024 (arXiv 2404.14469)", acts_on="kv",
               one_of=("tokens", "keep"),
               summary="prefill's end: the observation window's votes select the prompt's "
                       "cache once"),
    MethodSpec("mustafar", {"keep": "fraction of each cached key and value row's elements "
                                    "kept by magnitude, in (0, 1] (default 0.3: Mustafar's "
                                    "70 % sparsity, the released kernel benchmark's)",
                            "keep_keys": "the keys' fraction (default keep)",
                            "keep_values": "the values' fraction (default keep)",
                            "residual": "recent tokens kept dense (default 32, the released "
                                        "residual_length; up to 256 more wait to be "
                                        "compressed together)",
                            "layers": _LAYERS},
               (), "Mustafar, NeurIPS 2025 (arXiv 2505.22913)", acts_on="kv",
               summary="decode: per-token magnitude pruning of keys and values, the cache "
                       "read bitmap-compressed"),
    MethodSpec("topk-attention", {"k": "keys kept per query", "keep": _KEEP,
                                  "layers": _LAYERS},
               (), "top-k attention (Gupta et al. 2021, arXiv 2106.06899)", acts_on="attention",
               one_of=("k", "keep"), summary="each query attends to its k best keys"),
    MethodSpec("hip", {"k": "keys kept per query block", "keep": _KEEP,
                       "block": "queries sharing one key selection (default 32)",
                       "layers": _LAYERS},
               (), "HiP attention (arXiv 2406.09827)", acts_on="attention", one_of=("k", "keep"),
               summary="hierarchical top-k key selection, O(T log T)"),
    MethodSpec("minference", {"vertical": "vertical lines (keys every query attends) per head "
                                          "(default 1000, the released fallback)",
                               "slash": "slash lines (diagonals) per head (default 6096)",
                               "layers": _LAYERS},
               (), "MInference, NeurIPS 2024 (arXiv 2407.02490)", acts_on="attention",
               summary="prefill: vertical-slash sparse attention, estimated online from the "
                       "last 64 queries"),
    MethodSpec("deltallm", {"window": "tokens of the local window each query attends to "
                                      "fully (default 64: an assumption, the abstract "
                                      "states no size)",
                            "sparsity": "share of each query delta's components below the "
                                        "threshold, not propagated, in [0, 1) (default: "
                                        "0.6 for a prefill, 0.57 for a decode step, the "
                                        "abstract's attention sparsity)",
                            "layers": _LAYERS},
               (), "DeltaLLM (Qi et al., arXiv 2507.19608)", acts_on="attention",
               summary="edge prefill and decode: full attention in a local window, outside "
                       "it each score row updated from the previous by a thresholded delta"),
    MethodSpec("quant", {"tensors": "tensor class -> bits or dtype, e.g. {key: 6, value: 6}",
                         "refetch": "key rows re-fetched with their LSBs: a fraction, or auto "
                                    "(the target decides per row from the probabilities, "
                                    "against its re-quantization threshold)",
                         "lsb_bits": "bits of the LSB re-fetch (default 4)"},
               ("tensors",), "SpAtten progressive quantization", acts_on="precision",
               summary="per-tensor bit widths of queries, keys and values"),
    MethodSpec("experts", {"drop": "experts removed from each MoE layer (a positive integer)",
                           "keep": "fraction of each MoE layer's experts kept in (0, 1], or a "
                                   "list with one fraction per layer",
                           "by": "which experts go with drop or keep: frequency (the least "
                                 "routed under the workload's routing; default)",
                           "experts": "the experts dropped per layer: {layer: [expert ids]}",
                           "top_k": "experts each token runs (reduced top-k), or one per layer",
                           "layers": _LAYERS},
               (), "Lu et al., ACL 2024 (arXiv 2402.14800)", acts_on="experts", static=True,
               one_of=("drop", "keep", "experts", "top_k"),
               summary="mixture of experts: experts removed offline, fewer experts per token"),
]}

TENSOR_CLASSES = ("query", "key", "value", "kv")
MAX_REVIVE = 1 << 20  # LazyLLM: tokens revived per step and pruning layer (past any context)
GROUP_SCORES = ("first", "sum")  # how H2O scores a KV head from its group of query heads
DIVPRUNE_ALGORITHMS = ("released", "incremental")  # how DivPrune's greedy loop is written


def check_step(step: Any, index: int, segments: Mapping[str, Any], num_layers: int | None,
               add) -> None:
    """Check one pruning step; report problems through ``add(field, message)``."""
    where = f"pruning.{index}"
    if not isinstance(step, Mapping):
        add(where, "expected a mapping like {method: fastv, at_layer: 2, keep: 0.5}")
        return
    method = step.get("method")
    if method is None:
        add(f"{where}.method", f"missing (one of: {', '.join(METHODS)})")
        return
    if not isinstance(method, str):
        add(f"{where}.method", f"expected a method name (one of: {', '.join(METHODS)}), got "
            f"{method!r}")
        return
    spec = METHODS.get(method)
    if spec is None:
        add(f"{where}.method",
            f"unknown pruning method {method!r}{suggest(str(method), METHODS)} "
            f"(known: {', '.join(METHODS)})")
        return
    for key in step:
        if not isinstance(key, str):
            add(where, f"a parameter name must be text, got {key!r}")
        elif key != "method" and key not in spec.params:
            add(f"{where}.{key}", f"unknown parameter of {method}{suggest(str(key), spec.params)}"
                f" (takes: {', '.join(spec.params)})")
        elif step[key] is None:
            add(f"{where}.{key}", "expected a value, got null (leave the parameter out for its "
                "default)")
    for key in spec.required:
        if key not in step:
            add(f"{where}.{key}", f"missing: {spec.params[key]}")
    if spec.one_of and not any(k in step for k in spec.one_of):
        add(f"{where}.{spec.one_of[0]}", f"missing: {method} needs one of "
            f"{', '.join(spec.one_of)}")
    for key in ("keep", "heads_keep", "ffn_keep"):
        if step.get(key) is not None:
            _check_keep(step[key], f"{where}.{key}", num_layers, add)
    for key in ("value_keep", "mass"):
        v = step.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                              or not 0 < v <= 1):
            add(f"{where}.{key}", f"must be a fraction in (0, 1], got {v!r}")
    for key in ("static", "contextual"):
        v = step.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                              or not 0 <= v <= 1):
            add(f"{where}.{key}", f"must be a fraction in [0, 1], got {v!r}")
    v = step.get("sparsity")
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                          or not 0 <= v < 1):
        add(f"{where}.sparsity", f"must be a fraction in [0, 1), got {v!r}")
    v = step.get("similarity_share")
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                          or not 0 <= v <= 1):
        add(f"{where}.similarity_share", f"must be a fraction in [0, 1], got {v!r}")
    v = step.get("refetch")
    if v is not None and v != "auto" and (isinstance(v, bool) or not isinstance(v, (int, float))
                                          or not 0 <= v <= 1):
        add(f"{where}.refetch", f"must be a fraction in [0, 1] or auto, got {v!r}")
    for key in ("tokens", "k", "block", "iterations", "lsb_bits", "window", "kernel", "r",
                "align", "vertical", "slash"):
        v = step.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            add(f"{where}.{key}", f"must be a positive integer, got {v!r}")
    for key in ("keep_keys", "keep_values"):
        v = step.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                              or not 0 < v <= 1):
            add(f"{where}.{key}", f"must be a fraction in (0, 1], got {v!r}")
    for key in ("sinks", "protected", "residual"):
        v = step.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            add(f"{where}.{key}", f"must be an integer >= 0, got {v!r}")
    v = step.get("revive")
    if v is not None and (isinstance(v, bool) or not isinstance(v, int)
                          or not 0 <= v <= MAX_REVIVE):
        add(f"{where}.revive", f"must be an integer in 0..{MAX_REVIVE:,} (tokens revived per "
            f"decode step at each pruning layer), got {v!r}")
    for key in ("per_head", "proportional_attention"):
        if key in step and not isinstance(step[key], bool):
            add(f"{where}.{key}", f"expected true or false, got {step[key]!r}")
    if "group_score" in step and step["group_score"] not in GROUP_SCORES:
        add(f"{where}.group_score", f"expected one of {', '.join(GROUP_SCORES)}, got "
            f"{step['group_score']!r}")
    for key in ("schedule", "scores"):
        if key in step and not (isinstance(step[key], str) and step[key]):
            add(f"{where}.{key}", f"expected a file path, got {step[key]!r}")
    if "algorithm" in step and step["algorithm"] not in DIVPRUNE_ALGORITHMS:
        add(f"{where}.algorithm", f"expected one of {', '.join(DIVPRUNE_ALGORITHMS)}, got "
            f"{step['algorithm']!r}")
    if "tensors" in step:
        _check_tensors(step["tensors"], f"{where}.tensors", add)
    at = step.get("at_layer")
    if at is not None:
        if isinstance(at, bool) or not isinstance(at, int) or at < 0:
            add(f"{where}.at_layer", f"must be a layer index >= 0, got {at!r}")
        elif num_layers is not None and at >= num_layers:
            add(f"{where}.at_layer", f"{at} is past the model's last layer ({num_layers - 1})")
    layers = step.get("layers")
    if layers is not None:
        if not isinstance(layers, list) or not all(
                isinstance(x, int) and not isinstance(x, bool) for x in layers):
            add(f"{where}.layers", f"must be a list of layer indices, got {layers!r}")
        elif num_layers is not None and any(x < 0 or x >= num_layers for x in layers):
            add(f"{where}.layers", f"has a layer outside 0..{num_layers - 1}: {layers}")
        elif len(set(layers)) != len(layers):
            add(f"{where}.layers", f"lists a layer twice: {layers}")
    if method == "experts":
        _check_experts(step, where, num_layers, add)
    seg = step.get("segment")
    if seg is not None and seg not in segments:
        add(f"{where}.segment", f"unknown segment {seg!r} (workload has: "
            f"{', '.join(segments) or 'none'})")


def _check_experts(step: Mapping[str, Any], where: str, num_layers: int | None, add) -> None:
    """The ``experts`` method's own parameters (what needs the graph is checked later)."""
    v = step.get("drop")
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        add(f"{where}.drop", f"must be a positive integer, got {v!r}")
    if "by" in step and step["by"] != "frequency":
        add(f"{where}.by", f"expected frequency, got {step['by']!r}")
    given = [k for k in ("drop", "keep", "experts") if step.get(k) is not None]
    if len(given) > 1:
        add(f"{where}.{given[1]}", f"give one of drop, keep or experts, not "
            f"{' and '.join(given)}")
    ex = step.get("experts")
    if ex is not None:
        ok = isinstance(ex, Mapping) and ex and all(
            (isinstance(k, int) and not isinstance(k, bool) and k >= 0
             or isinstance(k, str) and k.isdigit())
            and isinstance(ids, list) and ids and len(set(ids)) == len(ids)
            and all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in ids)
            for k, ids in ex.items())
        if not ok:
            add(f"{where}.experts", f"expected {{layer: [distinct expert ids]}}, got {ex!r}")
    k = step.get("top_k")
    if k is not None:
        values = k if isinstance(k, list) else [k]
        if not values or any(isinstance(x, bool) or not isinstance(x, int) or x < 1
                             for x in values):
            add(f"{where}.top_k", f"must be a positive integer or a list of them, got {k!r}")
        elif isinstance(k, list) and num_layers is not None and len(k) != num_layers:
            add(f"{where}.top_k", f"has {len(k)} entries, the model has {num_layers} layers")


def _check_keep(keep: Any, field: str, num_layers: int | None, add) -> None:
    values = keep if isinstance(keep, list) else [keep]
    if not values:
        add(field, "must be a fraction in (0, 1] or a non-empty list of them")
        return
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
            add(field, f"must be a fraction in (0, 1] or a list of them, got {keep!r}")
            return
    if isinstance(keep, list) and num_layers is not None and len(keep) != num_layers:
        add(field, f"has {len(keep)} entries, the model has {num_layers} layers")


def _check_tensors(tensors: Any, field: str, add) -> None:
    if not isinstance(tensors, Mapping) or not tensors:
        add(field, f"expected a mapping like {{key: 6, value: 6}}, got {tensors!r}")
        return
    for name, width in tensors.items():
        if name not in TENSOR_CLASSES:
            add(f"{field}.{name}", f"unknown tensor class{suggest(str(name), TENSOR_CLASSES)} "
                f"(known: {', '.join(TENSOR_CLASSES)})")
        elif isinstance(width, bool) or not (
                (isinstance(width, int) and 1 <= width <= 32)
                or (isinstance(width, str) and is_known(width))):
            add(f"{field}.{name}", f"expected bits (1..32) or a dtype name, got {width!r}")


def tensor_dtype(width: int | str) -> str:
    """``6`` -> ``"fix6"`` (fixed point, as SpAtten stores keys); a dtype name as is."""
    return width if isinstance(width, str) else f"fix{width}"
