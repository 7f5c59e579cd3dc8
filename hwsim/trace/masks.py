"""Attention masks without values: which score elements a mask lets through.

A model traced on fake tensors has no values, so a mask passed to an attention
(``attn_mask=`` of ``F.scaled_dot_product_attention``, the mask of
``nn.MultiheadAttention``, a score ``+ mask`` in a hand-written attention)
would say nothing about *which* scores it hides. Masks are constants, built
from constants (``torch.ones(s, s).tril()``,
``nn.Transformer.generate_square_subsequent_mask``), so the recorder
(:mod:`hwsim.trace.recorder`) evaluates the few aten ops that build them
*symbolically*, on a small abstract value per constant tensor:

``Fill(v)``
    every element is ``v`` (``ones``, ``zeros``, ``full``, ``*_like``);
``Band(lo, hi, inside, outside)``
    over the last two dims, element ``(i, j)`` is ``inside`` where
    ``lo <= j - i <= hi`` (``None``: unbounded) and ``outside`` elsewhere:
    ``tril(x, d)`` of a fill is ``Band(None, d, v, 0)``, ``triu(x, d)`` is
    ``Band(d, None, v, 0)``, and both together make the band of a sliding window.

Casts, copies, broadcasts and reshapes that keep the last two dims keep the
value; ``logical_not``, ``masked_fill``, ``where``, arithmetic and comparisons
with a scalar (``mask == 0``) map ``inside`` and ``outside``; anything else
has no abstract value (unknown). A buffer that holds real values when the
trace starts (nanoGPT's ``bias``, a ``tril`` registered at ``__init__`` of a
CPU model) is read once from its values
(:func:`hwsim.trace.recorder.mask_buffers`).

An attention then reads its mask with the mask's convention (a boolean SDPA
mask lets ``True`` through; an additive mask lets ``0`` through and hides
``-inf``; ``masked_fill(scores, m, -inf)`` hides where ``m`` is true) and
:func:`attention_attrs` turns the visible region into the op's attributes:
``j <= i`` is ``causal``, ``i - w < j <= i`` is ``causal`` with ``window: w``,
``|i - j| < w`` is a symmetric ``window: w``, everything visible is no mask. A
mask it cannot read is ``masked: true``: the op is costed as dense attention
(every score computed, as a kernel that applies an arbitrary mask does).
Regions are top-left aligned, as PyTorch's masks are; for ``q_len != kv_len``
only the all-visible mask is read. A band is read as written, so a window wider
than the sequence traced is still a ``window`` (an op's attributes must not
depend on the size, or no template fits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from .raw import TRef


@dataclass(frozen=True)
class Fill:
    value: Any


@dataclass(frozen=True)
class Band:
    lo: int | None  # smallest j - i inside (None: no bound)
    hi: int | None  # largest j - i inside (None: no bound)
    inside: Any
    outside: Any


Value = Fill | Band

# aten packets whose result is a fill, and the argument position of the fill value
_FILLS = {"ones": 1, "ones_like": 1, "new_ones": 1, "zeros": 0, "zeros_like": 0, "new_zeros": 0,
          "full": ("fill_value", 1), "full_like": ("fill_value", 1),
          "new_full": ("fill_value", 2), "scalar_tensor": ("s", 0), "fill": ("value", 1),
          "fill_": ("value", 1)}
_SAME = ("_to_copy", "clone", "contiguous", "alias", "lift_fresh", "lift_fresh_copy", "detach",
         "to", "type_as", "_unsafe_view", "expand", "view", "unsqueeze", "reshape")
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "rsub": lambda a, b: b - a,
    "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
}


def _arg(args: tuple, kwargs: dict, pos: int, name: str, default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[pos] if len(args) > pos else default


def _cast(v: Any, is_bool: bool) -> Any:
    if is_bool:
        return bool(v)
    if isinstance(v, bool):
        return float(v)
    return v


def _map(value: Value, fn: Callable[[Any], Any]) -> Value:
    if isinstance(value, Fill):
        return Fill(fn(value.value))
    return Band(value.lo, value.hi, fn(value.inside), fn(value.outside))


def _tri(value: Value, lower: bool, d: int, zero: Any) -> Value | None:
    """``tril``/``triu`` with diagonal ``d`` of a fill, or of a band whose outside is 0."""
    if isinstance(value, Fill):
        return Band(None, d, value.value, zero) if lower else Band(d, None, value.value, zero)
    if value.outside != zero:
        return None
    if lower:
        hi = d if value.hi is None else min(value.hi, d)
        return Band(value.lo, hi, value.inside, zero)
    lo = d if value.lo is None else max(value.lo, d)
    return Band(lo, value.hi, value.inside, zero)


def evaluate(packet: str, args: tuple, kwargs: dict, value_of: Callable[[int], Value | None],
             out_is_bool: bool) -> Value | None:
    """The abstract value of a constant-building aten call (None: unknown).

    ``args``/``kwargs`` hold tensors as :class:`~hwsim.trace.raw.TRef`;
    ``value_of`` gives the value of a tensor id."""
    name = packet[:-1] if packet.endswith("_") and not packet.startswith("_") else packet

    def val(x: Any) -> Value | None:
        if isinstance(x, TRef):
            return value_of(x.id)
        if isinstance(x, (bool, int, float)):
            return Fill(x)
        return None

    if name in _FILLS or packet in _FILLS:
        spec = _FILLS.get(packet, _FILLS.get(name))
        v = spec if isinstance(spec, int) else _arg(args, kwargs, spec[1], spec[0])
        return Fill(_cast(v, out_is_bool)) if isinstance(v, (bool, int, float)) else None
    if name in _SAME:
        src = val(args[0]) if args else None
        return _map(src, lambda v: _cast(v, out_is_bool)) if src is not None else None
    if name in ("tril", "triu"):
        src = val(args[0]) if args else None
        if src is None:
            return None
        zero = False if out_is_bool else 0.0
        return _tri(src, name == "tril", int(_arg(args, kwargs, 1, "diagonal", 0)), zero)
    if name in ("logical_not", "bitwise_not"):
        src = val(args[0]) if args else None
        return _map(src, lambda v: not v) if src is not None else None
    if name == "masked_fill":
        x, m = (val(args[0]), val(args[1])) if len(args) > 1 else (None, None)
        fill_value = val(_arg(args, kwargs, 2, "value"))
        fill = fill_value.value if isinstance(fill_value, Fill) else None
        if not isinstance(x, Fill) or fill is None or m is None:
            return None
        return _select(m, Fill(_cast(fill, out_is_bool)), x)
    if name == "where":
        cond = val(args[0]) if args else None
        a, b = (val(args[1]), val(args[2])) if len(args) > 2 else (None, None)
        if cond is None or not isinstance(a, Fill) or not isinstance(b, Fill):
            return None
        return _select(cond, a, b)
    if name in _ARITH:
        a, b = (val(args[0]), val(args[1])) if len(args) > 1 else (None, None)
        if isinstance(b, Fill) and a is not None:
            return _map(a, lambda v: _safe(_ARITH[name], v, b.value))
        if isinstance(a, Fill) and b is not None:
            return _map(b, lambda v: _safe(_ARITH[name], a.value, v))
        return None
    return None


def _safe(fn: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    try:
        out = fn(a, b)
    except ZeroDivisionError:
        return math.nan
    return out


def _select(cond: Value, a: Fill, b: Fill) -> Value | None:
    """``where(cond, a, b)`` for a boolean ``cond``."""
    if isinstance(cond, Fill):
        return a if cond.value else b
    pick = {True: a.value, False: b.value}
    return Band(cond.lo, cond.hi, pick[bool(cond.inside)], pick[bool(cond.outside)])


def view_keeps(packet: str, args: tuple, base_shape: tuple, out_shape: tuple) -> bool:
    """Whether a view of a masked tensor keeps its (top-left aligned) pattern: the last
    two dims unchanged, or cut from the start by a ``slice``."""
    if len(base_shape) < 2 or len(out_shape) < 2:
        return False
    if tuple(base_shape[-2:]) == tuple(out_shape[-2:]):
        return True
    if packet == "slice" and len(args) >= 2:
        dim = args[1] % len(base_shape) if isinstance(args[1], int) else None
        start = args[2] if len(args) > 2 else 0
        step = args[4] if len(args) > 4 else 1
        return (dim is not None and dim >= len(base_shape) - 2 and start in (0, None)
                and step == 1)
    return False


# ---------------------------------------------------------------------- reading a mask
def visible(value: Value | None, convention: str) -> Value | None:
    """The mask as ``Fill``/``Band`` of booleans, True where a score is visible.

    ``convention``: ``"keep"`` (True lets through: an SDPA boolean mask, ``where``'s
    condition), ``"hide"`` (True hides: ``masked_fill``'s mask) or ``"additive"``
    (0 lets through, ``-inf`` or a large negative number hides)."""
    if value is None:
        return None

    def see(v: Any) -> bool | None:
        if convention == "keep":
            return bool(v)
        if convention == "hide":
            return not bool(v)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if v == 0:
                return True
            if v == -math.inf or v <= -1e4:  # -inf, or a finfo.min-like large negative
                return False
        return None

    mapped = _map(value, see)
    parts = [mapped.value] if isinstance(mapped, Fill) else [mapped.inside, mapped.outside]
    return None if any(p is None for p in parts) else mapped


def attention_attrs(value: Value | None, convention: str, q_len: int,
                    kv_len: int) -> dict[str, Any]:
    """Attention attributes for a mask (see the module docstring); ``{"masked": True}``
    when the mask cannot be read."""
    seen = visible(value, convention)
    if seen is None:
        return {"masked": True}
    if isinstance(seen, Fill):
        return {} if seen.value else {"masked": True}
    if q_len != kv_len:
        return {"masked": True}
    lo, hi = seen.lo, seen.hi
    if not seen.inside and seen.outside:  # the complement of a half-plane is a half-plane
        if lo is None and hi is not None:
            lo, hi = hi + 1, None
        elif hi is None and lo is not None:
            lo, hi = None, lo - 1
        else:
            return {"masked": True}
    elif not (seen.inside and not seen.outside):
        return {} if seen.inside else {"masked": True}
    # the band as written, not clipped to this size: a window wider than the sequence
    # is still a window (the op's attributes must not depend on the size traced)
    if lo is None and hi is None:
        return {}
    if hi == 0:
        return {"causal": True} if lo is None else {"causal": True, "window": 1 - lo}
    if lo is not None and hi is not None and lo == -hi and hi > 0:
        return {"window": hi + 1}
    return {"masked": True}
