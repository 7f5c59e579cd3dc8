"""Shared-memory bank conflicts of the m8n8k4 operand loads, counted from addresses.

Volta's shared memory has 32 banks of 4 bytes; a warp's load is served in
*wavefronts* of at most one 4-byte word per bank (threads reading the same word
share it). A 64-bit load is split into two half-warp phases, a 128-bit load
into four quarter-warp phases, so a conflict-free load of 8 bytes per thread
takes two wavefronts. Whenever several distinct words of a phase fall in the
same bank the phase takes as many wavefronts as the most loaded bank has words.

Volta has no ``ldmatrix``: the operands of ``mma.m8n8k4`` are loaded from shared
memory with plain loads. For the A operand (row-major, ``.row``) lane ``l``
holds four consecutive halves of row ``(l % 4) + 4 * (l >= 16)`` of the 8x4
matrix of its *quad pair* ``(l // 4) % 4`` (PTX ISA, mma.m8n8k4 fragment
layout); the B operand of ``Q·Kᵀ`` (``.col``, a row of K) is laid out the same
way. A warp tile arranges its four quad pairs 2x2 over a 16x16 output, so one
load touches 16 rows, four consecutive halves each.

Where those rows sit decides the conflicts:

- ``row``: rows of ``head_dim`` halves back to back. With a row stride that is a
  multiple of 128 B every row starts in bank 0, and the 8 rows of a phase are an
  8-way conflict.
- ``padded``: 8 halves (16 B) of padding per row, the usual fix for ``ldmatrix``
  on later GPUs. Rows ``r`` and ``r + 8`` then still share a bank, and the quad
  pairs of a 2x2 warp tile read exactly such rows: a 2-way conflict.
- ``permuted``: FastAttention's redesigned layout for m8n8k4; modelled as an
  XOR swizzle of the 8-byte chunks of a row with the row index, so the 16 rows of
  a load fall in 16 different bank pairs: conflict-free.
"""

from __future__ import annotations

import functools

BANKS = 32
WORD = 4
HALF = 2


def m8n8k4_row(lane: int) -> int:
    """Row (0..15) of a 2x2 quad-pair warp tile that ``lane`` loads its A fragment from."""
    quad_pair = (lane >> 2) & 3
    return (lane & 3) + 4 * (lane >> 4) + 8 * (quad_pair & 1)


def address(layout: str, row: int, col: int, row_elems: int) -> int:
    """Byte address of half ``col`` of ``row`` in a tile of ``row_elems`` halves per row."""
    row_bytes = row_elems * HALF
    if layout == "row":
        return row * row_bytes + col * HALF
    if layout == "padded":
        return row * (row_bytes + 16) + col * HALF
    if layout == "permuted":
        chunks = max(1, row_bytes // 8)
        chunk = (col * HALF) // 8
        swizzled = (chunk ^ (row % 16)) % chunks
        return row * row_bytes + swizzled * 8 + (col * HALF) % 8
    raise ValueError(f"unknown shared-memory layout {layout!r}")


def wavefronts(addresses: list[int], width: int) -> int:
    """Wavefronts a warp load of ``width`` bytes per lane at ``addresses`` takes."""
    per_phase = max(1, min(32, (BANKS * WORD) // width))
    total = 0
    for p in range(0, len(addresses), per_phase):
        words: dict[int, set[int]] = {}
        for a in addresses[p:p + per_phase]:
            for w in range(a // WORD, (a + width - 1) // WORD + 1):
                words.setdefault(w % BANKS, set()).add(w)
        total += max(len(s) for s in words.values())
    return total


@functools.lru_cache(maxsize=None)
def conflict_factor(layout: str, row_elems: int, width: int = 8) -> float:
    """Wavefronts of one m8n8k4 fragment load over the conflict-free minimum,
    averaged over the k positions of a row."""
    ks = range(0, max(4, row_elems), 4)
    ratios = []
    for k0 in ks:
        addrs = [address(layout, m8n8k4_row(lane), k0, row_elems) for lane in range(32)]
        ideal = wavefronts([i * width for i in range(32)], width)
        ratios.append(wavefronts(addrs, width) / ideal)
    return sum(ratios) / len(ratios)
