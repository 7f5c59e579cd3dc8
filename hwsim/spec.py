"""Hardware specifications: frozen dataclasses loaded from YAML presets.

A target describes its machine with a frozen dataclass whose field names carry
their units (``clock_hz``, ``dram_bw_bytes_per_s``, ``l1_bytes``) and whose
``metadata["help"]`` says what the field means. A preset YAML looks like::

    target: roofline
    name: roofline-v100
    description: NVIDIA V100 SXM2 seen as a roofline
    spec:
      dram_bw_bytes_per_s: 900 GB/s     # V100 whitepaper (NVIDIA, 2017)
      peak_flops_per_s: {fp16: 125e12, fp32: 15.7e12}

:func:`build_spec` checks every field (unknown keys, missing values, wrong types,
units that do not fit the field, values out of range), collects all problems,
and raises one :class:`~hwsim.errors.InputError` naming the file and fields.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Mapping

from .errors import Collector
from .units import parse_quantity

# the range a spec number takes unless its field says otherwise. No machine quantity in
# SI units reaches 1e21 (a zettaflop per second, a zettabyte, a zettahertz) nor, when not
# zero, falls below 1e-15 (a femtosecond, a femtojoule); products of a few such numbers
# stay far inside a float's range, so no time or energy can overflow to infinity.
SPEC_MAXIMUM = 1e21
SPEC_SMALLEST = 1e-15
# a count (cores, channels, ways, trials, ...) is at most this (a million of a unit),
# unless its field says otherwise: loops over counts stay bounded
SPEC_MAX_COUNT = 1 << 20


# Fields renamed so that one quantity has one name on every target (issue 17: a sweep
# axis such as ``dram_bw_bytes_per_s`` then spans targets). An old name is refused with
# the new one in the message, never accepted beside it: two names for one field would
# let a file set both, and a sweep axis of the old name would silently not compare.
# old name -> (new name, what else changed or "")
RENAMED: dict[str, tuple[str, str]] = {
    "hbm_bw_bytes_per_s": ("dram_bw_bytes_per_s", ""),
    "hbm_peak_bw_bytes_per_s": ("dram_peak_bw_bytes_per_s", ""),
    "hbm_bytes": ("dram_bytes", ""),
    "hbm_pj_per_byte": ("dram_pj_per_byte", ""),
    "hbm_pj_per_bit": ("dram_pj_per_byte", "per byte now: 8 x the per-bit value"),
    "mte2_hbm_bytes_per_cycle": ("mte2_dram_bytes_per_cycle", ""),
    "dram_mts": ("dram_transfers_per_s", "the same number, transfers per second; "
                 "'2933 MT/s' is accepted"),
    "dram_channel_bytes": ("dram_channel_bytes_per_transfer", ""),
    "l1d_bytes": ("l1_bytes", ""),
    "l1d_ways": ("l1_ways", ""),
    "tdp_w": ("power_limit_w", ""),
    "board_power_w": ("power_limit_w", ""),
    "op_overhead_s": ("kernel_launch_s", ""),
    "core_static_w": ("core_static_power_w", ""),
    "uncore_static_w": ("uncore_static_power_w", ""),
    "tensor_flops_per_clock_per_sm": ("tensor_flops_per_cycle_per_sm", ""),
    "cuda_flops_per_clock_per_sm": ("cuda_flops_per_cycle_per_sm", ""),
    "sfu_ops_per_clock_per_sm": ("sfu_ops_per_cycle_per_sm", ""),
}


def renamed_message(old: str) -> str | None:
    """The one-line message for a field name that was renamed, or None."""
    if old not in RENAMED:
        return None
    new, note = RENAMED[old]
    return f"field `{old}` was renamed `{new}`" + (f" ({note})" if note else "")


def _default_maximum(name: str, hint: Any) -> float:
    if hint is int and not name.endswith("_bytes") and "seed" not in name:
        return SPEC_MAX_COUNT
    return SPEC_MAXIMUM


def spec_field(default: Any = dataclasses.MISSING, *, help: str, minimum: float | None = 0.0,
               choices: tuple[Any, ...] | None = None, maximum: float | None = None) -> Any:
    """A dataclass field with help text and a range check (``minimum`` and ``maximum``
    inclusive; the maximum defaults to :data:`SPEC_MAXIMUM`, or :data:`SPEC_MAX_COUNT`
    for a count)."""
    meta = {"help": help, "minimum": minimum, "choices": choices, "maximum": maximum}
    if isinstance(default, (dict, list)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


_HINTS: dict[type, dict[str, Any]] = {}  # a spec class's resolved annotations


def build_spec(cls: type, data: Mapping[str, Any], source: str, prefix: str = "spec") -> Any:
    """Build a ``cls`` instance from ``data``, raising all problems at once."""
    errs = Collector(source)
    if not isinstance(data, Mapping):
        errs.add(prefix, f"expected a mapping of fields, got {type(data).__name__}")
        errs.raise_if_any()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _HINTS.get(cls)
    if hints is None:  # resolved once per class (it compiles every annotation)
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key in data:
        if key not in fields:
            renamed = renamed_message(str(key))
            if renamed and RENAMED[str(key)][0] in fields:
                errs.add(f"{prefix}.{key}", renamed)
            else:
                errs.add(f"{prefix}.{key}", "unknown field" + suggest(str(key), fields))
    for name, f in fields.items():
        path = f"{prefix}.{name}"
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                errs.add(path, f"missing (required: {f.metadata.get('help', '')})")
            continue
        try:
            values[name] = _convert(data[name], hints[name], name, f.metadata)
        except ValueError as e:
            errs.add(path, str(e))
    errs.raise_if_any()
    return cls(**values)


def _convert(value: Any, hint: Any, name: str, meta: Mapping[str, Any]) -> Any:
    origin = typing.get_origin(hint)
    if origin in (dict, Mapping) or hint is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a mapping, got {value!r}")
        _, vt = typing.get_args(hint) or (str, float)
        return {str(k): _convert(v, vt, name, meta) for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list, got {value!r}")
        (et, *_) = typing.get_args(hint)
        return tuple(_convert(v, et, name, meta) for v in value)
    if origin in (typing.Union, types.UnionType):  # Optional[X] and X | None
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], name, meta)
    choices = meta.get("choices")
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        if choices and value not in choices:
            raise ValueError(f"expected one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if hint in (int, float):
        number = parse_quantity(value, name)  # a finite number (or ValueError)
        if number != 0 and abs(number) < SPEC_SMALLEST:
            raise ValueError(f"must be 0 or at least {SPEC_SMALLEST:g} in size, got {value!r}")
        if hint is int:
            if number != int(number):
                raise ValueError(f"expected an integer, got {value!r}")
            number = int(number)
        minimum = meta.get("minimum")
        if minimum is not None and not number >= minimum:
            raise ValueError(f"must be >= {minimum}, got {value!r}")
        maximum = meta.get("maximum")
        if maximum is None:
            maximum = _default_maximum(name, hint)
        if not number <= maximum:
            raise ValueError(f"must be <= {maximum:,g}, got {value!r}")
        if choices and number not in choices:
            raise ValueError(f"expected one of {', '.join(map(str, choices))}, got {value!r}")
        return number
    raise TypeError(f"spec field {name} has an unsupported type {hint!r}")


def spec_to_dict(spec: Any) -> dict[str, Any]:
    """The spec as plain JSON-able data (for reports)."""
    return {f.name: _plain(getattr(spec, f.name)) for f in dataclasses.fields(spec)}


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def spec_help(cls: type) -> list[tuple[str, str, Any]]:
    """(name, help, default) for every field: what ``hwsim targets`` documents."""
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        out.append((f.name, f.metadata.get("help", ""), default))
    return out
