"""Helpers the method passes share: reading layer and keep parameters against a plan."""

from __future__ import annotations

from typing import Sequence

from .plan import Plan, Step, round_half_up


def layer_param(plan: Plan, step: Step, key: str = "at_layer", default: int | None = None) -> int:
    """A layer index of the pruned stack, checked against it."""
    value = step.get(key, default)
    if value is None:
        raise step.error(key, f"missing: {key}")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise step.error(key, f"must be a layer index >= 0, got {value!r}")
    if value >= plan.num:
        raise step.error(key, f"{value} is past the last layer of the {plan.stack} stack "
                         f"({plan.num - 1})")
    return value


def layers_param(plan: Plan, step: Step, default: Sequence[int] | None = None) -> list[int]:
    """The ``layers`` list (checked), or ``default`` (every layer not dropped)."""
    layers = step.get("layers")
    if layers is None:
        return list(plan.alive() if default is None else default)
    bad = [x for x in layers if not isinstance(x, int) or x < 0 or x >= plan.num]
    if bad:
        raise step.error("layers", f"has a layer outside 0..{plan.num - 1} of the "
                         f"{plan.stack} stack: {bad}")
    return sorted(set(layers))


def scalar_keep(step: Step, key: str = "keep") -> float:
    keep = step.get(key)
    if isinstance(keep, list):
        raise step.error(key, f"{step.method} keeps one fraction: give a number, not a list")
    return float(keep)


def keep_list(plan: Plan, step: Step, key: str = "keep") -> list[float] | None:
    """A per-layer keep list (checked against the stack), or None for a scalar."""
    keep = step.get(key)
    if not isinstance(keep, list):
        return None
    if len(keep) != plan.num:
        raise step.error(key, f"has {len(keep)} entries, the {plan.stack} stack has "
                         f"{plan.num} layers")
    return [float(v) for v in keep]


def progressive_factors(plan: Plan, step: Step, default_layers: Sequence[int]) -> dict[int, float]:
    """Per-layer fractions of the tokens reaching the stack, for progressive methods.

    A list ``keep`` gives them directly (one per layer). A scalar ``keep`` is
    the fraction kept *at each pruning layer* of the tokens that reach it, so
    after the i-th pruning layer ``keep**i`` of the tokens remain.
    """
    lst = keep_list(plan, step)
    if lst is not None:
        if step.get("layers") is not None:
            raise step.error("layers", "give layers with a scalar keep; a keep list already "
                             "says how many tokens each layer keeps")
        return dict(enumerate(lst))
    keep = float(step.get("keep"))
    prune_at = layers_param(plan, step, default_layers)
    out, f = {}, 1.0
    for layer in range(plan.num):
        if layer in prune_at:
            f *= keep
        out[layer] = f
    return out


def quarter_layers(num: int) -> list[int]:
    """Default pruning layers of progressive methods: a quarter, half and three quarters in."""
    return sorted({max(1, round(num * q)) for q in (0.25, 0.5, 0.75) if round(num * q) < num})


def kept_heads(plan: Plan, step: Step, layer: int, fraction: float, key: str = "keep") -> int:
    """Query heads layer ``layer`` keeps when keeping ``fraction`` of the heads it has.

    Heads go in whole groups: a key/value head together with the query heads
    that share it (grouped-query attention; a group is one head without it), so
    the attention keeps ``heads`` a multiple of ``kv_heads`` and the KV cache
    shrinks with the query heads. The kept groups are ``fraction`` of the groups
    rounded half up (TinyLlama's 4 groups of 8: keep 0.3 keeps 1 group, 0.4
    keeps 2). A fraction that rounds to no group cannot be honoured (keeping a
    whole group instead would keep several times what was asked): an error.
    """
    heads = plan.heads[layer]
    if heads <= 0:
        return heads
    group = plan.group(layer)
    groups = heads // group
    n = min(groups, round_half_up(groups * fraction))
    if n < 1:
        if group > 1:
            what = (f"{groups} groups (grouped-query attention: {group} query heads share "
                    f"each key/value head, and heads go in whole groups)")
        else:
            what = f"{groups} heads"
        raise step.error(key, f"keep {fraction:g} of layer {layer}'s {what} rounds to none and "
                         f"cannot be honoured: keep at least {0.5 / groups:.4g} (one "
                         f"{'group' if group > 1 else 'head'})")
    return n * group
