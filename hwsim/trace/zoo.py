"""The zoo: published models built from ``transformers`` configs, without weights.

Every model is constructed under ``torch.device("meta")`` (parameters have
shapes, no storage: a 7B model builds in a few hundredths of a second and takes
no memory), cast to the trace dtype, and put in eval mode. Its inputs are made
inside the tracer's fake-tensor mode, also on the meta device. Dimensions come
from :mod:`hwsim.trace.zoo_names`; what each family runs:

``bert`` (bert-base, bert-large, minilm-l6)
    ``BertModel`` with its pooler, on ``input_ids`` of ``(batch, seq_len)``.
``gpt2`` (gpt2, gpt2-medium)
    ``GPT2LMHeadModel``: logits for every position.
``llama`` (llama-2-7b, llama-2-13b, tinyllama-1.1b)
    ``LlamaForCausalLM``: logits for every position of a prefill (the hand
    count of the FLOPs includes the LM head over all ``seq_len`` rows).
``vit`` (vit-base, deit-small)
    ``ViTModel`` without pooler (the backbone: patch embedding, CLS token,
    encoder, final LayerNorm). DeiT-S is the ViT architecture at 384 wide with
    6 heads, without a distillation token. ``seq_len`` is the token count with
    the CLS token, so ``seq_len - 1`` patches; the image is one row of patches,
    16 px tall and ``16·(seq_len-1)`` wide, and the position table has
    ``seq_len`` rows, so every size is a native size and every dimension of the
    graph is a polynomial of ``seq_len`` (at 197 tokens the graph is the 224 px
    model's, except the shape of the pixel input).
``llava`` (llava-1.5-7b, llava-1.5-13b)
    ``LlavaForConditionalGeneration``: CLIP ViT-L/14 at 336 px (24 layers, 577
    positions), the two-layer GELU projector, and the Llama-2 language model
    (vocabulary 32064). A prefill runs the calls of
    ``LlavaModel.get_image_features`` (the whole CLIP tower, as HF does, although
    feature layer -2 discards the last layer's output and the pooled CLS state;
    then ``[:, 1:]`` and the projector), embeds the 35-token text prefix and the
    question tokens, concatenates ``[prefix, 576 visual, question]`` as the
    language model's ``inputs_embeds`` (instead of HF's data-dependent
    ``masked_scatter`` over placeholder tokens, which needs real token ids) and
    runs the language model. ``seq_len`` is the language model's token count,
    at least 611; the header's segments are ``text [0, 35)``, ``visual [35, 611)``
    and ``question [611, seq_len)`` (always present, empty at 611).

Decoder models trace prefills with ``use_cache=True``, so a prefill writes its
keys and values to the cache as a real serving prefill does. A decode step runs
``seq_len`` new tokens (1 normally) over a ``DynamicCache`` pre-filled with
``kv_len`` fake tokens per layer; for LLaVA a decode step is one language-model
step (no image). GPT-2 traces beyond its 1024 learned positions as if its
position table were longer (fake tensors have no values to index out of range,
and the parameter keeps its published shape); BERT's position ids are a
512-entry buffer, so a longer BERT input is an error.

``layers=`` overrides the number of blocks (of each tower for LLaVA), for
quick tests; every other dimension stays published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..errors import InputError
from .zoo_names import ZOO, ZOO_NAMES

TORCH_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


@dataclass
class Prepared:
    """A model ready to trace: how to make its inputs and how to run it."""

    model: torch.nn.Module
    make_inputs: Callable[[], dict[str, Any]]  # called inside the fake mode
    run: Callable[[dict[str, Any]], Any]  # called while recording
    segments: dict[str, list[int]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    stack_names: dict[str, str] = field(default_factory=dict)


def prepare(name: str, *, phase: str, batch: int, seq_len: int, kv_len: int, dtype: str,
            attn_implementation: str, layers: int | None = None) -> Prepared:
    """Build zoo model ``name`` and its inputs for one size."""
    entry = ZOO.get(name)
    if entry is None:
        raise InputError(f"unknown model {name!r}; the zoo has: {', '.join(ZOO_NAMES)} "
                         f"(or give a factory as 'package.module:function')", field="model")
    if phase not in entry["phases"]:
        raise InputError(f"model {name!r} has no {phase} phase (it has: "
                         f"{', '.join(entry['phases'])})", field="phase")
    if phase == "prefill" and seq_len < entry["min_seq_len"]:
        raise InputError(f"model {name!r} needs seq_len >= {entry['min_seq_len']}, got {seq_len}",
                         field="seq_len")
    if seq_len + kv_len > entry.get("max_seq_len", seq_len + kv_len):
        raise InputError(f"model {name!r} handles at most {entry['max_seq_len']} tokens, got "
                         f"{seq_len + kv_len}", field="seq_len")
    dims = dict(entry["dims"])
    if layers is not None:
        dims["layers"] = layers
        if "vision" in dims:
            dims["vision"] = {**dims["vision"], "layers": layers}
    builder = _FAMILIES[entry["family"]]
    return builder(dims, phase=phase, batch=batch, seq_len=seq_len, kv_len=kv_len,
                   dtype=TORCH_DTYPES[dtype], attn=attn_implementation)


# ---------------------------------------------------------------------- helpers
def _build(cls: Callable[..., torch.nn.Module], cfg: Any, dtype: torch.dtype,
           **kwargs: Any) -> torch.nn.Module:
    with torch.device("meta"):
        model = cls(cfg, **kwargs)
    return model.to(dtype).eval()


def _ids(batch: int, n: int) -> torch.Tensor:
    return torch.zeros(batch, n, dtype=torch.long, device="meta")


def _past(batch: int, kv_len: int, layers: int, kv_heads: int, head_dim: int,
          dtype: torch.dtype) -> Any:
    """A DynamicCache holding ``kv_len`` tokens per layer (fake tensors; made before recording)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for i in range(layers):
        k = torch.zeros(batch, kv_heads, kv_len, head_dim, dtype=dtype, device="meta")
        v = torch.zeros(batch, kv_heads, kv_len, head_dim, dtype=dtype, device="meta")
        cache.update(k, v, i)
    return cache


