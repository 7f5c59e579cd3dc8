"""A small user model for the tracer's factory tests (``_user_models:factory``).

Two pre-norm transformer blocks with a hand-written attention (``q @ kᵀ / √d``,
softmax, ``@ v``), a token-pruning step between them (scores by norm, top-k,
gather) and an in-place scaling, so the factory path exercises the eager
attention fusion, ``topk``, ``gather``, reductions and in-place versioning.
"""

from __future__ import annotations

import math

import torch
from torch import nn

VOCAB, DIM, HEADS, TOKENS, KEEP = 100, 64, 4, 16, 8


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(DIM)
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.proj = nn.Linear(DIM, DIM)
        self.norm2 = nn.LayerNorm(DIM)
        self.fc1 = nn.Linear(DIM, 4 * DIM)
        self.fc2 = nn.Linear(4 * DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, s, HEADS, DIM // HEADS).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(DIM // HEADS)
        attn = torch.softmax(scores, dim=-1) @ v
        x = x + self.proj(attn.transpose(1, 2).reshape(b, s, DIM))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class TinyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(DIM, VOCAB, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(input_ids)
        x = self.blocks[0](x)
        keep = x.norm(dim=-1).topk(KEEP, dim=-1).indices
        x = torch.gather(x, 1, keep[..., None].expand(-1, -1, DIM))
        x.mul_(0.5)
        x = self.blocks[1](x)
        return self.head(x)


def factory() -> tuple[nn.Module, tuple[torch.Tensor]]:
    """A CPU model with real weights and a real input (positional)."""
    torch.manual_seed(0)
    return TinyModel(), (torch.randint(0, VOCAB, (2, TOKENS)),)


def factory_meta() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The same model on the meta device, with a keyword input."""
    with torch.device("meta"):
        model = TinyModel()
    return model, {"input_ids": torch.zeros(1, TOKENS, dtype=torch.long)}


def vit_224() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """ViT-B/16 (two blocks) at its native 224 x 224 pixels, as HF builds it."""
    from transformers import ViTConfig, ViTModel

    with torch.device("meta"):
        model = ViTModel(ViTConfig(num_hidden_layers=2), add_pooling_layer=False)
    return model, {"pixel_values": torch.zeros(1, 3, 224, 224)}


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.patch = nn.Conv2d(8, 16, 4, stride=4)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        x = self.patch(x)
        return self.fc(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


def cnn() -> tuple[nn.Module, tuple[torch.Tensor]]:
    """Convolutions: a padded 3x3 (im2col copies patches) and a 4x4/4 patchify."""
    return TinyCNN(), (torch.zeros(2, 3, 32, 32),)


class ValueDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.sum() > 0 else x


def value_dependent() -> tuple[nn.Module, tuple[torch.Tensor]]:
    """A forward that branches on a tensor's value: not traceable without data."""
    return ValueDependent(), (torch.ones(4),)


def not_a_factory() -> int:
    return 3
