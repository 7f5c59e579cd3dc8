"""Data types and their sizes.

hwsim names data types the way papers do (``fp16``, ``bf16``, ``int8``), not the
way a framework does. Sizes are in bits so that sub-byte widths (``int4``, and
the 6- and 12-bit fixed-point words of SpAtten) are exact.

A *compressed storage format* is a dtype too, so that every byte count (what an op
reads, what a cache holds) follows it without a change to the ops: ``bitmapV@B`` is a
tensor of V-bit values stored in a bitmap-compressed sparse format (Mustafar's KV
cache: :mod:`hwsim.pruning.kv`) taking B bits per element of the dense tensor on
average, bitmap, tile offsets and padding included (B may be fractional: 7.5 is a
70 %-sparse fp16 row). :func:`bitmap_format` reads V and B back; arithmetic on such a
tensor runs on its V-bit values once a kernel has expanded them.
"""

from __future__ import annotations

import math

DTYPE_BITS: dict[str, int] = {
    "fp64": 64,
    "fp32": 32,
    "tf32": 32,
    "fp16": 16,
    "bf16": 16,
    "fp8": 8,
    "int64": 64,
    "int32": 32,
    "int16": 16,
    "int8": 8,
    "uint8": 8,
    "int4": 4,
    "bool": 8,  # stored one per byte, as PyTorch does
}


BITMAP = "bitmap"  # prefix of the bitmap-compressed storage formats (``bitmap16@7.5``)


def bitmap_dtype(value_bits: int, bits_per_element: float) -> str:
    """The name of a bitmap-compressed format of ``value_bits``-bit values taking
    ``bits_per_element`` bits per dense element (``repr`` keeps the float exact)."""
    return f"{BITMAP}{int(value_bits)}@{float(bits_per_element)!r}"


def bitmap_format(dtype: str) -> tuple[int, float] | None:
    """(value bits, bits per dense element) of a ``bitmapV@B`` dtype, else None."""
    if not dtype.startswith(BITMAP) or "@" not in dtype:
        return None
    head, _, tail = dtype[len(BITMAP):].partition("@")
    try:
        value_bits, bits = int(head), float(tail)
    except ValueError:
        return None
    if value_bits <= 0 or not 0 < bits <= 64:
        return None
    return value_bits, bits


def dtype_bits(dtype: str) -> float:
    """Bits per element of ``dtype``. ``fixN``/``intN`` widths are accepted too, and
    the bitmap-compressed formats (``bitmap16@7.5``: a fractional average)."""
    try:
        return DTYPE_BITS[dtype]
    except KeyError:
        pass
    fmt = bitmap_format(dtype)
    if fmt is not None:
        return int(fmt[1]) if fmt[1].is_integer() else fmt[1]
    for prefix in ("fix", "int", "uint"):
        if dtype.startswith(prefix) and dtype[len(prefix):].isdigit():
            return int(dtype[len(prefix):])
    raise ValueError(f"unknown dtype {dtype!r} (known: {', '.join(DTYPE_BITS)})")


def nbytes(numel: int, dtype: str) -> int:
    """Bytes taken by ``numel`` elements of ``dtype`` (rounded up to a byte)."""
    return math.ceil(numel * dtype_bits(dtype) / 8)


def is_known(dtype: str) -> bool:
    try:
        dtype_bits(dtype)
    except ValueError:
        return False
    return True
