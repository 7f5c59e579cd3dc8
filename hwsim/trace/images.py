"""Images and video frames of a vision-language model, without torch.

A vision-language model's graph depends on the image it reads: Qwen2.5-VL
turns a 1920x1080 photo into 2,691 language-model tokens and a 448x448 one into
256, and its vision tower's attention follows the image's shape. A workload
states the image it simulates (``image: {height: H, width: W}``, in pixels,
the image as given to the processor) and, for a model that reads video,
``frames: N``. This module holds what hwsim knows about each model's
*preprocessing* in plain Python, so that the workload loader, the CLI and the
reports can check an image and count its visual tokens on a machine without
torch; :mod:`hwsim.trace.zoo` builds the graph for the same image.

Each vision-language architecture has a :class:`VisionInputs` rule in
:data:`RULES`, keyed by the zoo family (``llava``: LLaVA-1.5) or the config's
``model_type`` (``qwen2_5_vl``). A rule says

* the **default image** (used when a workload gives none) and where it comes from;
* how the processor **resizes** an image (:meth:`VisionInputs.canonical`): two
  images the processor resizes to the same size are the same graph, so
  templates are keyed by the resized size;
* how many **visual tokens** the language model reads
  (:meth:`VisionInputs.layout`), after a fixed **text prefix** (the chat
  template's tokens before the image); the question follows the visual tokens.

``seq_len`` of a vision-language prefill is the language model's whole
sequence, ``text prefix + visual tokens + question``, as the KV cache, the
segments and the pruning methods see it; the smallest is the text prefix plus
the visual tokens (an empty question). A workload may give ``text_len`` (the
prefix and the question) instead, and the loader adds the visual tokens of its
image. A decode step is one language-model step over the cache: its graph does
not depend on the image.

Templates (:mod:`hwsim.trace.template`) are fitted per resized image: the
shipped ``traces/{model}.{phase}.json.gz`` is the model's default image, and
another image's template is ``{model}.{phase}.{tag}.json.gz`` (:func:`tag`:
``1092x1932``, or ``384x384-f8`` with 8 frames), shipped or traced once into
the trace cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from . import anyres

# Bounds of a workload's image and frames: far beyond any processor's limits
# (Qwen2.5-VL's max_pixels is 12,845,056, e.g. 3584x3584), small enough that a
# typo (an extra zero) is caught rather than traced.
MAX_SIDE_PX = 65536
MAX_FRAMES = 4096


@dataclass(frozen=True)
class Layout:
    """Where the image lands in the language model's sequence."""

    text_prefix: int  # tokens before the visual ones (the chat template's)
    visual: int  # visual tokens the language model reads
    image: tuple[int, int]  # (height, width) px after the processor's resize
    frames: int  # video frames (0: a still image)
    detail: str = ""  # how the count was made, for messages and reports

    @property
    def min_seq_len(self) -> int:
        """The shortest prefill: the prefix and the visual tokens, an empty question."""
        return self.text_prefix + self.visual

    def segments(self, seq_len: int) -> dict[str, list[int]]:
        """``text``, ``visual`` and ``question`` token ranges of a ``seq_len`` prefill."""
        end = self.min_seq_len
        return {"text": [0, self.text_prefix], "visual": [self.text_prefix, end],
                "question": [end, seq_len]}


@dataclass(frozen=True)
class VisionInputs:
    """One architecture's image (and video) preprocessing, as hwsim models it.

    ``resize(height, width, frames)`` returns the processed size, or raises
    ``ValueError`` with the processor's reason (an aspect ratio it refuses);
    ``count(height, width, frames)`` the visual tokens of a *processed* image.
    """

    name: str  # the model family, for messages
    default_image: tuple[int, int]  # (height, width) px
    default_source: str  # why this default
    text_prefix: int  # language-model tokens before the image
    prefix_source: str
    takes_frames: bool  # reads video (frames: N)
    resize: Callable[[int, int, int], tuple[int, int]]
    count: Callable[[int, int, int], int]
    count_source: str
    fixed_size: bool = False  # every image is resized to one size: the graph ignores it

    def canonical(self, image: tuple[int, int] | None, frames: int = 0) -> tuple[int, int]:
        """The processed (height, width) of ``image`` (default: the rule's default)."""
        h, w = image or self.default_image
        return self.resize(h, w, frames)

    def layout(self, image: tuple[int, int] | None = None, frames: int = 0) -> Layout:
        """The visual tokens of ``image`` with ``frames`` frames (0: a still image)."""
        h, w = self.canonical(image, frames)
        n = self.count(h, w, frames)
        return Layout(self.text_prefix, n, (h, w), frames,
                      f"{self.name} resizes it to {h}x{w} px: {n:,} visual tokens "
                      f"({self.count_source})")

    def is_default(self, image: tuple[int, int] | None, frames: int = 0) -> bool:
        """Whether ``image``/``frames`` make the default image's graph."""
        if self.fixed_size:
            return True
        return frames == 0 and self.canonical(image) == self.canonical(None)

    def check(self, image: tuple[int, int] | None, frames: int) -> str | None:
        """Why this model cannot read ``image``/``frames`` (None when it can)."""
        if frames and not self.takes_frames:
            return f"{self.name} in hwsim reads a still image, not video frames"
        try:
            self.canonical(image, frames)
        except ValueError as e:
            return str(e)
        return None


