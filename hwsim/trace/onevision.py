"""LLaVA-OneVision traced: AnyRes tiles or video frames, then the Qwen2 language model.

The builder of ``LlavaOnevisionForConditionalGeneration`` configs
(:data:`hwsim.trace.zoo.ARCHITECTURES`), for the zoo's ``llava-onevision-7b`` and
any LLaVA-OneVision ``config.json``. The model is Hugging Face's, built on the meta
device; the prefill runs its modules in the order
``LlavaOnevisionModel.get_image_features`` / ``get_video_features`` runs them,
with every count the image decides worked out beforehand in plain integers
(:mod:`hwsim.trace.anyres`), because Hugging Face derives them from the values of
``image_sizes``, which fake tensors do not have:

**An image** (``image=(height, width)``, the image as given to the processor).
Its plan (:func:`hwsim.trace.anyres.plan_image`) gives the tiles, the base view and
the ``a x b`` crops of the best grid. All tiles of all ``batch`` images go through
the SigLIP tower in **one** batched run (batch = ``batch·tiles``, 729 tokens each,
so the graph's FLOPs are exactly the tower's per tile times the tiles), the last
layer's hidden states through the projector, then the crops are packed as
``pack_image_features`` packs them: laid out as one ``27a x 27b`` map (a
permute and a copy), the padding rows or columns sliced off (a view), the
``anyres_max_9`` bilinear downscale when the map is too large, an
``image_newline`` column concatenated after each row, and the base view's 729
tokens put first. Hugging Face packs each image of a batch in a Python loop; here
the same ops run once on a batch dimension (the same elements moved and
computed), so a batch of ``B`` identical images is one graph whose dimensions are
multilinear in ``B`` and the template machinery applies.

**A video** (``frames=N``): the ``batch·N`` frames (384x384 each, as the video
processor resizes them) through the tower in one run, the projector, the 2x2
bilinear pooling of each frame's ``27 x 27`` map to ``14 x 14`` (Hugging Face's
own ``apply_pooling``), the frames' 196 tokens each in a row and one
``image_newline`` at the end.

The language model then reads ``[text prefix, visual, question]`` as
``inputs_embeds`` (concatenated, instead of Hugging Face's ``masked_scatter`` over
placeholder ids, which needs real token ids), with ``use_cache=True``; its
segments are ``text``, ``visual`` and ``question`` from the image rule's layout
(:mod:`hwsim.trace.images`), so the loader's torch-free checks and the traced
header agree. A decode step is one language-model step over a cache of
``kv_len`` tokens (no image), as for LLaVA-1.5.

What is not in the graph: the image processor's resize, pad and normalise (host
work before the model), and ``get_placeholder_mask``'s comparisons of every
token id with the image token id (bookkeeping over integer ids that the
concatenation replaces).
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InputError
from . import anyres, hfconfig, images
from .zoo import LLAVA_STACKS, Prepared, _build, _decoder, _ids, auto_config


def build(config: dict[str, Any], *, phase: str, batch: int, seq_len: int, kv_len: int,
          dtype: torch.dtype, attn: str, image: tuple[int, int] | None = None,
          frames: int = 0, layers: int | None = None) -> Prepared:
    """A LLaVA-OneVision model and its inputs for one size and one image or video.

    ``layers`` (quick tests) cuts the vision tower to that many layers too; the
    language model's cut is already in ``config``."""
    from transformers import LlavaOnevisionForConditionalGeneration

    if layers is not None:
        config = {**config, "vision_config": {**config["vision_config"],
                                              "num_hidden_layers": layers}}

    cfg = auto_config(config, attn, "LLaVA-OneVision config")
    model = _build(LlavaOnevisionForConditionalGeneration, cfg, dtype)
    head = hfconfig.headline(config)
    text = cfg.text_config
    vis = cfg.vision_config
    dims = {"layers": text.num_hidden_layers, "heads": head["heads"],
            "kv_heads": head["kv_heads"], "hidden": head["hidden"],
            "head_dim": getattr(text, "head_dim", None) or head["head_dim"]}
    facts = {k: head[k] for k in ("hidden", "heads", "kv_heads", "head_dim", "ffn", "vocab",
                                  "max_positions", "window")}
    facts["layers"] = text.num_hidden_layers
    facts["vision"] = {"layers": vis.num_hidden_layers, "hidden": vis.hidden_size,
                       "heads": vis.num_attention_heads, "ffn": vis.intermediate_size,
                       "patch": vis.patch_size, "image": vis.image_size}
    if phase == "decode":
        return _decoder(model, dims, phase=phase, batch=batch, seq_len=seq_len, kv_len=kv_len,
                        dtype=dtype, config=facts, stacks=LLAVA_STACKS)

    if not anyres.is_default_geometry(config):
        raise InputError("this LLaVA-OneVision config tiles images with other grid pinpoints, "
                         "tile, patch or vision_aspect_ratio than the published checkpoints; "
                         "hwsim counts visual tokens with the published ones "
                         "(hwsim/trace/anyres.py)", field="model")
    rule = images.rule_for_config(config)
    layout = rule.layout(image, frames)
    geo = anyres.config_geometry(config)
    tile = geo["tile"]
    prefix = layout.text_prefix
    question = seq_len - layout.min_seq_len
    if frames:
        units = frames
        plan = None
    else:
        plan = anyres.plan_image(*layout.image, pinpoints=geo["pinpoints"], tile=tile,
                                 patch=geo["patch"], aspect=geo["aspect"])
        units = plan.tiles

    def make() -> dict[str, Any]:
        return {"pixel_values": torch.zeros(batch * units, 3, tile, tile, dtype=dtype,
                                            device="meta"),
                "prefix_ids": _ids(batch, prefix), "question_ids": _ids(batch, question)}

    def run(inputs: dict[str, Any]) -> Any:
        inner = model.model
        tower = inner.vision_tower(inputs["pixel_values"], output_hidden_states=True,
                                   return_dict=True)
        selected = tower.hidden_states[cfg.vision_feature_layer]
        if cfg.vision_feature_select_strategy == "default":
            selected = selected[:, 1:]
        features = inner.multi_modal_projector(selected)  # (batch·units, 729, hidden)
        if plan is None:
            visual = _pack_video(inner, features, batch, frames)
        else:
            visual = _pack_image(inner, features, batch, plan)
        embed = inner.get_input_embeddings()
        embeds = torch.cat([embed(inputs["prefix_ids"]), visual, embed(inputs["question_ids"])],
                           dim=1)
        return model(inputs_embeds=embeds, use_cache=True)

    return Prepared(model, make, run, segments=layout.segments(seq_len), config=facts,
                    stack_names=LLAVA_STACKS)


