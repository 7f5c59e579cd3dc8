"""The model zoo by name, without torch: what exists, which phases, which sizes.

This module is plain data so that the core (workload loading, the CLI) can
validate ``model:`` names and phases and find shipped templates without
importing torch. :mod:`hwsim.trace.zoo` builds the models from the same
entries.

Each entry gives the model's ``family`` (which ``transformers`` class builds
it), the ``phases`` it can be traced in, its published dimensions (``dims``,
the numbers in the papers and model cards), and ``min_seq_len``: the smallest
``seq_len`` a prefill accepts (LLaVA's prompt always holds its 35-token text
prefix and 576 image tokens; a ViT needs at least one patch after its CLS token)
and, where the model cannot go further, ``max_seq_len`` (BERT's position ids
are a 512-entry buffer). GPT-2 traces beyond its 1024 learned positions as if
its position table were longer (:mod:`hwsim.trace.zoo`).

Models of the ``hf`` family (Llama-3.1, Llama-3.2, Mistral, Qwen2.5, Mixtral) are built
from a published ``config.json`` shipped in :mod:`hwsim.trace.configs`
(``"config": name``); their ``dims`` are read from that file
(:func:`hwsim.trace.hfconfig.headline`), so the config is the one source of
their numbers. ``max_positions`` is the context a model handles (the warning
threshold of a longer workload): the published position table, or what a RoPE
scaling extends it to.

Shipped templates (``traces/{model}.{phase}.json.gz``) are exact for prefill at
``seq_len >= max(2, min_seq_len)`` and for decode at ``seq_len == 1``: at a
single prefill token PyTorch skips a layout copy, so that graph differs. A decode
step of several tokens has its own template (:data:`EXTEND`).
"""

from __future__ import annotations

from typing import Any

from . import configs, hfconfig

_BERT_VOCAB = 30522
_LLAMA_7B = {"layers": 32, "hidden": 4096, "heads": 32, "kv_heads": 32, "ffn": 11008,
             "max_positions": 4096}
_LLAMA_13B = {"layers": 40, "hidden": 5120, "heads": 40, "kv_heads": 40, "ffn": 13824,
              "max_positions": 4096}
_CLIP_L14_336 = {"layers": 24, "hidden": 1024, "heads": 16, "ffn": 4096, "patch": 14,
                 "image": 336}

ZOO: dict[str, dict[str, Any]] = {
    "bert-base": {"family": "bert", "phases": ("prefill",), "min_seq_len": 1, "max_seq_len": 512,
                  "dims": {"layers": 12, "hidden": 768, "heads": 12, "ffn": 3072,
                           "vocab": _BERT_VOCAB, "max_positions": 512}},
    "bert-large": {"family": "bert", "phases": ("prefill",), "min_seq_len": 1, "max_seq_len": 512,
                   "dims": {"layers": 24, "hidden": 1024, "heads": 16, "ffn": 4096,
                            "vocab": _BERT_VOCAB, "max_positions": 512}},
    "minilm-l6": {"family": "bert", "phases": ("prefill",), "min_seq_len": 1, "max_seq_len": 512,
                  "dims": {"layers": 6, "hidden": 384, "heads": 12, "ffn": 1536,
                           "vocab": _BERT_VOCAB, "max_positions": 512}},
    "gpt2": {"family": "gpt2", "phases": ("prefill", "decode"), "min_seq_len": 1,
             "dims": {"layers": 12, "hidden": 768, "heads": 12, "ffn": 3072, "vocab": 50257,
                      "max_positions": 1024}},
    "gpt2-medium": {"family": "gpt2", "phases": ("prefill", "decode"), "min_seq_len": 1,
                    "dims": {"layers": 24, "hidden": 1024, "heads": 16, "ffn": 4096,
                             "vocab": 50257, "max_positions": 1024}},
    "llama-2-7b": {"family": "llama", "phases": ("prefill", "decode"), "min_seq_len": 1,
                   "dims": {**_LLAMA_7B, "vocab": 32000}},
    "llama-2-13b": {"family": "llama", "phases": ("prefill", "decode"), "min_seq_len": 1,
                    "dims": {**_LLAMA_13B, "vocab": 32000}},
    # TinyLlama-1.1B (model card config.json): a 1B-class Llama with grouped-query
    # attention (32 query heads over 4 key/value heads), for CPU decode studies
    "tinyllama-1.1b": {"family": "llama", "phases": ("prefill", "decode"), "min_seq_len": 1,
                       "dims": {"layers": 22, "hidden": 2048, "heads": 32, "kv_heads": 4,
                                "ffn": 5632, "vocab": 32000, "max_positions": 2048}},
    "vit-base": {"family": "vit", "phases": ("prefill",), "min_seq_len": 2,
                 "dims": {"layers": 12, "hidden": 768, "heads": 12, "ffn": 3072, "patch": 16,
                          "image": 224}},
    "deit-small": {"family": "vit", "phases": ("prefill",), "min_seq_len": 2,
                   "dims": {"layers": 12, "hidden": 384, "heads": 6, "ffn": 1536, "patch": 16,
                            "image": 224}},
    "llava-1.5-7b": {"family": "llava", "vision": "llava", "phases": ("prefill", "decode"),
                     "min_seq_len": 611,
                     "dims": {**_LLAMA_7B, "vocab": 32064, "vision": _CLIP_L14_336,
                              "text_prefix": 35, "image_tokens": 576}},
    "llava-1.5-13b": {"family": "llava", "vision": "llava", "phases": ("prefill", "decode"),
                      "min_seq_len": 611,
                      "dims": {**_LLAMA_13B, "vocab": 32064, "vision": _CLIP_L14_336,
                               "text_prefix": 35, "image_tokens": 576}},
}



