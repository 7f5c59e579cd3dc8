"""The energy table: every action the lowering counts, priced from the preset.

Actions: ``mac_<dtype>`` (one cube multiply-accumulate), ``vector_cycle`` (one
256-byte repeat-cycle of a vector unit), ``l0_byte``, ``l1_byte``, ``ub_byte``,
``l2_byte`` (a byte read or written at that level), ``hbm_byte`` (a byte read
from or written to HBM), ``link_byte`` (a byte sent to another NPU). Each price
comes from a preset field whose comment names its source and scaling.
"""

from __future__ import annotations

from hwsim.energy import EnergyTable, Price

from .spec import AscendSpec


def energy_table(spec: AscendSpec) -> EnergyTable:
    prices = {f"mac_{dtype}": Price(pj, "compute", f"preset mac_pj.{dtype}")
              for dtype, pj in spec.mac_pj.items()}
    for dtype in spec.cube_macs_per_cycle:
        if f"mac_{dtype}" not in prices:
            raise ValueError(f"preset has cube_macs_per_cycle.{dtype} but no mac_pj.{dtype}")
    prices.update({
        "vector_cycle": Price(spec.vector_pj_per_cycle, "compute", "preset vector_pj_per_cycle"),
        "l0_byte": Price(spec.l0_pj_per_byte, "onchip", "preset l0_pj_per_byte"),
        "l1_byte": Price(spec.l1_pj_per_byte, "onchip", "preset l1_pj_per_byte"),
        "ub_byte": Price(spec.ub_pj_per_byte, "onchip", "preset ub_pj_per_byte"),
        "l2_byte": Price(spec.l2_pj_per_byte, "onchip", "preset l2_pj_per_byte"),
        "hbm_byte": Price(spec.dram_pj_per_byte, "dram", "preset dram_pj_per_byte"),
        "link_byte": Price(spec.link_pj_per_byte, "interconnect", "preset link_pj_per_byte"),
    })
    return EnergyTable(prices, spec.static_power_w, "preset static_power_w")