def _pack_image(inner: Any, features: torch.Tensor, batch: int,
                plan: anyres.ImagePlan) -> torch.Tensor:
    """``pack_image_features`` for ``batch`` images of one plan, on a batch dimension."""
    side, (a, b) = plan.side, plan.crops
    dim = features.shape[-1]
    per_image = features.view(batch, plan.tiles, side * side, dim)
    base = per_image[:, 0]
    crops = per_image[:, 1:].reshape(batch, a, b, side, side, dim)
    # HF: view(a, b, h, w, D).permute(4, 0, 2, 1, 3).contiguous().flatten(1, 2).flatten(2, 3).
    # .contiguous() written as what it does, a new tensor and a copy into it: the recorder
    # takes a clone of a slice for a reshape's layout artefact (free), and this one is a
    # real transposing copy of the crops' features.
    moved = crops.permute(0, 5, 1, 3, 2, 4)
    crops = torch.empty(moved.shape, dtype=moved.dtype, device=moved.device).copy_(moved)
    crops = crops.flatten(2, 3).flatten(3, 4)
    rows, cols = a * side, b * side
    keep_rows, keep_cols = plan.unpadded
    top, left = (rows - keep_rows) // 2, (cols - keep_cols) // 2  # unpad_image
    crops = crops[:, :, top:top + keep_rows, left:left + keep_cols]
    if plan.is_reduced:  # anyres_max_N: bilinear downscale to about N crops' worth
        crops = torch.nn.functional.interpolate(crops, list(plan.reduced), mode="bilinear")
    h = plan.reduced[0]
    newline = inner.image_newline[None, :, None, None].expand(batch, dim, h, 1)
    crops = torch.cat((crops, newline.to(crops.dtype)), dim=-1)
    crops = crops.flatten(2, 3).transpose(1, 2)
    return torch.cat((base, crops), dim=1)


def _pack_video(inner: Any, features: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    """``get_video_features`` after the projector: 2x2 bilinear pooling per frame, the
    frames in a row, one ``image_newline`` at the end."""
    pooled = inner.apply_pooling(features)  # (batch·frames, 196, hidden)
    pooled = pooled.reshape(batch, frames * pooled.shape[1], -1)
    newline = inner.image_newline[None, None, :].repeat(batch, 1, 1).to(pooled.dtype)
    return torch.cat((pooled, newline), dim=1)
