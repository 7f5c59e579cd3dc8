"""Layer pruning (ShortGPT, E3-Pruner): whole transformer blocks removed offline.

``layers`` lists the blocks to drop; or ``keep`` says what fraction of the
stack's blocks to keep, and the dropped ones are the contiguous run just
before the last two blocks (ShortGPT's Block-Influence ranking removes, for
Llama-2-7B, layers 21 to 29 of 32: deep blocks but not the last ones). A
dropped block's readers read its residual input instead
(:func:`hwsim.ir.layered.instantiate_layers`); nothing is decided at run
time, so there is no machinery to cost.
"""

from __future__ import annotations

from .common import layers_param
from .plan import Plan, Step, kept


def default_dropped(num: int, keep: float) -> list[int]:
    """The ``num - kept(num, keep)`` blocks ending two before the last."""
    n_drop = num - kept(num, keep)
    end = max(n_drop, num - 2)
    return list(range(end - n_drop, end))


def layer_drop(plan: Plan, step: Step) -> None:
    if step.get("layers") is not None:
        if step.get("keep") is not None:
            raise step.error("keep", "give either layers (which blocks to drop) or keep (the "
                             "fraction of blocks kept), not both")
        drop = layers_param(plan, step)
    else:
        keep = step.get("keep")
        if isinstance(keep, list):
            raise step.error("keep", "layer-drop keeps one fraction of the blocks: give a "
                             "number, or list the layers to drop")
        drop = default_dropped(plan.num, float(keep))
    dropped = sorted(set(plan.dropped) | set(drop))
    if len(dropped) >= plan.num:
        raise step.error("layers", f"would drop every layer of the {plan.stack} stack")
    plan.dropped = dropped
    plan.record(step, dropped_now=sorted(drop))
