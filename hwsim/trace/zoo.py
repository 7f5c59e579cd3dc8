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
``hf`` (llama-3.1-8b, llama-3.1-70b, llama-3.2-1b, mistral-7b-v0.1, qwen2.5-7b, mixtral-8x7b)
    Built from the model card's ``config.json`` shipped in
    :mod:`hwsim.trace.configs`, exactly as a config given by path or hub id is
    (:func:`prepare_config`): ``transformers.AutoConfig`` makes the config and
    ``AutoModelForCausalLM`` the model, so each architecture's own code runs
    (Qwen2's q/k/v biases, Mistral's sliding window, Llama 3's RoPE scaling,
    Mixtral's router; its experts become one ``moe_experts`` op per layer,
    :mod:`hwsim.trace.moe`).
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

**Models from a config** (:func:`prepare_config`: a zoo ``hf`` entry, a
``config.json`` path, a cached hub id; see :mod:`hwsim.trace.hub`). What is
built depends on the architecture's kind (:mod:`hwsim.trace.hfconfig`): a
decoder LM with ``AutoModelForCausalLM`` (LM head included), traced on
``input_ids`` like the ``llama`` family (prefill with ``use_cache=True``,
decode over a pre-filled ``DynamicCache``, with the key/value heads and head
dimension the config states); an encoder with ``AutoModel``, on
``input_ids``. Its one block stack is named ``decoder`` or ``encoder``. An
architecture that needs more (a vision-language model's image inputs, a mixture
of experts' routing) registers a builder in :data:`ARCHITECTURES` under its
architecture class name or model type; the builder gets the config dict and
the size and returns a :class:`Prepared`. A config whose ``model_type`` this
``transformers`` does not know is an error naming the version (configs that
need ``trust_remote_code`` are never run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..errors import InputError
from . import configs, hfconfig, images
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


def vision_rule(model: str) -> images.VisionInputs | None:
    """How zoo model or config ``model`` reads images (None: it reads none)."""
    entry = ZOO.get(model)
    if entry is not None:
        if "vision" in entry:
            return images.RULES.get(entry["vision"])
        if "config" not in entry:
            return None
        config = configs.load(entry["config"])
    else:
        from . import hub

        source = hub.resolve(model)
        if source is None:
            return None
        config = source.config
    if hfconfig.kind(config) != "vision-language":
        return None
    return images.rule_for_config(config)


def check_image(model: str, phase: str, image: tuple[int, int] | None, frames: int,
                rule: images.VisionInputs | None) -> None:
    """Raise :class:`InputError` when ``model`` cannot read ``image``/``frames``."""
    if image is None and not frames:
        return
    if rule is None:
        raise InputError(f"model {model!r} reads no image: image and frames are for a "
                         f"vision-language model", field="image" if image else "frames")
    problem = rule.check(image, frames)
    if problem:
        raise InputError(problem, field="frames" if frames and not rule.takes_frames
                         else "image")


def prepare(name: str, *, phase: str, batch: int, seq_len: int, kv_len: int, dtype: str,
            attn_implementation: str, layers: int | None = None,
            image: tuple[int, int] | None = None, frames: int = 0) -> Prepared:
    """Build zoo model ``name`` and its inputs for one size (and, for a vision-language
    model, one ``image`` of ``(height, width)`` px, None for its default, and ``frames``)."""
    entry = ZOO.get(name)
    if entry is None:
        raise InputError(f"unknown model {name!r}; the zoo has: {', '.join(ZOO_NAMES)} "
                         f"(or give a config.json path, a Hugging Face id in the local cache "
                         f"as ORG/NAME, or a factory as 'package.module:function')",
                         field="model")
    if phase not in entry["phases"]:
        raise InputError(f"model {name!r} has no {phase} phase (it has: "
                         f"{', '.join(entry['phases'])})", field="phase")
    rule = vision_rule(name)
    check_image(name, phase, image, frames, rule)
    minimum = entry["min_seq_len"]
    if rule is not None:
        minimum = max(minimum, rule.layout(image, frames).min_seq_len)
    if phase == "prefill" and seq_len < minimum:
        raise InputError(f"model {name!r} needs seq_len >= {minimum}, got {seq_len}",
                         field="seq_len")
    if seq_len + kv_len > entry.get("max_seq_len", seq_len + kv_len):
        raise InputError(f"model {name!r} handles at most {entry['max_seq_len']} tokens, got "
                         f"{seq_len + kv_len}", field="seq_len")
    if entry["family"] == "hf":
        return prepare_config(configs.load(entry["config"]), phase=phase, batch=batch,
                              seq_len=seq_len, kv_len=kv_len, dtype=dtype,
                              attn_implementation=attn_implementation, layers=layers,
                              image=image, frames=frames)
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
                    dtype: torch.dtype, cache_kwarg: str = "past_key_values",
                    ) -> Callable[[], dict[str, Any]]:
    head_dim = dims.get("head_dim") or dims["hidden"] // dims["heads"]

    def make() -> dict[str, Any]:
        inputs: dict[str, Any] = {"input_ids": _ids(batch, seq_len), "use_cache": True}
        if phase == "decode":
            inputs[cache_kwarg] = _past(batch, kv_len, dims["layers"],
                                        dims.get("kv_heads", dims["heads"]), head_dim, dtype)
        return inputs
    return make


def cache_kwarg(model: torch.nn.Module) -> str:
    """The forward's name for the KV cache: ``cache`` in transformers 5.x (where
    ``past_key_values`` is deprecated), ``past_key_values`` before."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _call(model: torch.nn.Module) -> Callable[[dict[str, Any]], Any]:
    return lambda inputs: model(**inputs)


def _decoder(model: torch.nn.Module, dims: dict[str, Any], *, phase: str, batch: int,
             seq_len: int, kv_len: int, dtype: torch.dtype, config: dict[str, Any],
             stacks: dict[str, str]) -> Prepared:
    """A decoder run on token ids: ``seq_len`` of them, after a KV cache of ``kv_len``
    tokens to decode (:func:`_decoder_inputs`), with the model's facts and stacks."""
    return Prepared(model, _decoder_inputs(phase, batch, seq_len, kv_len, dims, dtype,
                                           cache_kwarg(model)),
                    _call(model), config=config, stack_names=stacks)


# The layer stacks of a LLaVA model (LLaVA-1.5 and LLaVA-OneVision): the vision tower's
# encoder layers, whether or not the tower nests them in a ``vision_model``, and the
# language model's layers.
LLAVA_STACKS = {"model.vision_tower.encoder.layers": "vision",
                "model.vision_tower.vision_model.encoder.layers": "vision",
                "model.language_model.layers": "language"}


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
    return _decoder(model, dims, phase=phase, batch=batch, seq_len=seq_len, kv_len=kv_len,
                    dtype=dtype, config=_facts(dims, "vocab"),
                    stacks={"transformer.h": "decoder"})


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
    return _decoder(model, dims, phase=phase, batch=batch, seq_len=seq_len, kv_len=kv_len,
                    dtype=dtype, config=_facts(dims, "vocab"), stacks={"model.layers": "decoder"})


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
    if phase == "decode":
        return _decoder(model, dims, phase=phase, batch=batch, seq_len=seq_len, kv_len=kv_len,
                        dtype=dtype, config=config, stacks=LLAVA_STACKS)

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
    return Prepared(model, make, run, segments=segments, config=config,
                    stack_names=LLAVA_STACKS)


_FAMILIES: dict[str, Callable[..., Prepared]] = {
    "bert": _bert, "gpt2": _gpt2, "llama": _llama, "vit": _vit, "llava": _llava,
}


# ---------------------------------------------------------------------- from a config
# Builders for architectures the generic path cannot trace, by architecture class
# name (``architectures[0]``) or ``model_type``: f(config dict, phase=, batch=,
# seq_len=, kv_len=, dtype=, attn=) -> Prepared. Vision-language models and mixtures
# of experts register here. A vision-language builder (kind ``vision-language``)
# also gets ``image=`` ((height, width) px as the workload gives it, None for the
# default of its rule in hwsim.trace.images), ``frames=`` (0: a still image) and
# ``layers=`` (the cut already applied to the language model, None when not cut:
# the builder cuts its vision tower to match, as LLaVA-1.5's does); it
# counts the visual tokens with that rule's layout(image, frames), so the loader's
# checks (torch-free) and the traced segments agree.
ARCHITECTURES: dict[str, Callable[..., Prepared]] = {}


def _llava_onevision(config: dict[str, Any], **kwargs: Any) -> Prepared:
    """LLaVA-OneVision: AnyRes tiles or video frames (:mod:`hwsim.trace.onevision`)."""
    from .onevision import build  # noqa: PLC0415 - onevision imports this module

    return build(config, **kwargs)


ARCHITECTURES["LlavaOnevisionForConditionalGeneration"] = _llava_onevision


def _qwen25vl(config: dict[str, Any], **kwargs: Any) -> Prepared:
    """Qwen2.5-VL: windowed vision attention over one image (:mod:`hwsim.trace.qwen25vl`)."""
    from .qwen25vl import build  # noqa: PLC0415 - qwen25vl imports this module

    return build(config, **kwargs)


ARCHITECTURES["Qwen2_5_VLForConditionalGeneration"] = _qwen25vl

# Config keys that are bookkeeping, not architecture: not passed to AutoConfig.
_BOOKKEEPING = ("transformers_version", "_name_or_path", "auto_map", "architectures",
                "torch_dtype", "dtype", "model_type")


def prepare_config(config: dict[str, Any], *, phase: str, batch: int, seq_len: int,
                   kv_len: int, dtype: str, attn_implementation: str,
                   layers: int | None = None, where: str = "",
                   image: tuple[int, int] | None = None, frames: int = 0) -> Prepared:
    """Build the model a ``config.json`` dict describes, with its inputs for one size.

    ``layers`` overrides ``num_hidden_layers`` (per-layer lists such as
    ``layer_types`` are cut to match); ``where`` names the config in errors. A
    vision-language model's builder also gets ``image`` (``(height, width)`` px as
    given, None for the rule's default: :mod:`hwsim.trace.images`) and ``frames``."""
    config = configs._copy(config)
    if layers is not None:
        _set_layers(hfconfig.text_config(config), layers)
    kind = hfconfig.kind(config)
    if phase not in hfconfig.phases(config):
        raise InputError(f"a {kind} model has no {phase} phase (it has: "
                         f"{', '.join(hfconfig.phases(config)) or 'none'})", field="phase")
    rule = images.rule_for_config(config) if kind == "vision-language" else None
    check_image(where or str(config.get("model_type")), phase, image, frames, rule)
    hook = ARCHITECTURES.get(hfconfig.architecture(config)) or ARCHITECTURES.get(
        str(config.get("model_type")))
    if hook is not None:
        extra = {"image": image, "frames": frames, "layers": layers} \
            if kind == "vision-language" else {}
        return hook(config, phase=phase, batch=batch, seq_len=seq_len, kv_len=kv_len,
                    dtype=TORCH_DTYPES[dtype], attn=attn_implementation, **extra)
    if kind not in ("causal-lm", "encoder"):
        raise InputError(f"hwsim has no builder for the {kind} architecture "
                         f"{hfconfig.architecture(config)} yet ({where or 'config'}); trace it "
                         f"from a factory (docs/models.md)", field="model")
    cfg = auto_config(config, attn_implementation, where)
    head = hfconfig.headline(config)
    torch_dtype = TORCH_DTYPES[dtype]
    if kind == "causal-lm":
        from transformers import AutoModelForCausalLM

        model = _build(AutoModelForCausalLM.from_config, cfg, torch_dtype)
        dims = {"layers": cfg.num_hidden_layers, "heads": head["heads"],
                "kv_heads": head["kv_heads"], "hidden": head["hidden"],
                "head_dim": getattr(cfg, "head_dim", None) or head["head_dim"]}
        make = _decoder_inputs(phase, batch, seq_len, kv_len, dims, torch_dtype,
                               cache_kwarg(model))
        stack = "decoder"
    else:
        from transformers import AutoModel

        model = _build(AutoModel.from_config, cfg, torch_dtype)

        def make() -> dict[str, Any]:
            return {"input_ids": _ids(batch, seq_len)}
        stack = "encoder"
    from .stacks import find_stacks

    found = find_stacks(model)
    names = {found[0].prefix: stack} if len(found) == 1 else {}
    facts = {k: head[k] for k in ("hidden", "heads", "kv_heads", "head_dim", "ffn", "vocab",
                                  "max_positions", "window")}
    facts["layers"] = cfg.num_hidden_layers
    if head["experts"]:  # a mixture of experts (hwsim.trace.moe)
        facts.update(experts=head["experts"], experts_per_token=head["experts_per_token"])
    if head["rope_scaling"]:
        facts["rope_scaling"] = head["rope_scaling"]
    return Prepared(model, make, _call(model), config=facts, stack_names=names)


def auto_config(config: dict[str, Any], attn: str, where: str = "") -> Any:
    """``transformers.AutoConfig`` for a config dict, with the attention implementation set
    on it and on every sub-config."""
    import transformers
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = config.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise InputError(f"transformers {transformers.__version__} has no model type "
                         f"{model_type!r} ({where or 'config'}); hwsim never runs remote code: "
                         f"upgrade transformers or trace a factory", field="model_type")
    kwargs = {k: v for k, v in config.items() if k not in _BOOKKEEPING}
    try:
        cfg = AutoConfig.for_model(model_type, **kwargs)
    except (ValueError, TypeError) as e:
        raise InputError(f"transformers rejects the config ({where or 'config'}): {e}",
                         field="model") from None
    for c in (cfg, *(getattr(cfg, k) for k in getattr(cfg, "sub_configs", {}) or {})):
        if c is not None:
            c._attn_implementation = attn
    return cfg


def _set_layers(cfg: dict[str, Any], layers: int) -> None:
    """Set the number of blocks of a config dict, cutting per-layer lists to match."""
    old = cfg.get("num_hidden_layers")
    cfg["num_hidden_layers"] = layers
    for key, value in list(cfg.items()):
        if isinstance(value, list) and old and len(value) == old:
            cfg[key] = value[:layers]
    if isinstance(cfg.get("max_window_layers"), int):
        cfg["max_window_layers"] = min(cfg["max_window_layers"], layers)
