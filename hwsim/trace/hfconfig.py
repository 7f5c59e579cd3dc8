"""What a Hugging Face ``config.json`` says about a model, read without torch.

hwsim builds models from their configs (:mod:`hwsim.trace.zoo`), but much of
what the simulator needs is in the config itself and must be known without
torch: the phases a model runs (a decoder LM has a decode step, an encoder
does not), its headline shape for ``hwsim models``, and how many positions it
handles (the context limit behind a report's warning). This module reads those
from the plain dict, with the key names the ``transformers`` families use
(``num_hidden_layers`` / ``n_layer``, ``hidden_size`` / ``n_embd`` / ``d_model``,
...). A vision-language model keeps its language model in ``text_config``; the
headline is the language model's, with the vision tower's depth beside it.

Architecture kinds (from ``architectures[0]``, the class the checkpoint was
saved from):

``causal-lm``
    ``*ForCausalLM``, ``*LMHeadModel``: a decoder LM, built with
    ``AutoModelForCausalLM`` (LM head included); prefill and decode.
``vision-language``
    ``*ForConditionalGeneration`` with a ``vision_config``; prefill and decode.
    Building one needs an architecture hook (:data:`hwsim.trace.zoo.ARCHITECTURES`).
``encoder-decoder``
    ``*ForConditionalGeneration`` without one, or ``is_encoder_decoder``
    (T5, BART): not supported (a clear error).
``encoder``
    everything else (``BertModel``, ``*ForMaskedLM``, ``ViTModel``...): the base
    model, prefill only.

The **context limit** is ``max_position_embeddings`` (``n_positions``,
``seq_length``), raised by a RoPE scaling that extends it at inference:
``linear``, ``dynamic`` and ``yarn`` stretch the original positions by
``factor``, so the limit is ``max(max_position_embeddings,
original_max_position_embeddings x factor)`` (a Qwen2.5 config with
``rope_scaling: {type: yarn, factor: 4, original_max_position_embeddings:
32768}`` reaches 131,072). ``llama3`` and ``longrope`` scalings were trained
in, and their configs state the extended table itself: Llama-3.1's
``max_position_embeddings: 131072`` (8,192 pre-training positions, factor 8)
is its 128K.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

KINDS = ("causal-lm", "vision-language", "encoder-decoder", "encoder")

# RoPE scalings applied at inference to stretch the original positions by their
# factor (transformers' modeling_rope_utils: linear, dynamic NTK, YaRN). Llama 3's
# and LongRoPE's configs state the extended max_position_embeddings themselves.
EXTENDING_ROPE = ("linear", "dynamic", "yarn")

# Encoder model types, for a config that names no architecture.
ENCODER_TYPES = ("bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2",
                 "xlm-roberta", "mpnet", "vit", "deit", "clip_vision_model", "siglip_vision_model",
                 "dinov2", "modernbert")

_ALIASES = {
    "layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "hidden": ("hidden_size", "n_embd", "d_model", "dim"),
    "heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "ffn": ("intermediate_size", "n_inner", "ffn_dim", "d_ff", "hidden_dim"),
    "vocab": ("vocab_size",),
    "positions": ("max_position_embeddings", "n_positions", "seq_length", "max_sequence_length"),
    "experts": ("num_local_experts", "num_experts", "n_routed_experts"),
    "experts_per_token": ("num_experts_per_tok", "moe_topk", "top_k"),
}


def _first_int(cfg: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = cfg.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def text_config(cfg: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language model's config: ``text_config`` when the model nests one."""
    inner = cfg.get("text_config")
    return inner if isinstance(inner, Mapping) else cfg


def architecture(cfg: Mapping[str, Any]) -> str:
    """``architectures[0]`` (the class the checkpoint was saved from), or ``""``."""
    archs = cfg.get("architectures")
    return archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else ""


def kind(cfg: Mapping[str, Any]) -> str:
    """One of :data:`KINDS` (see the module docstring)."""
    arch = architecture(cfg)
    if cfg.get("is_encoder_decoder"):
        return "encoder-decoder"
    if arch.endswith(("ForCausalLM", "LMHeadModel")):
        return "causal-lm"
    if arch.endswith("ForConditionalGeneration"):
        return "vision-language" if "vision_config" in cfg else "encoder-decoder"
    if arch:
        return "encoder"
    return "encoder" if cfg.get("model_type") in ENCODER_TYPES else "causal-lm"