def _from_config(name: str) -> dict[str, Any]:
    """A zoo entry built from shipped config ``name`` (hwsim/trace/configs/name.yaml)."""
    cfg = configs.load(name)
    head = hfconfig.headline(cfg)
    dims = {k: head[k] for k in ("layers", "hidden", "heads", "kv_heads", "head_dim", "ffn",
                                 "vocab", "max_positions", "window")}
    if head["experts"]:  # a mixture of experts: experts per layer, and how many a token runs
        dims.update(experts=head["experts"], experts_per_token=head["experts_per_token"])
    return {"family": "hf", "config": name, "phases": hfconfig.phases(cfg), "min_seq_len": 1,
            "dims": dims}


# Today's decoder LMs, each from its model card's config.json (hwsim/trace/configs/).
for _name in ("llama-3.1-8b", "llama-3.1-70b", "llama-3.2-1b", "mistral-7b-v0.1",
              "qwen2.5-7b", "mixtral-8x7b"):
    ZOO[_name] = _from_config(_name)
ZOO["llava-onevision-7b"] = _from_config("llava-onevision-7b")  # AnyRes tiles, video frames

# Today's vision-language models, from their config.json: Qwen2.5-VL-7B (its image
# preprocessing and default image: hwsim.trace.images; min_seq_len follows the image).
ZOO["qwen2.5-vl-7b"] = _from_config("qwen2.5-vl-7b")

ZOO_NAMES: tuple[str, ...] = tuple(ZOO)

PHASES = ("prefill", "decode")


def phases(model: str) -> tuple[str, ...]:
    """The phases ``model`` can be traced in (``()`` for a name not in the zoo)."""
    entry = ZOO.get(model)
    return tuple(entry["phases"]) if entry else ()


# A decode step of several new tokens per sequence (seq_len > 1: speculative decoding's
# verification, a chunked prefill's chunk, LazyLLM's revived tokens over a generation)
# has its own template, traced at seq_len >= 2 and shipped as traces/{model}.extend.json.gz
# (its header says phase: decode): at one row PyTorch skips a layout copy, so the one-row
# decode template cannot grow rows (hwsim.trace.template).
EXTEND = "extend"


def template_path(model: str, phase: str) -> str:
    """The shipped template's file name, relative to the ``traces/`` folder."""
    return f"{model}.{phase}.json.gz"