def _facts(dims: dict[str, Any], *keys: str) -> dict[str, Any]:
    facts = {"hidden": dims["hidden"], "heads": dims["heads"],
             "kv_heads": dims.get("kv_heads", dims["heads"]),
             "head_dim": dims["hidden"] // dims["heads"], "ffn": dims["ffn"],
             "layers": dims["layers"]}
    facts.update({k: dims[k] for k in keys})
    return facts


def _decoder_inputs(phase: str, batch: int, seq_len: int, kv_len: int, dims: dict[str, Any],
                    dtype: torch.dtype) -> Callable[[], dict[str, Any]]:
    def make() -> dict[str, Any]:
        inputs: dict[str, Any] = {"input_ids": _ids(batch, seq_len), "use_cache": True}
        if phase == "decode":
            inputs["past_key_values"] = _past(batch, kv_len, dims["layers"],
                                              dims.get("kv_heads", dims["heads"]),
                                              dims["hidden"] // dims["heads"], dtype)
        return inputs
    return make


def _call(model: torch.nn.Module) -> Callable[[dict[str, Any]], Any]:
    return lambda inputs: model(**inputs)


# ---------------------------------------------------------------------- families
def _bert(dims, *, phase, batch, seq_len, kv_len, dtype, attn) -> Prepared:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=dims["vocab"], hidden_size=dims["hidden"],
                     num_hidden_layers=dims["layers"], num_attention_heads=dims["heads"],
                     intermediate_size=dims["ffn"],
                     max_position_embeddings=dims["max_positions"])
    cfg._attn_implementation = attn
    model = _build(BertModel, cfg, dtype)
    return Prepared(model, lambda: {"input_ids": _ids(batch, seq_len)}, _call(model),
                    config=_facts(dims, "vocab"), stack_names={"encoder.layer": "encoder"})


def _gpt2(dims, *, phase, batch, seq_len, kv_len, dtype, attn) -> Prepared:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=dims["vocab"], n_positions=dims["max_positions"],
                     n_embd=dims["hidden"], n_layer=dims["layers"], n_head=dims["heads"],
                     n_inner=dims["ffn"])
    cfg._attn_implementation = attn
    model = _build(GPT2LMHeadModel, cfg, dtype)
    return Prepared(model, _decoder_inputs(phase, batch, seq_len, kv_len, dims, dtype),
                    _call(model), config=_facts(dims, "vocab"),
                    stack_names={"transformer.h": "decoder"})


