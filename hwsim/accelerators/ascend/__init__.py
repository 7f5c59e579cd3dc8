"""The Huawei Ascend NPU target: DaVinci cube and vector cores, pipe by pipe.

Presets: ``ascend-910b`` (default; split architecture: 24 AIC cube cores and
48 AIV vector cores at 1.8 GHz, 192 MiB L2) and ``ascend-910a`` (32 coupled AI
cores at 1 GHz, 32 MiB L2).

An op becomes a kernel: a start (``launch``), then tiles on the pipes of each
core, which run in parallel and wait for one another the way the chip's flags
make them:

- MTE2 brings data from GM (through the L2) into L1 or the UB; re-reads of a
  block still in the L2 hit it, others are HBM streams that share the HBM
  bandwidth (the pool ``hbm``) — :mod:`.chip`;
- the cube multiplies 16x16x16 fp16 fractals per cycle out of L0A/L0B into
  L0C, fed by MTE1 from L1; FixPipe drains L0C to GM — :mod:`.gemm`;
- the vector unit works on 256-byte repeats in the UB at a cost per function;
  MTE3 writes the UB back to GM — :mod:`.vector`;
- attention runs as the unfused standard kernels, one-level FlashAttention or
  FastAttention's two-level tiling, with or without tiling-mask —
  :mod:`.attention`;
- tensor-parallel all-reduces run over the HCCS links as a ring, optionally
  overlapped with the matmul before them (tiling-AllReduce) — :mod:`.comm`;
- a workload that does not fit in HBM is an error saying by how much —
  :mod:`.memory`.

Buffers (L1, L0A, L0B, L0C, UB) bound the tiles; dims round up to 16 on the
cube and transfers to 512-byte bursts. Each core's tiles become a few tasks
per pipe (:mod:`.pipeline`): events are tiles, never cycles. Energy is the
actions counted by the lowering priced by :mod:`.energy`, plus static power.
See ``docs/targets/ascend.md``.
"""

from .spec import AscendSpec
from .target import TARGET, AscendTarget

__all__ = ["TARGET", "AscendSpec", "AscendTarget"]
