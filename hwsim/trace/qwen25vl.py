"""Qwen2.5-VL: the vision tower's windowed attention and the M-RoPE language model.

Built from the config (``Qwen2_5_VLForConditionalGeneration`` on the meta
device, :func:`hwsim.trace.zoo.prepare_config` calls :func:`build` through
:data:`hwsim.trace.zoo.ARCHITECTURES`), for one image (:mod:`hwsim.trace.images`:
``smart_resize`` to multiples of 28 px, 14 px patches, 2x2 patches per visual
token). A prefill runs what ``Qwen2_5_VLModel`` runs, step by step, without
the parts that need tensor values:

1. **patch embedding**: ``pixel_values`` of ``(patches, 3·2·14·14)`` (the
   processor's flattened patches; a still image is repeated over the temporal
   patch of 2 frames) through the ``Conv3d`` whose stride equals its kernel:
   one GEMM, ``M = patches``, ``K = 1176``, ``N = 1280``;
2. the patches **reordered window by window** (the tower's
   ``permute_input_for_window_attn``, a gather), and the 2-D rotary table
   (``Qwen2_5_VLVisionRotaryEmbedding`` on the patches' (row, column) ids) the
   same way;
3. **32 blocks** (RMSNorm, attention, RMSNorm, SwiGLU MLP with biases). HF runs
   the attention over ``cu_seqlens`` and splits it with ``.tolist()`` (a loop
   over windows, which fake tensors cannot run). Each block's attention module
   is replaced here (:func:`_windowed_attention`, on this model instance only)
   by the same arithmetic, batched: the qkv projection, the vision rotary
   (``apply_rotary_pos_emb_vision``, one ``rope`` op), then one SDPA per window
   size whose batch is the number of windows of that size (``batch x images``
   windows of 64 patches, the bottom edge's, the right edge's and the corner's:
   :func:`hwsim.trace.images.qwen25vl_windows`), so the FLOPs are exact and no
   padding is counted; the full-attention blocks (``fullatt_block_indexes``) run
   one SDPA over each image's patches. This is block-diagonal attention, not
   the ``window`` attribute of an attention op (a sliding band around each
   query): every patch sees exactly the patches of its window. The windows are
   ordered by size in the permutation of step 2, which the reverse gather
   undoes, so the result is HF's;
4. the **patch merger**: RMSNorm, 2x2 patches concatenated (5120), Linear 5120
   -> 5120, GELU, Linear 5120 -> 3584, then the reverse gather to raster order;
5. the **language model** on ``[text prefix, visual tokens, question]`` as
   ``inputs_embeds`` (instead of HF's ``masked_scatter`` over ``<|image_pad|>``
   tokens, which needs token values) with M-RoPE position ids of shape
   ``(3, batch, seq_len)`` given (``get_rope_index`` reads token values; the
   positions' values do not change the arithmetic), ``use_cache=True``.

A decode step is one language-model step over a pre-filled cache (no image).
The header's segments are ``text [0, 15)``, ``visual [15, 15 + V)`` and
``question [15 + V, seq_len)``, V the image's visual tokens.

``layers=`` cuts both towers (the vision tower keeps its full-attention blocks
below the cut), for quick tests.
"""

from __future__ import annotations

import types
from typing import Any

import torch

from . import images
from .zoo import (
    Prepared,
    _build,
    _ids,
    _past,
    auto_config,
    cache_kwarg,
)


def _windowed_attention(self: Any, hidden_states: torch.Tensor, cu_seqlens: Any,
                        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
                        **kwargs: Any) -> torch.Tensor:
    """``Qwen2_5_VLVisionAttention.forward`` with its per-window loop batched.

    ``cu_seqlens`` is not HF's tensor of window boundaries but the list of
    ``(patches per window, windows)`` the blocks of this kind attend over, in the
    order of the patches (windows of one size are contiguous)."""
    import sys

    mod = sys.modules[type(self).__module__]  # the recorder wraps its rotary function there
    n = hidden_states.shape[0]
    heads = self.num_heads
    q, k, v = self.qkv(hidden_states).reshape(n, 3, heads, -1).permute(1, 0, 2, 3).unbind(0)
    cos, sin = position_embeddings
    q, k = mod.apply_rotary_pos_emb_vision(q, k, cos, sin)
    outs, start = [], 0
    for size, count in cu_seqlens:  # q, k, v: (patches, heads, head_dim)
        stop = start + size * count
        # views: (windows, heads, size, head_dim)
        qw, kw, vw = (t[start:stop].reshape(count, size, heads, -1).transpose(1, 2)
                      for t in (q, k, v))
        o = torch.nn.functional.scaled_dot_product_attention(qw, kw, vw, scale=self.scaling)
        outs.append(o.transpose(1, 2).reshape(size * count, -1))  # HF's transpose + copy
        start = stop
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)
    return self.proj(out)


