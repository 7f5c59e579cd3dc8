"""The Ascend hardware specification: one frozen dataclass, loaded from a preset.

Every field's unit is in its name (``clock_hz``, ``l1_bytes``); per-cycle rates
are per core, in bytes per cycle of ``clock_hz``, the way the CANN platform
configuration states them (``ddr_rate``, ``l2_read_rate``, ...). The presets
say where each number comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.spec import spec_field

# Cycles one 256-byte vector repeat takes, per primitive function. The vector
# unit issues one repeat (8 blocks of 32 B: 128 fp16 or 64 fp32 lanes) per
# cycle for simple functions (CANN vector API docs, V); transcendental and
# divide units are multi-cycle, for which no vendor figure is public (M). This
# is the one table of those costs; composite functions are built from it in
# ``vector.py``. Presets may override any entry.
DEFAULT_VECTOR_CYCLES = {
    "add": 1.0, "sub": 1.0, "mul": 1.0, "max": 1.0, "min": 1.0, "abs": 1.0, "neg": 1.0,
    "relu": 1.0, "compare": 1.0, "select": 1.0, "copy": 1.0, "cast": 1.0, "fill": 1.0,
    "fma": 1.0, "reduce": 1.0,
    "exp": 4.0, "log": 4.0, "sqrt": 4.0, "rsqrt": 4.0, "reciprocal": 4.0, "div": 4.0,
    "sort32": 8.0,
}


@dataclass(frozen=True, kw_only=True)
class AscendSpec:
    """One Ascend NPU as a preset describes it: its cube and vector cores, their buffers
    and transfer engines, the L2, the HBM and the links, the energy prices (each
    field's ``help`` says what it is; a preset's comments give each value's source)."""

    # ------------------------------------------------------------ organisation
    architecture: str = spec_field(
        help="split (AIC cube cores and AIV vector cores, 910B) or coupled "
             "(cube and vector in one AI core, 910A)", choices=("split", "coupled"))
    cube_cores: int = spec_field(help="AI cube cores (AIC), or AI cores when coupled", minimum=1)
    vector_cores: int = spec_field(help="AI vector cores (AIV); equals cube_cores when coupled",
                                   minimum=1)
    clock_hz: float = spec_field(help="core clock (cube and vector)", minimum=1.0)
    # ------------------------------------------------------------ compute units
    cube_macs_per_cycle: dict[str, float] = spec_field(
        help="cube multiply-accumulates per cycle per core, by input dtype "
             "(fp16 16x16x16 = 4096); a dtype missing here cannot run on the cube")
    cube_issue_cycles: float = spec_field(
        0.0, help="cube pipeline start-up per MMAD instruction (one base block)")
    vector_bytes_per_cycle: float = spec_field(
        256.0, help="bytes one vector repeat covers per cycle (128 fp16 lanes = 256 B)",
        minimum=1.0)
    vector_cycles_per_repeat: dict[str, float] = spec_field(
        dict(DEFAULT_VECTOR_CYCLES), help="cycles per 256-B repeat, by primitive function")
    # ------------------------------------------------------------ buffers
    l0a_bytes: float = spec_field(help="L0A (cube left operand) per core")
    l0b_bytes: float = spec_field(help="L0B (cube right operand) per core")
    l0c_bytes: float = spec_field(help="L0C (cube accumulator) per core")
    l1_bytes: float = spec_field(help="L1 buffer per cube core")
    ub_bytes: float = spec_field(help="unified buffer per vector core")
    l2_bytes: float = spec_field(help="L2 cache shared by all cores (catches GM re-reads)")
    dram_bytes: float = spec_field(help="HBM (the device DRAM) capacity (0: not checked)")
    # ------------------------------------------------------------ data movers
    dram_bw_bytes_per_s: float = spec_field(
        help="HBM (the device DRAM) bandwidth shared by all cores", minimum=1.0)
    mte2_dram_bytes_per_cycle: float = spec_field(
        help="rate of one HBM stream (an L2 miss or a write-back); the HBM pool has "
             "dram_bw_bytes_per_s / (this x clock) concurrent streams", minimum=1.0)
    mte2_l2_bytes_per_cycle: float = spec_field(
        help="one core's MTE2 rate from L2 (a hit)", minimum=1.0)
    l2_write_bytes_per_cycle: float = spec_field(
        help="one core's write rate into L2", minimum=1.0)
    mte1_l0a_bytes_per_cycle: float = spec_field(help="MTE1 L1 to L0A", minimum=1.0)
    mte1_l0b_bytes_per_cycle: float = spec_field(help="MTE1 L1 to L0B", minimum=1.0)
    fixpipe_bytes_per_cycle: float = spec_field(help="FixPipe out of L0C", minimum=1.0)
    mte3_bytes_per_cycle: float = spec_field(help="MTE3 UB to GM", minimum=1.0)
    transfer_align_bytes: int = spec_field(
        512, help="MTE2 burst granularity: a contiguous run costs whole multiples", minimum=1)
    ub_align_bytes: int = spec_field(32, help="UB block (vector data) alignment", minimum=1)
    dim_align: int = spec_field(16, help="cube fractal edge: m and n round up to it", minimum=1)
    # ------------------------------------------------------------ overheads
    kernel_launch_s: float = spec_field(
        0.0, help="device side of a kernel start: from the task's enqueue on the stream (the "
                  "host's launch call, in the host lane of hwsim.runtime, has returned) to its "
                  "start on an idle NPU (the task scheduler fetches it and dispatches its "
                  "blocks to the AI cores)")
    kernel_gap_s: float = spec_field(
        0.0, help="gap between a kernel and the next one already queued behind it (the task "
                  "scheduler has taken the queued task in while the first ran): the part of "
                  "kernel_launch_s a queued kernel does not hide")
    cv_sync_s: float = spec_field(
        0.0, help="one cube/vector hand-off (cross-core flag on split, in-core on coupled)")
    gather_row_cycles: float = spec_field(
        0.0, help="scalar address set-up per gathered row (embedding, gather)")
    # ------------------------------------------------------------ links
    link_bw_bytes_per_s: float = spec_field(
        0.0, help="per-direction bandwidth of one link between two NPUs (0: no links)")
    link_latency_s: float = spec_field(0.0, help="latency of one all-reduce step")
    link_topology: str = spec_field("ring", help="ring, or mesh: a link to every other NPU",
                                    choices=("ring", "mesh"))
    # ------------------------------------------------------------ energy
    mac_pj: dict[str, float] = spec_field(help="energy per cube MAC, by input dtype")
    vector_pj_per_cycle: float = spec_field(help="energy of one vector repeat-cycle (256 B)")
    l0_pj_per_byte: float = spec_field(help="L0A/L0B/L0C byte read or written")
    l1_pj_per_byte: float = spec_field(help="L1 byte read or written")
    ub_pj_per_byte: float = spec_field(help="UB byte read or written")
    l2_pj_per_byte: float = spec_field(help="L2 byte read or written")
    dram_pj_per_byte: float = spec_field(help="HBM (DRAM) byte read or written")
    link_pj_per_byte: float = spec_field(0.0, help="byte sent over an NPU link")
    static_power_w: float = spec_field(0.0, help="power drawn whenever the chip runs")
    power_limit_w: float = spec_field(
        0.0, help="module power limit: firmware lowers the clock so that no op draws more "
        "(hwsim.simulate.power_capped_s); 0 = no limit")
