"""Quantities with units, as people write them in YAML.

Inside hwsim every quantity is a plain SI number and its unit lives in the
field's name (``clock_hz``, ``dram_bw_bytes_per_s``, ``l1_bytes``). In YAML a
user may write either the number or a string with a unit::

    clock_hz: 1.8 GHz
    l1_bytes: 512 KiB
    dram_bw_bytes_per_s: 1.6 TB/s

:func:`parse_quantity` turns such a string into the SI number, checking that the
unit matches the field's suffix.
"""

from __future__ import annotations

import math
import re

_SI = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
       "m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15}
_BIN = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}

# field-name suffix -> accepted unit spellings (after the prefix)
_UNITS = {
    "_hz": ("Hz",),
    "_bytes": ("B", "byte", "bytes"),
    "_bytes_per_s": ("B/s", "Bps"),
    "_s": ("s",),
    "_w": ("W",),
    "_j": ("J",),
    "_pj": ("pJ",),
    "_flops_per_s": ("FLOP/s", "FLOPS", "flop/s"),
    "_transfers_per_s": ("T/s",),  # DDR4-2933: "2933 MT/s"
}

_RX = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµ/]*)\s*$")


def _suffix(field: str) -> str | None:
    for suf in sorted(_UNITS, key=len, reverse=True):
        if field.endswith(suf):
            return suf
    return None


def parse_quantity(value: object, field: str) -> float:
    """Return ``value`` as an SI float for the field named ``field``.

    Numbers pass through. Strings like ``"64 KiB"`` or ``"1.8 GHz"`` are parsed;
    the unit must agree with the field's suffix. Raises ``ValueError`` with a
    message naming what was expected.
    """
    number = _parse(value, field)
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {_short(value)}")
    return number


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _float(text_or_number) -> float:
    try:
        return float(text_or_number)
    except OverflowError:  # an integer past float's range (a 400-digit number)
        return math.inf


def _parse(value: object, field: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return _float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a number or a quantity string, got {_short(value)}")
    m = _RX.match(value)
    if not m:
        raise ValueError(f"expected a quantity like '64 KiB' or '1.8 GHz', got {_short(value)}")
    number, unit = _float(m.group(1)), m.group(2)
    if not unit:
        return number
    suf = _suffix(field)
    if suf is None:
        raise ValueError(f"field {field!r} takes a plain number, got {value!r}")
    if suf == "_pj" and unit == "pJ":
        return number
    for base in _UNITS[suf]:
        if unit.endswith(base):
            prefix = unit[: -len(base)]
            if prefix in _BIN:
                return number * _BIN[prefix]
            if prefix in _SI:
                return number * _SI[prefix]
    raise ValueError(f"unit of {value!r} does not fit field {field!r} "
                     f"(expected {' or '.join(_UNITS[suf])} with an optional prefix)")


# ---------------------------------------------------------------- display
# field-name ending -> the unit shown for it (``hwsim targets --fields``), longest first;
# a name with none of these is a count, a ratio or a choice
_DISPLAY = (
    ("_bytes_per_s", "B/s"), ("_flops_per_s", "FLOP/s"), ("_transfers_per_s", "T/s"),
    ("_pj_per_byte", "pJ/B"), ("_pj_per_bit", "pJ/bit"), ("_pj_per_flop", "pJ/FLOP"),
    ("_pj_per_op", "pJ/op"), ("_pj_per_cycle", "pJ/cycle"),
    ("_flops_per_cycle_per_sm", "FLOP/cycle/SM"), ("_ops_per_cycle_per_sm", "op/cycle/SM"),
    ("_macs_per_cycle", "MAC/cycle"), ("_bytes_per_cycle", "B/cycle"),
    ("_cycles_per_repeat", "cycles/repeat"), ("_cycles", "cycles"), ("_bytes_per_transfer", "B"),
    ("_hz", "Hz"), ("_bytes", "B"), ("_bits", "bit"), ("_tokens", "tokens"),
    ("_pj", "pJ"), ("_j", "J"), ("_w", "W"), ("_s", "s"),
)
# units that take SI prefixes when shown (a cycle count or pJ reads better plain)
_PREFIXED = {"B/s", "FLOP/s", "T/s", "Hz", "s", "W", "J"}


def unit_of(field: str) -> str:
    """The unit a field's name states ("" for a count, ratio or choice)."""
    for ending, unit in _DISPLAY:
        if field.endswith(ending) or field == ending[1:]:
            return unit
    return ""


def format_quantity(value: object, unit: str) -> str:
    """``value`` as people write it: ``900 GB/s``, ``64 KiB``, ``1.53 GHz``, ``4 us``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if value == 0:
        return f"0 {unit}".rstrip()
    if unit == "B" and value == int(value):
        for prefix in ("Ti", "Gi", "Mi", "Ki"):
            if value % _BIN[prefix] == 0:
                return f"{int(value // _BIN[prefix])} {prefix}B"
        return f"{int(value)} B"
    if unit in _PREFIXED:
        for prefix in ("P", "T", "G", "M", "k", "", "m", "u", "n", "p"):
            scale = 1.0 if prefix == "" else _SI[prefix]
            if abs(value) >= scale * (1 - 1e-12):
                return f"{value / scale:.4g} {prefix}{unit}"
        return f"{value:.4g} {unit}"
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return f"{text} {unit}".rstrip()
