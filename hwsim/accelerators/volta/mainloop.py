"""A GEMM main loop's efficiency from its instruction mix, per tile and data type.

A Volta GEMM kernel (cuBLAS's ``volta_*gemm_*`` and CUTLASS's sm_70 kernels, whose
structure is public: ``include/cutlass/gemm/threadblock/mma_pipelined.h``) runs one
*main-loop iteration* per K step of its block tile (``Tile.tk``): every warp of the
block issues

- its matrix instructions: ``HMMA.884`` on the tensor cores (one ``mma.m8n8k4`` of
  PTX is four 8x8x4 products, one per quad pair, 1,024 multiply-adds a warp; sm_70
  executes it as four ``HMMA.884.F32.F32`` steps of 256 with fp32 accumulation: Jia et
  al., "Dissecting the NVIDIA Volta GPU Architecture via Microbenchmarking", arXiv
  1804.06826, their HMMA section; Raihan, Goli and Aamodt, "Modeling Deep Learning
  Accelerator Enabled GPUs", arXiv 1811.08309, section III), or ``FFMA`` / ``HFMA2`` /
  ``DFMA`` / ``IDP4A`` on the CUDA cores (one multiply-add per thread, two for
  ``HFMA2``, four int8 ones for ``IDP4A``);
- its **fragment loads** from shared memory (``LDS.128``). On the tensor cores every
  thread holds its own four halves of A and of B for each ``mma.m8n8k4`` (sm_70 has no
  ``ldmatrix``), so the quad pairs of a warp that share rows or columns load them
  twice: per K step of 4 a thread loads 8 bytes of A for every 16 rows of its warp
  tile and 8 bytes of B for every 16 columns (:func:`fragment_bytes_per_thread`). On
  the CUDA cores a thread of an r x c thread tile loads its r + c operands per k;
- the next stage's **global loads** (``LDG.128``) and their **stores** to shared
  memory (``STS.128``): the block tile's A and B for one K step, spread over the
  block's threads;
- a fixed **overhead**: the ``BAR.SYNC`` that hands the stored stage to the block,
  the global pointers' 64-bit advance (two instructions each for A and B), the
  global loads' guard predicates updated (``clear_mask``, one each), the
  shared-memory write and read stages toggled (two each), and the loop counter's
  decrement, compare and branch: :data:`LOOP_OVERHEAD_INSTRUCTIONS` (counted from
  ``mma_pipelined.h``'s loop body).

Each SM partition (four per SM) has one warp scheduler that issues one instruction
per clock (NVIDIA, "Volta GV100" whitepaper WP-08608-001, the SM chapter; Jia et al.
measure the same issue rate). The matrix pipe of a partition is busy
:func:`pipe_cycles` clocks per matrix instruction: an ``HMMA.884.F32`` step of 256
multiply-adds on the partition's two tensor cores of 64 each (whitepaper), 2 clocks;
an ``FFMA`` for 32 threads on 16 FP32 lanes, 2 clocks; a ``DFMA`` on 8 FP64 lanes, 4.
Every other instruction needs an issue slot of its own, so a warp's iteration takes
``max(pipe, issued)`` clocks of its partition: the matrix pipe's time, or, if the
loop issues more instructions than that, the issue slots. The resident warps of a
partition share both in the same proportion, so the ratio is a warp's:
:func:`issue_efficiency` = pipe / max(pipe, issued), at most 1.

At cuBLAS's tiles the matrix pipe, not issue, limits: a 64x64 warp tile with K step
32 issues 512 ``HMMA`` and 58 other instructions per iteration against 1,024 pipe
clocks, and even the 16x32 warp tile of the 32x32 SGEMM issues 34 others against 128
``FFMA`` of 2 clocks. The efficiency falls below 1 only for tiles that cuBLAS does
not ship (a warp tile of 16x16 with a K step of 4 spends more slots on loads and
loop than the pipe leaves free). What else a main loop loses is not in the mix:
the tensor pipe's sustained rate (``hmma_pipe_efficiency``: a stream of independent
``HMMA`` reaches 90.2 % of the 1,024 FLOP/clock, Jia et al.), the CUDA cores' rate in
a compiled SGEMM loop (``cuda_pipe_efficiency``, a calibration point), and the clock
the board holds under the load (``tensor_clock_hz``): those are the spec's, applied
by :meth:`.gpu.Gpu.tensor_rate_sm` and :meth:`.gpu.Gpu.cuda_rate_sm`.

The efficiency depends only on the tile, the compute type and the operands' widths,
so it is worked out once per such key (:func:`loop_efficiency`, memoised) and kept on
the kernel (``Kernel.loop_efficiency``), never per task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

PARTITIONS_PER_SM = 4  # warp schedulers per SM, one instruction per clock each (whitepaper)
WARP = 32
LDS_BYTES = 16  # LDS.128 / LDG.128 / STS.128: one 16-byte vector per thread
# BAR.SYNC 1, the A and B global pointers' 64-bit advance 4, their guard predicates
# (clear_mask) 2, the shared write and read stages toggled 4, the loop counter's
# decrement, compare and branch 3: the loop body of CUTLASS's mma_pipelined.h, per
# warp and iteration (M: counted from the source, not from cuBLAS's SASS)
LOOP_OVERHEAD_INSTRUCTIONS = 14
# multiply-adds one thread does per matrix instruction on the CUDA cores
SIMT_MACS_PER_INSTRUCTION = {"fp16": 2, "int8": 4}  # HFMA2, IDP4A; FFMA and DFMA: 1
HMMA_STEP_MACS = 256  # one HMMA.884.F32 step (a quarter of a warp's mma.m8n8k4)
MMA_SYNC_K = 4  # the K of mma.m8n8k4
MMA_SYNC_BLOCK = 16  # the 16x16 output block of one warp-wide mma.m8n8k4 (2x2 quad pairs)


@dataclass(frozen=True)
class LoopMix:
    """One warp's instructions in one main-loop iteration (one K step of the block)."""

    mma: float  # matrix instructions (HMMA.884 steps, FFMA, HFMA2, DFMA or IDP4A)
    lds: float  # fragment loads from shared memory (LDS.128)
    ldg: float  # the next stage's global loads (LDG.128)
    sts: float  # their stores to shared memory (STS.128)
    overhead: float  # barrier, pointer and stage updates, loop control
    mma_cycles: float  # clocks of the partition's matrix pipe per matrix instruction

    @property
    def issued(self) -> float:
        """Issue slots the iteration takes (one per instruction)."""
        return self.mma + self.lds + self.ldg + self.sts + self.overhead

    @property
    def pipe(self) -> float:
        """Clocks the iteration keeps the partition's matrix pipe busy."""
        return self.mma * self.mma_cycles