def build(config: dict[str, Any], *, phase: str, batch: int, seq_len: int, kv_len: int,
          dtype: torch.dtype, attn: str, image: tuple[int, int] | None = None,
          frames: int = 0, layers: int | None = None) -> Prepared:
    """The Qwen2.5-VL model of ``config`` with its inputs for one size and image
    (``layers``: the language model was cut to this many; cut the vision tower too)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    rule = images.QWEN25_VL
    if layers is not None:
        vision = dict(config["vision_config"])
        vision["depth"] = layers
        vision["fullatt_block_indexes"] = [i for i in vision.get("fullatt_block_indexes", [])
                                           if i < layers]
        config = {**config, "vision_config": vision}
    cfg = auto_config(config, attn)
    model = _build(Qwen2_5_VLForConditionalGeneration, cfg, dtype)
    text = cfg.text_config
    head = {"hidden": text.hidden_size, "heads": text.num_attention_heads,
            "kv_heads": text.num_key_value_heads,
            "head_dim": text.hidden_size // text.num_attention_heads,
            "ffn": text.intermediate_size, "vocab": text.vocab_size,
            "layers": text.num_hidden_layers, "max_positions": text.max_position_embeddings,
            "window": 0}
    vcfg = cfg.vision_config
    facts = {**head, "vision": {"layers": vcfg.depth, "hidden": vcfg.hidden_size,
                                "heads": vcfg.num_heads, "ffn": vcfg.intermediate_size,
                                "patch": vcfg.patch_size, "window_px": vcfg.window_size,
                                "full_attention_blocks": list(vcfg.fullatt_block_indexes)}}
    stacks = {"model.visual.blocks": "vision", "model.language_model.layers": "language"}
    kwarg = cache_kwarg(model)
    if phase == "decode":
        def make_decode() -> dict[str, Any]:
            return {"input_ids": _ids(batch, seq_len),
                    "position_ids": _ids(batch, seq_len).expand(3, batch, seq_len),
                    kwarg: _past(batch, kv_len, head["layers"], head["kv_heads"],
                                 head["head_dim"], dtype),
                    "use_cache": True}
        return Prepared(model, make_decode, lambda inputs: model(**inputs), config=facts,
                        stack_names=stacks)

    layout = rule.layout(image, frames)
    h_px, w_px = layout.image
    rows, cols = images.qwen25vl_grid(h_px, w_px)
    per_image = rows * cols
    patches = batch * per_image
    unit = vcfg.spatial_merge_size ** 2
    windows = [(size, count * batch) for size, count in
               images.qwen25vl_windows(h_px, w_px, vcfg.window_size).items()]
    full = [(per_image, batch)]
    for blk in model.model.visual.blocks:
        blk.attn.forward = types.MethodType(_windowed_attention, blk.attn)
    patch_dim = vcfg.in_channels * vcfg.temporal_patch_size * vcfg.patch_size ** 2
    prefix, visual = layout.text_prefix, layout.visual

    def make() -> dict[str, Any]:
        def longs(*shape: int) -> torch.Tensor:
            return torch.zeros(*shape, dtype=torch.long, device="meta")
        return {"pixel_values": torch.zeros(patches, patch_dim, dtype=dtype, device="meta"),
                "vision_position_ids": longs(patches, 2),  # (row, column) of each patch
                "window_index": longs(patches // unit),
                "reverse_index": longs(patches // unit),
                "prefix_ids": _ids(batch, prefix),
                "question_ids": _ids(batch, seq_len - prefix - visual),
                "position_ids": longs(3, batch, seq_len)}  # M-RoPE: time, height, width

    def run(inputs: dict[str, Any]) -> Any:
        tower = model.model.visual
        x = tower.patch_embed(inputs["pixel_values"])
        x = tower.permute_input_for_window_attn(x, inputs["window_index"], seq_len=patches)
        cos, sin = tower.rotary_pos_emb(x, inputs["vision_position_ids"])
        pe = tuple(tower.permute_input_for_window_attn(f, inputs["window_index"],
                                                       seq_len=patches) for f in (cos, sin))
        for i, blk in enumerate(tower.blocks):
            x = blk(x, cu_seqlens=full if i in tower.fullatt_block_indexes else windows,
                    position_embeddings=pe)
        merged = tower.merger(x)[inputs["reverse_index"]]
        embed = model.model.get_input_embeddings()
        embeds = torch.cat([embed(inputs["prefix_ids"]), merged.reshape(batch, visual, -1),
                            embed(inputs["question_ids"])], dim=1)
        return model(inputs_embeds=embeds, position_ids=inputs["position_ids"], use_cache=True)

    return Prepared(model, make, run, segments=layout.segments(seq_len), config=facts,
                    stack_names=stacks)
