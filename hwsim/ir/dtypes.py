"""Data types and their sizes.

hwsim names data types the way papers do (``fp16``, ``bf16``, ``int8``), not the
way a framework does. Sizes are in bits so that sub-byte widths (``int4``, and
the 6- and 12-bit fixed-point words of SpAtten) are exact.
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


def dtype_bits(dtype: str) -> int:
    """Bits per element of ``dtype``. ``fixN``/``intN`` widths are accepted too."""
    try:
        return DTYPE_BITS[dtype]
    except KeyError:
        pass
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
