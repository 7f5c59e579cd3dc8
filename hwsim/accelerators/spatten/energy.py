"""SpAtten's energy table: 40 nm at 1 GHz, from Horowitz's 45 nm numbers.

Actions the lowering counts, and how each is priced (M. Horowitz, "Computing's
Energy Problem (and what we can do about it)", ISSCC 2014, its 45 nm table, S;
HBM2 per bit: O'Connor et al., "Fine-Grained DRAM", MICRO 2017, S):

- ``mac``: one 12-bit multiply and its add in the reduction tree. A multiplier's
  energy grows with the square of its width (Horowitz: int8 mul 0.2 pJ, int32
  3.1 pJ, an exponent of 1.98), so 12 bits cost 0.2 x (12/8)^1.98 = 0.45 pJ; the
  tree adds about 24 bits (int8 add 0.03 pJ, int32 0.1, linear in bits:
  0.077 pJ). Sum 0.52 pJ at 45 nm.
- ``softmax_elem``: one score through the fp32 softmax pipeline: dequantize
  (fp32 mul), exp (one fp32 multiply-add after a table), accumulate (fp32 add),
  normalize (fp32 mul by the row's reciprocal), quantize (fp32 mul): 4 fp32 mul
  + 2 fp32 add = 16.6 pJ at 45 nm (M: the decomposition is ours).
- ``vector_op``, ``topk_compare``: one 16-bit fixed-point add or compare
  (0.03 + 0.07 x 8/24 = 0.053 pJ at 45 nm).
- ``sram_kv_byte``, ``sram_act_byte``, ``sram_fifo_byte``: a byte read or
  written in a macro of the preset's size; a 64-bit access costs 10 pJ at 8 KB,
  20 pJ at 32 KB, 100 pJ at 1 MB (Horowitz), interpolated log-log (below 8 KB,
  the 8-32 KB slope continues).
- ``xbar_byte``: a byte through a fetcher and the crossbar (preset, M).
- ``hbm_byte``: ``dram_pj_per_byte``, a byte's on-die data movement and I/O in
  the HBM2 stack (O'Connor et al. break HBM2's 3.97 pJ/bit into 2.24 pJ/bit of
  on-die movement, 0.3 pJ/bit of I/O and, at their applications' average
  locality, 1.21 pJ/bit of activation; the preset takes the first two, 2.54
  pJ/bit x 8).
- ``dram_act``: one row activation and its precharge, ``dram_act_pj`` (909 pJ
  for a 1 KB HBM2 row, O'Connor et al., S), counted by :mod:`hwsim.dram` from
  how the fetched bytes lie in the rows, so a scattered fetch pays for the rows
  it opens and a stream one activation per row.
- ``dram_refresh_bank``: one bank refreshed (an all-bank ``REFab`` refreshes its
  pseudo-channel's banks, a ``REFsb`` one), ``dram_refresh_bank_pj``. The HBM2
  refreshes every bank once per ``tREFI`` whether it is busy or not, so each op
  counts ``channels x pseudo-channels x banks x its time / tREFI`` of them (its
  time: the longest chain of its tasks or its busiest unit, what its tasks take
  alone). The preset prices them at 0: no primary source gives HBM2's refresh
  energy (JESD235 defines the IDD5 test but leaves its value to vendors, whose HBM2
  datasheets are not public; DRAMSys' HBM2 memspec sets ``idd5b`` to 0; Ramulator
  2's HBM2 has no power model), so the count is there for a user who has one.

Logic scales from 45 to 40 nm with C·V² (``logic_scale``; capacitance with the
feature size, 40/45 = 0.89, at the same supply); SRAM and wires scale worse
(``sram_scale``). Static power (leakage, clock tree, control) is the preset's.
"""

from __future__ import annotations

import math

from hwsim.energy import EnergyTable, Price

from .spec import SpattenSpec

# Horowitz, ISSCC 2014, 45 nm energy per operation (S: as widely reproduced)
INT8_ADD, INT32_ADD, INT8_MUL, INT32_MUL = 0.03, 0.1, 0.2, 3.1
FP32_ADD, FP32_MUL = 0.9, 3.7
SRAM_POINTS = ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0))  # bytes, pJ/64 bit


