"""LLaVA-OneVision's visual-token counts, without torch: AnyRes tiles and video frames.

LLaVA-OneVision (Li et al., "LLaVA-OneVision: Easy Visual Task Transfer", arXiv
2408.03326, Sec. 3 "Higher AnyRes") encodes an image as the whole image resized to
the vision tower's square (the *base* view) plus an ``a x b`` grid of crops of that
size, and gives the language model ``L = (a·b + 1)·T`` visual tokens, ``T`` per crop;
when ``L`` exceeds a threshold the crops' tokens are reduced by bilinear
interpolation. Hugging Face's implementation (transformers 5.x,
``models/llava_onevision``) fixes every detail, and this module reproduces it step
by step with plain integers so that the simulator knows an image's token count
without torch:

1. **Grid** (``select_best_resolution``, ``image_processing_utils.py``): among the
   config's ``image_grid_pinpoints`` (36 resolutions, 384 to 2304 px in steps of 384,
   in ``(height, width)``), the one that keeps the most of the image's pixels when
   the image is scaled to fit it, ties broken by the least wasted area. The image is
   resized into it (aspect kept, padded) and cut into ``(H/384) x (W/384)`` crops,
   each encoded by the vision tower like the base view: **tiles = crops + 1**
   (``image_size_to_num_patches``, ``modeling_llava_onevision.py``).
2. **Features**: SigLIP so400m/14 at 384 px gives ``27 x 27 = 729`` tokens per tile
   (``vision_feature_select_strategy: full``: no CLS to drop). The crops' features
   are laid out as one ``27·a x 27·b`` map.
3. **Unpadding** (``unpad_image``): the rows (or columns) that only hold the resize
   padding are cut off, ``padding = (current - round(original·scale)) // 2`` from
   each side.
4. **anyres_max_9** (``LlavaOnevisionModel.pack_image_features``): with
   ``ratio = sqrt(h·w / (9·27²))``, a map with ``ratio > 1.1`` is resized
   bilinearly to ``int(h // ratio) x int(w // ratio)``, so the crops keep about
   nine crops' worth of tokens however large the image.
5. **Newlines**: one ``image_newline`` embedding after each row of the map.

So an image gives ``729 + h·w + h`` visual tokens (base + map + newlines), the
count ``LlavaOnevisionProcessor._get_number_of_features`` returns. A **video**
(``get_video_features`` / ``apply_pooling``): every frame is one tile through the
tower (729 tokens), the projector, then a 2x2 bilinear downscale of the
``27 x 27`` map to ``ceil(27/2) = 14`` per side, **196 tokens per frame**, and one
``image_newline`` after the last frame: ``196·frames + 1`` tokens
(``LlavaOnevisionProcessor.replace_video_token``).

The largest count an image can reach is :func:`max_image_tokens`; the issue's
"2,880" is LLaVA-NeXT's figure (CLIP-L/14 at 336 px: 576 tokens per tile, a grid of
at most 2x2 crops plus the base view, 5 x 576), not OneVision's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

# llava-hf/llava-onevision-qwen2-7b-ov-hf, config.json ``vision_aspect_ratio``
DEFAULT_ASPECT = "anyres_max_9"
# The same config.json's ``image_grid_pinpoints`` (also transformers'
# LlavaOnevisionConfig default, shared by the 0.5B, 7B and 72B checkpoints): every
# (height, width) from 384 to 2304 px in steps of 384, 1x1 to 6x6 crops.
PINPOINTS: tuple[tuple[int, int], ...] = tuple(
    (h, w) for h in range(384, 2305, 384) for w in range(384, 2305, 384))
# vision_config image_size and patch_size: SigLIP so400m/14 at 384 px
TILE_PX = 384
PATCH_PX = 14
# ratio above which pack_image_features downscales the crops' map
# (modeling_llava_onevision.py: ``if ratio > 1.1``)
REDUCE_ABOVE = 1.1


@dataclass(frozen=True)
class ImagePlan:
    """How one image becomes visual tokens (every count the graph depends on)."""

    height: int  # the image as given, pixels
    width: int
    grid: tuple[int, int]  # best resolution from the pinpoints, (height, width) pixels
    crops: tuple[int, int]  # crops per column and per row: grid / tile size
    side: int  # tokens per tile side (27)
    unpadded: tuple[int, int]  # the crops' token map after unpadding, (rows, cols)
    reduced: tuple[int, int]  # after the anyres_max reduction (= unpadded if none)

    @property
    def tiles(self) -> int:
        """Tiles through the vision tower: the crops and the base view."""
        return self.crops[0] * self.crops[1] + 1

    @property
    def base_tokens(self) -> int:
        return self.side * self.side

    @property
    def map_tokens(self) -> int:
        return self.reduced[0] * self.reduced[1]

    @property
    def newline_tokens(self) -> int:
        return self.reduced[0]

    @property
    def tokens(self) -> int:
        """Visual tokens the language model reads: base + map + one newline per row."""
        return self.base_tokens + self.map_tokens + self.newline_tokens

    @property
    def is_reduced(self) -> bool:
        return self.reduced != self.unpadded


def select_best_resolution(height: int, width: int,
                           pinpoints: Sequence[Sequence[int]]) -> tuple[int, int]:
    """The pinpoint ``(height, width)`` that keeps the most of the image's pixels when
    the image is scaled to fit it, ties broken by the least wasted area (Hugging Face
    ``image_processing_utils.select_best_resolution``, same arithmetic)."""
    best = None
    max_effective, min_wasted = 0, float("inf")
    for h, w in pinpoints:
        scale = min(w / width, h / height)
        down_w, down_h = int(width * scale), int(height * scale)
        effective = min(down_w * down_h, width * height)
        wasted = w * h - effective
        if effective > max_effective or (effective == max_effective and wasted < min_wasted):
            max_effective, min_wasted = effective, wasted
            best = (int(h), int(w))
    if best is None:
        raise ValueError("image_grid_pinpoints is empty")
    return best


def unpad(height: int, width: int, rows: int, cols: int) -> tuple[int, int]:
    """The ``rows x cols`` feature map of a padded resize of a ``height x width`` image,
    with the padding cut off (``unpad_image``: the padded side loses
    ``(current - round(original·scale, 7)) // 2`` from each end)."""
    if width / height > cols / rows:
        new_rows = int(round(height * (cols / width), 7))
        return rows - 2 * ((rows - new_rows) // 2), cols
    new_cols = int(round(width * (rows / height), 7))
    return rows, cols - 2 * ((cols - new_cols) // 2)


def max_crops(aspect: str) -> int:
    """9 for ``anyres_max_9`` (``int(vision_aspect_ratio.strip("anyres_max_"))``)."""
    if not aspect.startswith("anyres_max_"):
        raise ValueError(f"vision_aspect_ratio {aspect!r} is not anyres_max_N")
    return int(aspect[len("anyres_max_"):])


def reduce(rows: int, cols: int, side: int, aspect: str = DEFAULT_ASPECT) -> tuple[int, int]:
    """The map after the anyres_max reduction: unchanged unless
    ``sqrt(rows·cols / (N·side²)) > 1.1``, else ``int(rows // r) x int(cols // r)``."""
    ratio = math.sqrt(rows * cols / (max_crops(aspect) * side ** 2))
    if ratio > REDUCE_ABOVE:
        return int(rows // ratio), int(cols // ratio)
    return rows, cols


def plan_image(height: int, width: int, *, pinpoints: Sequence[Sequence[int]] = PINPOINTS,
               tile: int = TILE_PX, patch: int = PATCH_PX,
               aspect: str = DEFAULT_ASPECT) -> ImagePlan:
    """Every count of an image of ``height x width`` pixels (see the module docstring)."""
    if height < 1 or width < 1:
        raise ValueError(f"image must be at least 1x1 pixels, got {height}x{width}")
    side = tile // patch
    gh, gw = select_best_resolution(height, width, pinpoints)
    crops = (gh // tile, gw // tile)
    rows, cols = unpad(height, width, crops[0] * side, crops[1] * side)
    reduced = reduce(rows, cols, side, aspect)
    return ImagePlan(height, width, (gh, gw), crops, side, (rows, cols), reduced)


def video_tokens_per_frame(tile: int = TILE_PX, patch: int = PATCH_PX) -> int:
    """Tokens of one video frame: the ``side x side`` map pooled 2x2 by bilinear
    interpolation to ``ceil(side/2)`` per side (``apply_pooling``): 14² = 196."""
    pooled = math.ceil((tile // patch) / 2)
    return pooled * pooled


def video_tokens(frames: int, tile: int = TILE_PX, patch: int = PATCH_PX) -> int:
    """Visual tokens of a video of ``frames`` frames: 196 per frame and one newline."""
    if frames < 1:
        raise ValueError(f"a video needs at least one frame, got {frames}")
    return frames * video_tokens_per_frame(tile, patch) + 1


def config_geometry(config: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers the counts need, from a LLaVA-OneVision ``config.json`` dict (the
    defaults of transformers' LlavaOnevisionConfig where it states none)."""
    vision = config.get("vision_config") or {}
    pins = config.get("image_grid_pinpoints") or PINPOINTS
    return {"pinpoints": [tuple(p) for p in pins],
            "tile": int(vision.get("image_size", TILE_PX)),
            "patch": int(vision.get("patch_size", PATCH_PX)),
            "aspect": str(config.get("vision_aspect_ratio", DEFAULT_ASPECT))}


def is_default_geometry(config: Mapping[str, Any]) -> bool:
    """Whether a config tiles images as the shipped LLaVA-OneVision configs do (the
    torch-free rule, :data:`hwsim.trace.images.RULES`, counts with those numbers)."""
    geo = config_geometry(config)
    return (geo["pinpoints"] == list(PINPOINTS) and geo["tile"] == TILE_PX
            and geo["patch"] == PATCH_PX and geo["aspect"] == DEFAULT_ASPECT)


def max_image_tokens(pinpoints: Sequence[Sequence[int]] = PINPOINTS, tile: int = TILE_PX,
                     patch: int = PATCH_PX,
                     aspect: str = DEFAULT_ASPECT) -> tuple[int, tuple[int, int]]:
    """The most visual tokens one image can give, and an image size (height, width)
    that gives it.

    The count depends on the image only through its grid and its unpadded map. For
    every pinpoint grid and every map it can leave (all its rows with fewer columns,
    or all its columns with fewer rows), the images of that aspect ratio at the
    grid's own size (and a pixel either side) are planned with :func:`plan_image`;
    only counts an actual image reaches are kept."""
    side = tile // patch
    best = (0, (0, 0))
    for gh, gw in pinpoints:
        rows, cols = gh // tile * side, gw // tile * side
        sizes = set()
        for r in range(1, rows + 1):
            sizes |= {(max(1, r * gh // rows + d), gw) for d in (-1, 0, 1)}
        for c in range(1, cols + 1):
            sizes |= {(gh, max(1, c * gw // cols + d)) for d in (-1, 0, 1)}
        for h, w in sorted(sizes):
            n = plan_image(h, w, pinpoints=pinpoints, tile=tile, patch=patch,
                           aspect=aspect).tokens
            if n > best[0]:
                best = (n, (h, w))
    return best
