"""Energy as actions times prices, plus static power (Accelergy style).

A target's lowering *counts actions* (``mac_fp16``, ``dram_read_byte``,
``l1_read_byte``, ...); an :class:`EnergyTable` *prices* them. Each entry names
the component it belongs to, so the report can break energy down into
``compute``, ``onchip``, ``dram``, ``interconnect`` and ``static``::

    energy_j = Σ count(action) · pj(action) · 1e-12  +  static_power_w · latency_s

Every price in a target's table carries its source in the target's code or
preset (a paper table, a datasheet, a scaling rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

COMPONENTS = ("compute", "onchip", "dram", "static", "interconnect")


@dataclass(frozen=True)
class Price:
    """The energy of one action and the component it is charged to."""

    pj: float  # energy per action, picojoules
    component: str  # one of COMPONENTS
    source: str = ""  # where the number comes from

    def __post_init__(self):
        if self.component not in COMPONENTS:
            raise ValueError(f"component {self.component!r} not one of {COMPONENTS}")


@dataclass(frozen=True)
class EnergyTable:
    """Prices per action, and the static power drawn while the machine runs."""

    prices: Mapping[str, Price] = field(default_factory=dict)
    static_power_w: float = 0.0
    static_source: str = ""

    def dynamic_j(self, actions: Mapping[str, float], target: str = "") -> dict[str, float]:
        """Dynamic energy of ``actions`` per component, in joules.

        An action the table does not price is an error: a silent zero would
        understate energy.
        """
        out = dict.fromkeys(COMPONENTS, 0.0)
        for action, count in actions.items():
            if not count:
                continue
            price = self.prices.get(action)
            if price is None:
                raise KeyError(f"energy table of {target or 'target'} has no price for "
                               f"action {action!r} (priced: {', '.join(sorted(self.prices))})")
            out[price.component] += count * price.pj * 1e-12
        return out

    def static_j(self, latency_s: float) -> float:
        return self.static_power_w * latency_s
