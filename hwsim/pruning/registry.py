"""The pruning methods a workload may name, and the parameters of each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..spec import suggest


@dataclass(frozen=True)
class MethodSpec:
    name: str
    params: Mapping[str, str]  # parameter -> help
    required: tuple[str, ...] = ()
    source: str = ""


_KEEP = "fraction kept in (0, 1], or a list with one fraction per layer"
_LAYER = "layer index (0-based) after which the method acts"
_SEG = "token segment the method acts on (e.g. visual); default all tokens"
_LAYERS = "list of layer indices"

METHODS: dict[str, MethodSpec] = {m.name: m for m in [
    MethodSpec("spatten", {"keep": _KEEP, "heads_keep": _KEEP, "schedule": "path of a schedule",
                           "value_keep": "local value pruning: fraction of V rows kept"},
               source="SpAtten, HPCA 2021"),
    MethodSpec("fastv", {"at_layer": _LAYER, "keep": _KEEP, "segment": _SEG},
               ("at_layer", "keep"), "FastV, ECCV 2024"),
    MethodSpec("hawk", {"keep": _KEEP, "segment": _SEG}, ("keep",), "HAWK"),
    MethodSpec("divprune", {"keep": _KEEP, "segment": _SEG, "at_layer": _LAYER}, ("keep",),
               "DivPrune, CVPR 2025"),
    MethodSpec("topv", {"keep": _KEEP, "segment": _SEG, "at_layer": _LAYER,
                        "iterations": "Sinkhorn iterations"}, ("keep",), "TopV, CVPR 2025"),
    MethodSpec("lazyllm", {"keep": _KEEP, "layers": _LAYERS}, ("keep",), "LazyLLM"),
    MethodSpec("zero-tprune", {"keep": _KEEP, "layers": _LAYERS,
                               "iterations": "PageRank iterations"}, ("keep",), "Zero-TPrune"),
    MethodSpec("spatten-heads", {"keep": _KEEP}, ("keep",), "SpAtten cascade head pruning"),
    MethodSpec("heads", {"keep": _KEEP, "layers": _LAYERS}, ("keep",), "static head removal"),
    MethodSpec("layer-drop", {"layers": _LAYERS, "keep": _KEEP}, (), "ShortGPT / E3-Pruner"),
    MethodSpec("h2o", {"keep": _KEEP, "tokens": "KV budget in tokens",
                       "per_head": "budget per head"}, (), "H2O"),
    MethodSpec("kvcrush", {"keep": _KEEP, "tokens": "KV budget in tokens"}, (), "KVCrush"),
    MethodSpec("topk-attention", {"k": "keys kept per query", "keep": _KEEP}, (),
               "top-k sparse attention"),
    MethodSpec("hip", {"k": "keys kept per query", "block": "block size"}, (), "HiP attention"),
    MethodSpec("quant", {"tensors": "tensor class -> bits, e.g. {key: 6, value: 6}"},
               ("tensors",), "per-tensor bit widths"),
]}


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
    spec = METHODS.get(method)
    if spec is None:
        add(f"{where}.method",
            f"unknown pruning method {method!r}{suggest(str(method), METHODS)} "
            f"(known: {', '.join(METHODS)})")
        return
    for key in step:
        if key != "method" and key not in spec.params:
            add(f"{where}.{key}", f"unknown parameter of {method}{suggest(str(key), spec.params)}"
                f" (takes: {', '.join(spec.params)})")
    for key in spec.required:
        if key not in step:
            add(f"{where}.{key}", f"missing: {spec.params[key]}")
    keep = step.get("keep")
    if keep is not None:
        values = keep if isinstance(keep, list) else [keep]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
                add(f"{where}.keep", f"must be a fraction in (0, 1] or a list of them, got {keep!r}")
                break
        if isinstance(keep, list) and num_layers is not None and len(keep) != num_layers:
            add(f"{where}.keep", f"has {len(keep)} entries, the model has {num_layers} layers")
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
    seg = step.get("segment")
    if seg is not None and seg not in segments:
        add(f"{where}.segment", f"unknown segment {seg!r} (workload has: "
            f"{', '.join(segments) or 'none'})")
