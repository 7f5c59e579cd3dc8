"""The Volta hardware specification: one frozen dataclass, loaded from a preset.

Units live in the field names. Per-SM rates are per clock of ``clock_hz``; memory
rates are *achievable* bandwidths (what microbenchmarks reach), with the
datasheet peak kept beside them for reports. The presets say where each number
comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwsim.spec import spec_field

LAYOUTS = ("row", "padded", "permuted")


@dataclass(frozen=True, kw_only=True)
class VoltaSpec:
    """A Volta GPU as a preset gives it (``presets/*.yaml``; each field's ``help`` says
    what it is, the preset where its number comes from)."""

    # ------------------------------------------------------------ organisation
    sms: int = spec_field(help="streaming multiprocessors", minimum=1)
    clock_hz: float = spec_field(help="SM clock (boost)", minimum=1.0)
    tensor_flops_per_cycle_per_sm: dict[str, float] = spec_field(
        help="tensor-core FLOP per cycle per SM by input dtype (fp16: 8 cores x 64 FMA x 2); "
             "a dtype the cores lack is left out", minimum=1e-9)
    cuda_flops_per_cycle_per_sm: dict[str, float] = spec_field(
        help="CUDA-core FLOP per cycle per SM by dtype (fp32: 64 FMA lanes x 2); a dtype the "
             "cores lack is left out", minimum=1e-9)
    sfu_ops_per_cycle_per_sm: float = spec_field(
        help="special-function (exp, rsqrt, ...) results per cycle per SM", minimum=1.0)
    hmma_pipe_efficiency: float = spec_field(
        help="fraction of the tensor cores' per-clock peak that a stream of independent "
             "HMMA instructions sustains (a microbenchmark, at any clock); a GEMM's main "
             "loop takes its issue slots on top (hwsim.accelerators.volta.mainloop)",
        minimum=0.01, maximum=1.0)
    cuda_pipe_efficiency: float = spec_field(
        help="fraction of the CUDA cores' FMA peak that a compiled GEMM main loop's FMA "
             "stream sustains (register-bank conflicts of its allocation); its issue "
             "slots come on top (hwsim.accelerators.volta.mainloop)", minimum=0.01,
        maximum=1.0)
    tensor_clock_hz: float = spec_field(
        0.0, help="SM clock the board holds while its tensor cores run at full rate "
                  "(a power-limited load); 0: clock_hz", minimum=0.0)
    warps_for_peak: int = spec_field(
        8, help="resident warps per SM needed to keep the tensor cores busy; fewer run "
                "proportionally slower", minimum=1)
    # ------------------------------------------------------------ per-SM limits
    max_threads_per_sm: int = spec_field(help="resident threads per SM", minimum=32)
    max_blocks_per_sm: int = spec_field(help="resident thread blocks per SM", minimum=1)
    registers_per_sm: int = spec_field(help="32-bit registers per SM", minimum=1)
    register_alloc_unit: int = spec_field(
        256, help="registers are allocated per warp in multiples of this", minimum=1)
    smem_per_sm_bytes: float = spec_field(help="shared memory per SM (carve-out maximum)")
    smem_alloc_unit_bytes: int = spec_field(256, help="shared memory allocation granularity",
                                            minimum=1)
    # ------------------------------------------------------------ shared memory
    smem_banks: int = spec_field(help="shared-memory banks", minimum=1)
    smem_bank_bytes: int = spec_field(help="bytes per bank per clock", minimum=1)
    smem_efficiency: float = spec_field(
        help="achievable fraction of banks x bank_bytes per clock (microbenchmark)",
        minimum=0.01)
    smem_latency_cycles: float = spec_field(help="shared-memory load latency")
    flash_smem_layout: str = spec_field(
        "permuted", help="shared-memory operand layout of the `flash` (xformers) kernel: "
                         "row (unpadded), padded (+8 halves per row) or permuted "
                         "(conflict-free, as CUTLASS's Volta layouts are)",
        choices=LAYOUTS)
    # ------------------------------------------------------------ L2 and HBM
    l2_bytes: float = spec_field(help="L2 cache")
    l2_bw_bytes_per_s: float = spec_field(help="achievable L2 load bandwidth, all SMs",
                                          minimum=1.0)
    l2_latency_cycles: float = spec_field(help="L2 hit latency")
    dram_bytes: float = spec_field(help="HBM2 (the device DRAM) capacity (0: not checked)")
    dram_peak_bw_bytes_per_s: float = spec_field(
        help="HBM2 datasheet bandwidth: the ceiling of reports and plots")
    dram_bw_bytes_per_s: float = spec_field(help="achievable HBM2 bandwidth, all SMs",
                                            minimum=1.0)
    dram_latency_cycles: float = spec_field(help="HBM load latency (L2 miss), unloaded")
    l1_bytes: float = spec_field(
        help="L1 data cache an SM's loads hit in (the unified L1/shared memory less the "
             "shared-memory carve-out of the kernel that measured it)")
    l1_latency_cycles: float = spec_field(help="L1 hit latency")
    block_turnover_cycles: float = spec_field(
        help="clocks between a thread block's last instruction and its successor's first on "
             "the freed slot (retire and launch)")
    kernel_launch_s: float = spec_field(
        help="device side of a kernel launch: from its enqueue (the host's launch call, "
             "in the host lane of hwsim.runtime, has returned) to its start on an idle GPU "
             "(the front end fetches the launch, the work distributor hands out blocks)")
    kernel_gap_s: float = spec_field(
        0.0, help="gap between a kernel and the next one already queued behind it (the front "
                  "end has processed the queued launch while the first ran): the part of "
                  "kernel_launch_s a queued kernel does not hide")
    # ------------------------------------------------------------ host and links
    pcie_bw_bytes_per_s: float = spec_field(help="achievable host<->device bandwidth (pinned)",
                                            minimum=1.0)
    pcie_latency_s: float = spec_field(0.0, help="latency of one host<->device transfer")
    host_kv_fraction: float = spec_field(
        0.0, help="fraction of the KV cache kept in host memory (CPU-GPU cooperation); "
                  "attention streams it over PCIe, overlapped with compute")
    host_bytes: float = spec_field(0.0, help="host memory for the offloaded KV (0: not checked)")
    link_bw_bytes_per_s: float = spec_field(
        0.0, help="per-direction bandwidth of one ring step between GPUs (0: no links)")
    link_latency_s: float = spec_field(0.0, help="latency of one ring step")
    # ------------------------------------------------------------ energy
    tensor_pj_per_flop: dict[str, float] = spec_field(
        help="energy per tensor-core FLOP by dtype, operand delivery from registers included")
    cuda_pj_per_flop: dict[str, float] = spec_field(help="energy per CUDA-core FLOP by dtype")
    sfu_pj_per_op: float = spec_field(help="energy per special-function result")
    smem_pj_per_byte: float = spec_field(help="shared memory byte read or written")
    l2_pj_per_byte: float = spec_field(help="L2 byte read or written")
    dram_pj_per_byte: float = spec_field(help="HBM2 (DRAM) byte read or written")
    pcie_pj_per_byte: float = spec_field(help="byte over PCIe")
    link_pj_per_byte: float = spec_field(0.0, help="byte over NVLink")
    static_power_w: float = spec_field(help="power drawn whenever the GPU runs (idle power)")
    power_limit_w: float = spec_field(
        help="board power limit: firmware lowers the clock so that no op draws more "
             "(hwsim.simulate.power_capped_s)")

    def __post_init__(self):
        if not 0.0 <= self.host_kv_fraction <= 1.0:
            from hwsim.errors import InputError

            raise InputError(f"must be between 0 and 1, got {self.host_kv_fraction}",
                             field="spec.host_kv_fraction")
        if self.tensor_clock_hz > self.clock_hz:
            from hwsim.errors import InputError

            raise InputError(f"must not exceed clock_hz ({self.clock_hz:g} Hz, the boost "
                             f"clock), got {self.tensor_clock_hz:g}",
                             field="spec.tensor_clock_hz")