def tag(rule: VisionInputs, image: tuple[int, int] | None, frames: int = 0) -> str:
    """The file tag of a template for this image: ``""`` for the default image's,
    else the processed size (``1092x1932``; ``-f8`` added for 8 frames)."""
    if rule.is_default(image, frames):
        return ""
    h, w = rule.canonical(image, frames)
    return f"{h}x{w}" + (f"-f{frames}" if frames else "")


def image_of(value: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """A workload's ``image`` mapping as ``(height, width)``; None when empty."""
    if not value:
        return None
    return int(value["height"]), int(value["width"])


# ---------------------------------------------------------------------- LLaVA-1.5
def _llava15_resize(height: int, width: int, frames: int) -> tuple[int, int]:
    # CLIPImageProcessor of llava-hf/llava-1.5-7b-hf (preprocessor_config.json):
    # resize the shortest edge to 336, then center-crop 336x336: every image is 336x336.
    return (336, 336)


LLAVA_15 = VisionInputs(
    name="LLaVA-1.5", default_image=(336, 336),
    default_source="the CLIP ViT-L/14-336 input: every image is resized and center-cropped "
                   "to 336x336 (llava-hf/llava-1.5-7b-hf preprocessor_config.json: "
                   "shortest_edge 336, crop_size 336)",
    text_prefix=35, prefix_source="LLaVA-1.5's conversation template before <image> "
                                  "(system prompt and 'USER:'), 35 Llama tokens",
    takes_frames=False, resize=_llava15_resize,
    count=lambda h, w, f: (h // 14) * (w // 14),
    count_source="(336/14)^2 = 576 CLIP patches, the CLS token dropped", fixed_size=True)


# ---------------------------------------------------------------------- Qwen2.5-VL
# Qwen/Qwen2.5-VL-7B-Instruct preprocessor_config.json on the Hugging Face hub:
# patch_size 14, merge_size 2, temporal_patch_size 2, min_pixels 3136 (56x56),
# max_pixels 12845056 (3584x3584).
QWEN25VL_PATCH = 14
QWEN25VL_MERGE = 2
QWEN25VL_TEMPORAL_PATCH = 2
QWEN25VL_MIN_PIXELS = 3136
QWEN25VL_MAX_PIXELS = 12845056


def smart_resize(height: int, width: int, factor: int = QWEN25VL_PATCH * QWEN25VL_MERGE,
                 min_pixels: int = QWEN25VL_MIN_PIXELS,
                 max_pixels: int = QWEN25VL_MAX_PIXELS) -> tuple[int, int]:
    """Qwen2-VL's and Qwen2.5-VL's image resize: both sides a multiple of ``factor``
    (patch 14 x merge 2 = 28 px), the area within ``[min_pixels, max_pixels]``,
    the aspect ratio kept as closely as possible.

    The rule of ``smart_resize`` in transformers'
    ``models/qwen2_vl/image_processing_qwen2_vl.py`` (the image processor
    Qwen2.5-VL's preprocessor_config.json names, Qwen2VLImageProcessor): round
    each side to the nearest multiple of ``factor`` (Python's ``round``, halves
    to even); if the area then exceeds ``max_pixels``, scale both sides by
    ``sqrt(h*w / max_pixels)`` and round *down*; if it falls short of
    ``min_pixels``, scale by ``sqrt(min_pixels / (h*w))`` and round *up*. An
    aspect ratio above 200 is refused (``ValueError``), as the processor does.
    """
    if min(height, width) < 1:
        raise ValueError(f"an image needs positive sides, got {height}x{width}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"Qwen2.5-VL's image processor refuses an aspect ratio above 200, "
                         f"got {height}x{width} ({max(height, width) / min(height, width):.0f})")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def qwen25vl_grid(height: int, width: int) -> tuple[int, int]:
    """Patches (rows, columns) of a *resized* Qwen2.5-VL image: 14 px each."""
    return height // QWEN25VL_PATCH, width // QWEN25VL_PATCH


def qwen25vl_windows(height: int, width: int, window_px: int = 112) -> dict[int, int]:
    """The attention windows of a *resized* Qwen2.5-VL image: {patches in a window:
    windows of that size}, largest first.

    The vision tower's windowed blocks attend within windows of ``window_px``
    (``window_size: 112`` in the config.json's vision_config) = 112 / 2 / 14 = 4x4
    merged tokens = 8x8 = 64 patches, tiled from the top-left corner; the windows
    at the bottom and right edges hold what is left (transformers'
    ``get_vision_window_index``: the grid is padded to whole windows and the
    padding dropped, so an edge window is smaller, never padded). A 1092x1932
    image (39x69 merged tokens) has 9x17 = 153 windows of 64 patches, 17 of 48
    (3 rows of 4), 9 of 16 (4 rows of 1) and one of 12: 10,764 patches.
    """
    side = window_px // QWEN25VL_MERGE // QWEN25VL_PATCH  # merged tokens per window side
    rows, cols = (n // QWEN25VL_MERGE for n in qwen25vl_grid(height, width))
    out: dict[int, int] = {}
    for r in range(0, rows, side):
        for c in range(0, cols, side):
            n = min(side, rows - r) * min(side, cols - c) * QWEN25VL_MERGE ** 2
            out[n] = out.get(n, 0) + 1
    return dict(sorted(out.items(), reverse=True))


def _qwen25vl_count(height: int, width: int, frames: int) -> int:
    rows, cols = qwen25vl_grid(height, width)
    return (rows // QWEN25VL_MERGE) * (cols // QWEN25VL_MERGE)  # 2x2 patches -> one token


QWEN25_VL = VisionInputs(
    name="Qwen2.5-VL", default_image=(1080, 1920),
    default_source="a Full HD (1920x1080, ITU-R BT.709) landscape image, the size of "
                   "issue 12's example: smart_resize makes it 1092x1932 px, 39x69 = 2,691 "
                   "visual tokens",
    # The chat template of Qwen/Qwen2.5-VL-7B-Instruct (chat_template.json) before the
    # image: <|im_start|> system \n You are a helpful assistant . <|im_end|> \n
    # <|im_start|> user \n <|vision_start|> = 15 tokens of its Qwen2 tokenizer (the
    # default system prompt is added when the conversation has none).
    text_prefix=15, prefix_source="the chat template's default system turn and the user "
                                  "turn up to <|vision_start|>: 15 tokens",
    takes_frames=False,
    resize=lambda h, w, f: smart_resize(h, w),
    count=_qwen25vl_count,
    count_source="patches of 14 px, 2x2 patches merged into one token")


# ---------------------------------------------------------------------- LLaVA-OneVision
def _onevision_resize(height: int, width: int, frames: int) -> tuple[int, int]:
    # AnyRes keeps the image's own size: its grid, unpadding and reduction all follow
    # the size as given (hwsim.trace.anyres). Video frames are resized to the tower's
    # 384x384 (LlavaOnevisionVideoProcessor's size), whatever their size.
    if min(height, width) < 1:
        raise ValueError(f"an image needs positive sides, got {height}x{width}")
    return (anyres.TILE_PX, anyres.TILE_PX) if frames else (height, width)


def _onevision_count(height: int, width: int, frames: int) -> int:
    if frames:
        return anyres.video_tokens(frames)
    return anyres.plan_image(height, width).tokens


LLAVA_ONEVISION = VisionInputs(
    name="LLaVA-OneVision", default_image=(899, 1024),
    default_source="the LLaVA radar chart (llava_v1_5_radar.jpg, 899x1024 px) that the model "
                   "card's example and transformers' convert_llava_onevision_weights_to_hf.py "
                   "run (image_sizes [[899, 1024]]): a 3x3 crop grid, 6,551 visual tokens",
    # <|im_start|> system \n You are a helpful assistant . <|im_end|> \n <|im_start|> user
    # \n: the prompt the conversion script checks the model with, before <image>; 14
    # tokens of Qwen2's tokenizer (each special token one id).
    text_prefix=14, prefix_source="the default system turn and the user turn before <image> "
                                  "(Qwen2 chat format): 14 tokens",
    takes_frames=True, resize=_onevision_resize, count=_onevision_count,
    count_source="AnyRes: 729 base + the crops' unpadded map (anyres_max_9) + a newline per "
                 "row; video: 196 per frame + 1")


# The rules by zoo family or config model_type.
RULES: dict[str, VisionInputs] = {
    "llava": LLAVA_15,
    "qwen2_5_vl": QWEN25_VL,
    "llava_onevision": LLAVA_ONEVISION,
}


def rule_for_config(config: Mapping[str, Any]) -> VisionInputs | None:
    """The rule of a ``config.json`` dict (by ``model_type``), or None."""
    return RULES.get(str(config.get("model_type", "")))