def phases(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """The phases a model of this config runs: decoders have a decode step."""
    k = kind(cfg)
    if k in ("causal-lm", "vision-language"):
        return ("prefill", "decode")
    if k == "encoder":
        return ("prefill",)
    return ()


def rope_scaling(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """The RoPE scaling (``rope_scaling``, or transformers 5's ``rope_parameters``)
    with its type under ``rope_type``; None without one (or the default type)."""
    cfg = text_config(cfg)
    rope = cfg.get("rope_scaling") or cfg.get("rope_parameters")
    if not isinstance(rope, Mapping):
        return None
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    if rope_type == "default":
        return None
    out = {"rope_type": rope_type}
    for key in ("factor", "original_max_position_embeddings"):
        if isinstance(rope.get(key), (int, float)) and not isinstance(rope.get(key), bool):
            out[key] = rope[key]
    return out


def context_limit(cfg: Mapping[str, Any]) -> tuple[int | None, str]:
    """(positions the model handles, why), from ``max_position_embeddings`` and any
    extending RoPE scaling; ``(None, reason)`` when the config states no limit."""
    text = text_config(cfg)
    base = _first_int(text, _ALIASES["positions"])
    rope = rope_scaling(cfg)
    if rope and rope["rope_type"] in EXTENDING_ROPE and rope.get("factor"):
        original = (rope.get("original_max_position_embeddings")
                    or _first_int(text, ("original_max_position_embeddings",)) or base)
        if original:
            scaled = int(original * rope["factor"])
            limit = max(base or 0, scaled)
            why = (f"max_position_embeddings {base:,} with {rope['rope_type']} RoPE scaling "
                   f"(factor {rope['factor']:g} over {original:,} positions)" if base
                   else f"{rope['rope_type']} RoPE scaling, factor {rope['factor']:g} over "
                        f"{original:,} positions")
            return limit, why
    if base is None:
        return None, "the config states no maximum position"
    if rope and rope.get("factor") and rope.get("original_max_position_embeddings"):
        return base, (f"max_position_embeddings {base:,} ({rope['rope_type']} RoPE scaling, "
                      f"factor {rope['factor']:g} over "
                      f"{rope['original_max_position_embeddings']:,} pre-training positions)")
    return base, f"max_position_embeddings {base:,}"


def window(cfg: Mapping[str, Any]) -> int:
    """The sliding window of the language model's attention (0: none).

    Mistral's ``sliding_window`` applies to every layer; Qwen2 keeps one in its
    config but applies it only with ``use_sliding_window: true``."""
    text = text_config(cfg)
    value = text.get("sliding_window")
    if text.get("use_sliding_window") is False:
        return 0
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def headline(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The shape a model card states: layers, heads / KV heads, hidden, FFN,
    experts, vocabulary, context. Missing facts are None."""
    text = text_config(cfg)
    hidden = _first_int(text, _ALIASES["hidden"])
    heads = _first_int(text, _ALIASES["heads"])
    kv_heads = _first_int(text, ("num_key_value_heads", "num_kv_heads", "n_kv_heads"))
    if kv_heads is None and text.get("multi_query") is True:
        kv_heads = 1
    head_dim = _first_int(text, ("head_dim",))
    if head_dim is None and hidden and heads:
        head_dim = hidden // heads
    ffn = _first_int(text, _ALIASES["ffn"])
    if ffn is None and hidden and text.get("model_type") == "gpt2":
        ffn = 4 * hidden  # GPT-2's n_inner: None means 4 x n_embd
    limit, why = context_limit(cfg)
    out: dict[str, Any] = {
        "architecture": architecture(cfg), "model_type": cfg.get("model_type", ""),
        "kind": kind(cfg), "layers": _first_int(text, _ALIASES["layers"]),
        "hidden": hidden, "heads": heads, "kv_heads": kv_heads if kv_heads else heads,
        "head_dim": head_dim, "ffn": ffn, "vocab": _first_int(text, _ALIASES["vocab"]),
        "experts": _first_int(text, _ALIASES["experts"]),
        "experts_per_token": _first_int(text, _ALIASES["experts_per_token"]),
        "max_positions": limit, "context_source": why, "window": window(cfg),
        "rope_scaling": rope_scaling(cfg),
    }
    vision = cfg.get("vision_config")
    if isinstance(vision, Mapping):
        out["vision_layers"] = _first_int(vision, ("num_hidden_layers", "depth", "num_layers"))
        out["vision_hidden"] = _first_int(vision, ("hidden_size", "embed_dim"))
    return out


def digest(cfg: Mapping[str, Any]) -> str:
    """A hash of the config's content (key order and formatting do not matter)."""
    text = json.dumps(cfg, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
