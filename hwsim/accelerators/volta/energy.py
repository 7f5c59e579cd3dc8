"""Volta's energy table: prices per action from the preset, plus idle power.

Actions a kernel's tasks count (see :func:`actions`): ``tensor_flop_<dtype>``,
``cuda_flop_<dtype>``, ``sfu_op``, ``smem_byte``, ``l2_byte``, ``hbm_byte``,
and on the links ``pcie_byte`` and ``link_byte``. The preset gives each price
with its source; static power is the board's idle power, drawn for the whole
latency.
"""

from __future__ import annotations

from hwsim.energy import EnergyTable, Price

from .gpu import Kernel, Work
from .spec import VoltaSpec


def actions(kernel: Kernel, w: Work) -> dict[str, float]:
    out: dict[str, float] = {}
    dtype = kernel.dtype
    if w.tensor_flops:
        out[f"tensor_flop_{dtype}"] = w.tensor_flops
    if w.cuda_flops:
        key = f"cuda_flop_{dtype}" if not kernel.tensor else "cuda_flop_fp32"
        out[key] = out.get(key, 0.0) + w.cuda_flops
    if w.sfu_ops:
        out["sfu_op"] = w.sfu_ops
    if w.smem_bytes:
        out["smem_byte"] = w.smem_bytes
    if w.l2_bytes:
        out["l2_byte"] = w.l2_bytes
    if w.hbm_read or w.hbm_write:
        out["hbm_byte"] = w.hbm_read + w.hbm_write
    return out


def energy_table(spec: VoltaSpec) -> EnergyTable:
    src = "volta preset"
    prices = {
        "sfu_op": Price(spec.sfu_pj_per_op, "compute", f"{src} sfu_pj_per_op"),
        "smem_byte": Price(spec.smem_pj_per_byte, "onchip", f"{src} smem_pj_per_byte"),
        "l2_byte": Price(spec.l2_pj_per_byte, "onchip", f"{src} l2_pj_per_byte"),
        "hbm_byte": Price(spec.dram_pj_per_byte, "dram", f"{src} dram_pj_per_byte"),
        "pcie_byte": Price(spec.pcie_pj_per_byte, "interconnect", f"{src} pcie_pj_per_byte"),
        "link_byte": Price(spec.link_pj_per_byte, "interconnect", f"{src} link_pj_per_byte"),
    }
    for dtype, pj in spec.tensor_pj_per_flop.items():
        prices[f"tensor_flop_{dtype}"] = Price(pj, "compute", f"{src} tensor_pj_per_flop")
    for dtype, pj in spec.cuda_pj_per_flop.items():
        prices[f"cuda_flop_{dtype}"] = Price(pj, "compute", f"{src} cuda_pj_per_flop")
    return EnergyTable(prices, spec.static_power_w, f"{src} static_power_w (idle power)")
