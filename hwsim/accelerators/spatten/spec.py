"""The SpAtten hardware specification: one frozen dataclass, loaded from a preset.

Units live in the field names. Compute rates follow from the multiplier counts:
the Q·K array of ``qk_multipliers`` 12-bit multipliers is ``qk_multipliers /
dot_width`` dot products of ``dot_width`` (64) lanes, so it scores 8 keys per
cycle at head dim 64 with 512 multipliers; the prob·V array likewise weights 8
value rows per cycle. DRAM is ``dram_channels`` HBM2 channels of
``dram_channel_bytes_per_cycle`` each, reached by ``fetch_channels`` fetchers
through a crossbar that interleaves addresses every ``dram_transaction_bytes``;
each channel's pseudo-channels, banks, rows and JEDEC timings (``dram_t*_s``)
make a scattered fetch slower per byte than a stream, and its refresh, its
requests in flight (``dram_outstanding_per_channel``) and its read/write
turnarounds slow both (:mod:`hwsim.dram`).
Energy prices are derived in :mod:`.energy` from the sizes and scaling rules
here. The presets say where each number comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.errors import InputError
from hwsim.spec import spec_field

TOPK_MODES = ("expected", "seeded")
DRAM_REFRESH = ("all-bank", "per-bank", "none")


@dataclass(frozen=True, kw_only=True)
class SpattenSpec:
    # ------------------------------------------------------------ compute
    clock_hz: float = spec_field(help="clock of the whole accelerator", minimum=1.0)
    qk_multipliers: int = spec_field(help="multipliers of the Q·K array", minimum=1)
    pv_multipliers: int = spec_field(help="multipliers of the prob·V array", minimum=1)
    multiplier_bits: int = spec_field(help="operand width of the fixed-point multipliers",
                                      minimum=1)
    dot_width: int = spec_field(
        help="lanes of one dot product (the head dim the arrays are built for); a head "
             "dim d takes ceil(d / dot_width) lane groups", minimum=1)
    softmax_units: int = spec_field(help="softmax lanes (one score per lane per cycle)",
                                    minimum=1)
    qk_latency_cycles: int = spec_field(help="Q·K pipeline depth (SRAM, multiply, tree)")
    softmax_latency_cycles: int = spec_field(
        help="softmax pipeline depth (dequantize, exp, accumulate, divide, quantize)")
    pv_latency_cycles: int = spec_field(help="prob·V pipeline depth")
    requant_latency_cycles: int = spec_field(
        1, help="progressive-quantization decision (max probability vs threshold)")
    # ------------------------------------------------------------ buffers
    key_buffer_tokens: int = spec_field(help="keys the key buffer holds (at buffer_bits)",
                                        minimum=1)
    value_buffer_tokens: int = spec_field(help="value rows the value buffer holds",
                                          minimum=1)
    buffer_bits: int = spec_field(help="width of a buffered key or value element", minimum=1)
    query_block: int = spec_field(
        help="queries that share one pass over the key chunks when a context is longer "
             "than the key buffer (each block re-fetches the chunks)", minimum=1)
    act_buffer_bytes: float = spec_field(
        help="on-chip buffer for activations between matrix products (queries, hidden "
             "states); a larger activation goes through DRAM")
    # ------------------------------------------------------------ DRAM
    dram_channels: int = spec_field(help="HBM2 channels", minimum=1)
    dram_channel_bytes_per_cycle: float = spec_field(help="bytes per cycle of one channel",
                                                     minimum=1.0)
    dram_transaction_bytes: int = spec_field(
        help="transaction size and channel-interleaving granularity", minimum=1)
    dram_latency_cycles: int = spec_field(help="first-data latency of a DRAM access")
    dram_bytes: float = spec_field(0.0, help="HBM capacity (0: not checked)")
    fetch_channels: int = spec_field(help="fetchers (crossbar masters) issuing DRAM reads",
                                     minimum=1)
    # banks and rows (hwsim.dram; defaults: Ramulator 2's HBM2_8Gb organization and
    # HBM2_2Gbps timing at tCK = 1 ns, the configuration of SpAtten's RTL simulation)
    dram_pseudo_channels: int = spec_field(
        2, help="pseudo-channels per channel, each with half the channel's data bus",
        minimum=1)
    dram_bank_groups: int = spec_field(4, help="bank groups per pseudo-channel", minimum=1)
    dram_banks_per_group: int = spec_field(4, help="banks per bank group", minimum=1)
    dram_row_bytes: int = spec_field(1024, help="row (page) of one pseudo-channel", minimum=1)
    dram_trcd_s: float = spec_field(7e-9, help="ACT to column read (tRCD)", minimum=0.0)
    dram_trp_s: float = spec_field(7e-9, help="precharge to ACT (tRP)", minimum=0.0)
    dram_tras_s: float = spec_field(17e-9, help="ACT to precharge (tRAS)", minimum=0.0)
    dram_trc_s: float = spec_field(19e-9, help="ACT to ACT in one bank (tRC)", minimum=0.0)
    dram_trrds_s: float = spec_field(2e-9, help="ACT to ACT, other bank group (tRRD_S)",
                                     minimum=0.0)
    dram_trrdl_s: float = spec_field(3e-9, help="ACT to ACT, same bank group (tRRD_L)",
                                     minimum=0.0)
    dram_tfaw_s: float = spec_field(15e-9, help="window of four ACTs (tFAW)", minimum=0.0)
    dram_tcl_s: float = spec_field(7e-9, help="column read to data (tCL)", minimum=0.0)
    dram_tccdl_s: float = spec_field(2e-9, help="column to column, same bank group (tCCD_L)",
                                     minimum=0.0)
    dram_trtp_s: float = spec_field(3e-9, help="read to precharge (tRTP)", minimum=0.0)
    dram_refresh: str = spec_field(
        "all-bank", help="all-bank: every pseudo-channel refreshes all its banks (REFab) "
                         "every dram_trefi_s, blocked for dram_trfc_s; per-bank: one bank "
                         "(REFsb) every dram_trefi_s / banks, blocked for dram_trfcsb_s while "
                         "the controller serves the others; none: no refresh (what the "
                         "RTL's Ramulator 2 flow does for HBM2, see the docs)",
        choices=DRAM_REFRESH)
    dram_trefi_s: float = spec_field(3.9e-6, help="refresh interval (tREFI)", minimum=0.0)
    dram_trfc_s: float = spec_field(350e-9, help="all-bank refresh time (tRFC)", minimum=0.0)
    dram_trfcsb_s: float = spec_field(160e-9, help="per-bank refresh time (tRFC_SB)",
                                      minimum=0.0)
    dram_trrefd_s: float = spec_field(
        8e-9, help="per-bank refresh to an activation of another bank (tRREFD)", minimum=0.0)
    dram_tcwl_s: float = spec_field(2e-9, help="write command to data (tCWL)", minimum=0.0)
    dram_twtrs_s: float = spec_field(3e-9, help="write to read, other bank group (tWTR_S)",
                                     minimum=0.0)
    dram_twtrl_s: float = spec_field(4e-9, help="write to read, same bank group (tWTR_L)",
                                     minimum=0.0)
    dram_trtw_s: float = spec_field(2e-9, help="read to write bus turnaround (tRTW)",
                                    minimum=0.0)
    dram_write_batch: int = spec_field(
        20, help="writes a channel's controller drains per read/write switch", minimum=1)
    dram_outstanding_per_channel: int = spec_field(
        16, help="requests one HBM channel holds in flight (0: unlimited)", minimum=0)
    # ------------------------------------------------------------ top-k engine
    topk_parallelism: int = spec_field(help="comparators of the top-k engine (P)", minimum=1)
    topk_pass_overhead_cycles: int = spec_field(
        help="fixed cycles of one quick-select pass besides ceil(n / P)")
    topk_final_latency_cycles: int = spec_field(
        help="pipeline depth of the final compare, prefix-sum and zero-eliminator pass")
    topk_mode: str = spec_field(
        "expected", help="expected: mean quick-select cycles over seeded random trials; "
                         "seeded: one run of the algorithm on the scores (the workload's "
                         "MiniLM scores when it names them, else seeded random ones)",
        choices=TOPK_MODES)
    topk_seed: int = spec_field(1, help="seed of the pivot choices and random scores")
    topk_trials: int = spec_field(200, help="random trials averaged in expected mode",
                                  minimum=1)
    requant_threshold: float = spec_field(
        0.05, help="an attention row whose largest probability is below this re-fetches "
                   "its keys' LSBs (decided on real scores in seeded mode, from the "
                   "expected distribution otherwise: hwsim/accelerators/spatten/requant.py)",
        minimum=0.0)
    # ------------------------------------------------------------ scheduling
    request_overlap: bool = spec_field(
        True, help="consecutive requests (heads, query blocks, trace rows) overlap in the "
                   "pipeline, as the RTL controller streams them: an op costs its busiest "
                   "stage and the pipeline depths are hidden; false charges each op its "
                   "full dependency chain and depths (a lone kernel)")
    # ------------------------------------------------------------ energy
    logic_scale: float = spec_field(
        help="45 nm -> this node factor for logic energy (C·V²)", minimum=0.0)
    sram_scale: float = spec_field(
        help="45 nm -> this node factor for SRAM and wire energy", minimum=0.0)
    kv_buffer_bank_bytes: float = spec_field(
        help="size of one SRAM macro of the key and value buffers (sets its energy)")
    act_buffer_bank_bytes: float = spec_field(
        help="size of one SRAM macro of the activation and query buffers")
    fifo_bank_bytes: float = spec_field(help="size of the top-k and fetcher FIFO macros")
    crossbar_pj_per_byte: float = spec_field(help="crossbar and fetcher energy per byte")
    dram_pj_per_byte: float = spec_field(
        help="HBM2 energy per byte moved: on-die data movement and I/O, activations apart")
    dram_act_pj: float = spec_field(909.0, help="HBM2 energy of one row activation and its "
                                                "precharge", minimum=0.0)
    dram_refresh_bank_pj: float = spec_field(
        0.0, help="HBM2 energy of refreshing one bank (a REFab counts its pseudo-channel's "
                  "banks, a REFsb one); 0: no primary source gives it (see the docs)",
        minimum=0.0)
    static_power_w: float = spec_field(help="leakage and clock power whenever it runs")
    published_power_w: float = spec_field(0.0, help="published total power (reports only)")

    def __post_init__(self):
        if self.query_block < 1:  # pragma: no cover - spec_field checks minimum
            raise InputError("must be >= 1", field="spec.query_block")
        lost = self.dram_trfc_s + self.dram_trp_s + self.dram_trtp_s + self.dram_trcd_s
        if self.dram_refresh == "all-bank" and lost >= self.dram_trefi_s:
            raise InputError(
                f"a refresh with its drain and reopening (tRFC + tRP + tRTP + tRCD = "
                f"{lost:g} s) must fit in dram_trefi_s ({self.dram_trefi_s:g} s)",
                field="spec.dram_trfc_s")
        lost_sb = self.dram_trfcsb_s + self.dram_trp_s + self.dram_trtp_s + self.dram_trcd_s
        if self.dram_refresh == "per-bank" and lost_sb >= self.dram_trefi_s:
            raise InputError(
                f"a per-bank refresh with its drain and reopening (tRFC_SB + tRP + tRTP + "
                f"tRCD = {lost_sb:g} s) must fit in dram_trefi_s ({self.dram_trefi_s:g} s)",
                field="spec.dram_trfcsb_s")

    # ------------------------------------------------------------ derived
    @property
    def cycle_s(self) -> float:
        return 1.0 / self.clock_hz

    @property
    def qk_lanes(self) -> int:
        """Dot products of ``dot_width`` lanes the Q·K array completes per cycle."""
        return max(1, self.qk_multipliers // self.dot_width)

    @property
    def pv_lanes(self) -> int:
        """Value rows (of ``dot_width``) the prob·V array weights per cycle."""
        return max(1, self.pv_multipliers // self.dot_width)

    @property
    def dram_bw_bytes_per_s(self) -> float:
        return self.dram_channels * self.dram_channel_bytes_per_cycle * self.clock_hz

    @property
    def dram_geometry(self):
        """Channels, pseudo-channels, banks and rows for :mod:`hwsim.dram`."""
        from hwsim.dram import DramGeometry  # noqa: PLC0415

        return DramGeometry(self.dram_channels, self.dram_pseudo_channels,
                            self.dram_bank_groups, self.dram_banks_per_group,
                            self.dram_row_bytes, self.dram_transaction_bytes,
                            self.dram_channel_bytes_per_cycle * self.clock_hz,
                            self.dram_outstanding_per_channel, self.dram_write_batch)

    @property
    def dram_timing(self):
        """Bank and activation timings for :mod:`hwsim.dram`; a burst is one
        transaction on a pseudo-channel's share of the channel's bytes per cycle."""
        from hwsim.dram import DramTiming  # noqa: PLC0415

        burst_s = (self.dram_transaction_bytes * self.dram_pseudo_channels
                   / (self.dram_channel_bytes_per_cycle * self.clock_hz))
        return DramTiming(burst_s, self.dram_trcd_s, self.dram_trp_s, self.dram_tras_s,
                          self.dram_trc_s, self.dram_trrds_s, self.dram_trrdl_s,
                          self.dram_tfaw_s, self.dram_tcl_s, self.dram_tccdl_s,
                          self.dram_trtp_s, self.dram_refresh, self.dram_trefi_s,
                          self.dram_trfc_s, self.dram_tcwl_s, self.dram_twtrs_s,
                          self.dram_twtrl_s, self.dram_trtw_s, self.dram_trfcsb_s,
                          self.dram_trrefd_s)

    @property
    def key_buffer_bytes(self) -> int:
        return self.key_buffer_tokens * self.dot_width * self.buffer_bits // 8

    @property
    def value_buffer_bytes(self) -> int:
        return self.value_buffer_tokens * self.dot_width * self.buffer_bits // 8