def mul_pj(bits: int) -> float:
    """A fixed-point multiplier at 45 nm: square-law fit through int8 and int32."""
    alpha = math.log(INT32_MUL / INT8_MUL) / math.log(32 / 8)
    return INT8_MUL * (bits / 8) ** alpha


def add_pj(bits: int) -> float:
    """A fixed-point adder at 45 nm: linear in bits through int8 and int32."""
    return INT8_ADD + (INT32_ADD - INT8_ADD) * (bits - 8) / 24


def sram_pj_per_64bit(size_bytes: float) -> float:
    """Energy of a 64-bit access to an SRAM macro of ``size_bytes`` at 45 nm."""
    pts = SRAM_POINTS
    size = max(1.0, float(size_bytes))
    if size <= pts[0][0]:
        (s0, e0), (s1, e1) = pts[0], pts[1]
    elif size <= pts[1][0]:
        (s0, e0), (s1, e1) = pts[0], pts[1]
    else:
        (s0, e0), (s1, e1) = pts[1], pts[2]
    slope = math.log(e1 / e0) / math.log(s1 / s0)
    return e0 * (size / s0) ** slope


def prices_pj(spec: SpattenSpec) -> dict[str, float]:
    """pJ per action at the spec's node."""
    bits = spec.multiplier_bits
    logic, sram = spec.logic_scale, spec.sram_scale
    return {
        "mac": (mul_pj(bits) + add_pj(2 * bits)) * logic,
        "softmax_elem": (4 * FP32_MUL + 2 * FP32_ADD) * logic,
        "vector_op": add_pj(16) * logic,
        "topk_compare": add_pj(16) * logic,
        "sram_kv_byte": sram_pj_per_64bit(spec.kv_buffer_bank_bytes) / 8 * sram,
        "sram_act_byte": sram_pj_per_64bit(spec.act_buffer_bank_bytes) / 8 * sram,
        "sram_fifo_byte": sram_pj_per_64bit(spec.fifo_bank_bytes) / 8 * sram,
        "xbar_byte": spec.crossbar_pj_per_byte,
        "hbm_byte": spec.dram_pj_per_byte,
        "dram_act": spec.dram_act_pj,
        "dram_refresh_bank": spec.dram_refresh_bank_pj,
    }


COMPONENT = {"mac": "compute", "softmax_elem": "compute", "vector_op": "compute",
             "topk_compare": "compute", "sram_kv_byte": "onchip", "sram_act_byte": "onchip",
             "sram_fifo_byte": "onchip", "xbar_byte": "interconnect", "hbm_byte": "dram",
             "dram_act": "dram", "dram_refresh_bank": "dram"}
SOURCE = {
    "mac": "12-bit multiply (square law through Horowitz int8/int32) + 24-bit add, x logic_scale",
    "softmax_elem": "4 fp32 mul + 2 fp32 add (Horowitz), x logic_scale",
    "vector_op": "16-bit add (Horowitz, linear in bits), x logic_scale",
    "topk_compare": "16-bit compare = add (Horowitz), x logic_scale",
    "sram_kv_byte": "Horowitz SRAM by macro size (kv_buffer_bank_bytes), x sram_scale",
    "sram_act_byte": "Horowitz SRAM by macro size (act_buffer_bank_bytes), x sram_scale",
    "sram_fifo_byte": "Horowitz SRAM by macro size (fifo_bank_bytes), x sram_scale",
    "xbar_byte": "preset crossbar_pj_per_byte",
    "hbm_byte": "preset dram_pj_per_byte (HBM2 on-die movement + I/O, O'Connor et al.)",
    "dram_act": "preset dram_act_pj per row activation (HBM2 1 KB row, O'Connor et al.)",
    "dram_refresh_bank": "preset dram_refresh_bank_pj per bank refreshed (unpriced: no "
                         "primary source)",
}


def energy_table(spec: SpattenSpec) -> EnergyTable:
    prices = {a: Price(pj, COMPONENT[a], SOURCE[a]) for a, pj in prices_pj(spec).items()}
    return EnergyTable(prices, spec.static_power_w, "preset static_power_w")