def fragment_bytes_per_thread(tile, ea: float, eb: float) -> float:
    """Bytes one thread loads from shared memory per K step of the block tile.

    Tensor cores: per ``mma.m8n8k4`` K step (4) a thread loads 4 elements of A for
    each 16 rows of its warp tile and 4 of B for each 16 columns (the register
    fragments are reused across the warp tile's other blocks); the two quad pairs
    that share a row or column block each load it, so a warp loads twice the
    operand bytes it uses. CUDA cores: a thread of an r x c thread tile (square when
    it can be, ``r = c = sqrt(outputs)``) loads r values of A and c of B per k."""
    k = warp_k(tile)
    if tile.tensor:
        per_k4 = (tile.wm / MMA_SYNC_BLOCK) * MMA_SYNC_K * ea \
            + (tile.wn / MMA_SYNC_BLOCK) * MMA_SYNC_K * eb
        return per_k4 * k / MMA_SYNC_K
    side = math.sqrt(tile.wm * tile.wn / WARP)
    return side * (ea + eb) * k


def warp_k(tile) -> float:
    """The K one warp multiplies over per main-loop iteration: the block's K step, or
    its share of it in a sliced-K tile (``tile.slices`` groups of warps each take
    ``tk / slices`` of every K step and add their partial tiles at the end)."""
    return tile.tk / getattr(tile, "slices", 1)


def matrix_flops_per_cycle_per_sm(spec, compute: str, tensor: bool) -> float:
    """The SM's per-clock FLOPs of ``compute`` on the pipe that runs its matrix work
    (the CUDA cores' fp32 rate for a type they do not list, as :mod:`.gpu` does)."""
    if tensor:
        return spec.tensor_flops_per_cycle_per_sm[compute]
    rates = spec.cuda_flops_per_cycle_per_sm
    return rates.get(compute, rates.get("fp32", 128.0))


def pipe_cycles(flops_per_cycle_per_sm: float, compute: str, tensor: bool) -> float:
    """Clocks one matrix instruction keeps its partition's pipe busy: its FLOPs over
    the partition's share of the SM's per-clock FLOPs (``HMMA.884.F32`` step: 512 FLOP
    at 256 a clock, 2; ``FFMA``: 64 at 32, 2; ``DFMA``: 64 at 16, 4)."""
    per_clock = flops_per_cycle_per_sm / PARTITIONS_PER_SM
    if tensor:
        return 2.0 * HMMA_STEP_MACS / per_clock
    return 2.0 * WARP * SIMT_MACS_PER_INSTRUCTION.get(compute, 1) / per_clock


def loop_mix(tile, compute: str, ea: float, eb: float,
             flops_per_cycle_per_sm: float) -> LoopMix:
    """The instruction mix of one warp's main-loop iteration (see the module);
    ``flops_per_cycle_per_sm``: the matrix pipe's rate
    (:func:`matrix_flops_per_cycle_per_sm`)."""
    macs = tile.wm * tile.wn * warp_k(tile)  # one warp's multiply-adds per iteration
    if tile.tensor:
        mma = macs / HMMA_STEP_MACS
    else:
        mma = macs / (WARP * SIMT_MACS_PER_INSTRUCTION.get(compute, 1))
    lds = math.ceil(fragment_bytes_per_thread(tile, ea, eb) / LDS_BYTES)
    threads = tile.warps * WARP
    stage = math.ceil((tile.tm * ea + tile.tn * eb) * tile.tk / (threads * LDS_BYTES))
    return LoopMix(float(mma), float(lds), float(stage), float(stage),
                   float(LOOP_OVERHEAD_INSTRUCTIONS),
                   pipe_cycles(flops_per_cycle_per_sm, compute, tile.tensor))


def issue_efficiency(mix: LoopMix) -> float:
    """The matrix pipe's share of an iteration's clocks: pipe / max(pipe, issued)."""
    return mix.pipe / max(mix.pipe, mix.issued)


@lru_cache(maxsize=1024)
def _efficiency(tile, compute: str, ea: float, eb: float, flops_per_cycle: float) -> float:
    return issue_efficiency(loop_mix(tile, compute, ea, eb, flops_per_cycle))


def loop_efficiency(spec, tile, compute: str, ea: float, eb: float) -> float:
    """:func:`issue_efficiency` of ``tile``'s main loop for ``compute`` with operands
    of ``ea`` and ``eb`` bytes on ``spec``'s pipes, memoised per (tile, type, widths,
    pipe rate): a GEMM's candidate tiles ask for a handful of keys in a whole run."""
    return _efficiency(tile, compute, ea, eb,
                       matrix_flops_per_cycle_per_sm(spec, compute, tile.tensor))