def _llama_config(dims: dict[str, Any], attn: str) -> Any:
    from transformers import LlamaConfig

    cfg = LlamaConfig(vocab_size=dims["vocab"], hidden_size=dims["hidden"],
                      intermediate_size=dims["ffn"], num_hidden_layers=dims["layers"],
                      num_attention_heads=dims["heads"], num_key_value_heads=dims["kv_heads"],
                      max_position_embeddings=dims["max_positions"], rms_norm_eps=1e-5)
    cfg._attn_implementation = attn
    return cfg


def _llama(dims, *, phase, batch, seq_len, kv_len, dtype, attn) -> Prepared:
    from transformers import LlamaForCausalLM

    model = _build(LlamaForCausalLM, _llama_config(dims, attn), dtype)
    return Prepared(model, _decoder_inputs(phase, batch, seq_len, kv_len, dims, dtype),
                    _call(model), config=_facts(dims, "vocab"),
                    stack_names={"model.layers": "decoder"})


def _vit(dims, *, phase, batch, seq_len, kv_len, dtype, attn) -> Prepared:
    from transformers import ViTConfig, ViTModel

    patch, patches = dims["patch"], seq_len - 1
    cfg = ViTConfig(hidden_size=dims["hidden"], num_hidden_layers=dims["layers"],
                    num_attention_heads=dims["heads"], intermediate_size=dims["ffn"],
                    image_size=[patch, patch * patches], patch_size=patch)
    cfg._attn_implementation = attn
    model = _build(ViTModel, cfg, dtype, add_pooling_layer=False)

    def make() -> dict[str, Any]:
        return {"pixel_values": torch.zeros(batch, 3, patch, patch * patches, dtype=dtype,
                                            device="meta")}
    return Prepared(model, make, _call(model), config=_facts(dims, "patch"),
                    stack_names={"layers": "encoder", "encoder.layer": "encoder"})


def _llava(dims, *, phase, batch, seq_len, kv_len, dtype, attn) -> Prepared:
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration

    vis = dims["vision"]
    vcfg = CLIPVisionConfig(hidden_size=vis["hidden"], intermediate_size=vis["ffn"],
                            num_hidden_layers=vis["layers"], num_attention_heads=vis["heads"],
                            image_size=vis["image"], patch_size=vis["patch"],
                            hidden_act="quick_gelu", projection_dim=768)
    tcfg = _llama_config(dims, attn)
    cfg = LlavaConfig(vision_config=vcfg, text_config=tcfg, image_token_id=32000,
                      projector_hidden_act="gelu", vision_feature_layer=-2,
                      vision_feature_select_strategy="default",
                      image_seq_length=dims["image_tokens"])
    for c in (cfg, cfg.vision_config, cfg.text_config):
        c._attn_implementation = attn
    model = _build(LlavaForConditionalGeneration, cfg, dtype)
    prefix, image_tokens = dims["text_prefix"], dims["image_tokens"]
    config = {**_facts(dims, "vocab"), "vision": _facts(vis, "patch", "image")}
    stacks = {"model.vision_tower.encoder.layers": "vision",
              "model.vision_tower.vision_model.encoder.layers": "vision",
              "model.language_model.layers": "language"}
    if phase == "decode":
        return Prepared(model, _decoder_inputs(phase, batch, seq_len, kv_len, dims, dtype),
                        _call(model), config=config, stack_names=stacks)

    def make() -> dict[str, Any]:
        return {"pixel_values": torch.zeros(batch, 3, vis["image"], vis["image"], dtype=dtype,
                                            device="meta"),
                "prefix_ids": _ids(batch, prefix),
                "question_ids": _ids(batch, seq_len - prefix - image_tokens)}

    def run(inputs: dict[str, Any]) -> Any:
        inner = model.model
        tower = inner.vision_tower(inputs["pixel_values"], output_hidden_states=True,
                                   return_dict=True)
        selected = tower.hidden_states[cfg.vision_feature_layer][:, 1:]
        visual = inner.multi_modal_projector(selected)
        embed = inner.get_input_embeddings()
        embeds = torch.cat([embed(inputs["prefix_ids"]), visual, embed(inputs["question_ids"])],
                           dim=1)
        return model(inputs_embeds=embeds, use_cache=True)

    segments = {"text": [0, prefix], "visual": [prefix, prefix + image_tokens],
                "question": [prefix + image_tokens, seq_len]}
    return Prepared(model, make, run, segments=segments, config=config, stack_names=stacks)


_FAMILIES: dict[str, Callable[..., Prepared]] = {
    "bert": _bert, "gpt2": _gpt2, "llama": _llama, "vit": _vit, "llava": _llava,
}
