"""The energy table of an ARMv8 socket.

Actions the lowering counts, and their component:

==================  =========  =================================================
``vfma_<dtype>``    compute    one vector FMA instruction, with its share of the
                               core's fetch, rename and register-file energy
``vop``             compute    any other vector instruction (load, store, permute,
                               the instructions of exp)
``l1_byte``         onchip     a byte through the L1D ports
``l2_byte``         onchip     a byte between L2 and L1
``l3_byte``         onchip     a byte from the last level or a peer cache, over the mesh
``dram_byte``       dram       a byte to or from DRAM (device, PHY, controller)
==================  =========  =================================================

Static power is the leakage and clock power of every core (idle or not) and of
the uncore (mesh, L3, DDR controllers), drawn for the whole op. The per-
instruction energies are calibrated so that all cores running the SGEMM micro-
kernel at its FMA rate, with the static power, come to the socket's published
TDP (each preset shows the arithmetic); the per-byte energies are Horowitz's
SRAM figures (ISSCC 2014, 45 nm, scaled to the core's node) and a commonly quoted
DDR4 figure (15-20 pJ/bit, M), as each preset line says.
"""

from __future__ import annotations

from hwsim.energy import EnergyTable, Price

from .spec import INT_DTYPES, ARMv8Spec


def energy_table(spec: ARMv8Spec) -> EnergyTable:
    src = "preset (calibrated to power_limit_w, see the preset's comments)"
    prices = {
        "vop": Price(spec.vop_pj, "compute", src),
        "l1_byte": Price(spec.l1_pj_per_byte, "onchip", "preset l1_pj_per_byte"),
        "l2_byte": Price(spec.l2_pj_per_byte, "onchip", "preset l2_pj_per_byte"),
        "l3_byte": Price(spec.l3_pj_per_byte, "onchip", "preset l3_pj_per_byte"),
        "dram_byte": Price(spec.dram_pj_per_byte, "dram", "preset dram_pj_per_byte"),
    }
    for dtype, pj in spec.vfma_pj.items():
        prices[f"vfma_{dtype}"] = Price(pj, "compute", src)
    for dtype in INT_DTYPES:  # integer ops count no FMAs; priced like other vector work
        prices.setdefault(f"vfma_{dtype}", Price(spec.vop_pj, "compute", src))
    static = spec.cores * spec.core_static_power_w + spec.uncore_static_power_w
    return EnergyTable(prices, static,
                       "preset cores x core_static_power_w + uncore_static_power_w")
