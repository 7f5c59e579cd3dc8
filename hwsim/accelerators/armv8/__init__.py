"""The ARMv8 CPU target: a socket of NEON cores in the spirit of the
Execution-Cache-Memory (ECM) model.

A core has FMA pipes of a vector width, 32 vector registers, load and store
ports, a private L1D and L2 (or an L2 shared by a cluster); the socket has a
shared last-level cache and DDR channels every core shares. An op runs as a
parallel loop over threads, one per core, each doing the same share of work:

- its **in-core time**: the micro-kernel's FMAs, FMA latency chains and issue
  slots (:mod:`.kernels`), packing's loads, stores and transposes, the vector
  instructions of exp and friends (:mod:`.vector`);
- the **data each cache level must deliver**: bytes from L2 to L1, from the last
  level (or a peer core, over the mesh) to L2, and from DRAM, composed with the
  in-core time by the ECM rule ``max(T_OL, T_nOL + T_L2 + T_L3 + T_TLB)`` (:mod:`.ecm`),
  the last term the page-table walks of kernels that walk unpacked operands;
- **cold ops** (:mod:`.placement`): every operand comes from DRAM once and every
  result is written back to DRAM; re-reads inside an op come from the nearest level
  that holds the block, by the sweep law of its reuse distance;
- **DRAM** as transfers that hold slots of a socket-wide pool (``pools``), so
  that cores compete for the channels in the event run; transfers overlap the
  tile being computed (hardware prefetch one tile ahead);
- **threads**: fork, barriers between phases (OpenBLAS's packed-B hand-off,
  split-K merges) and join, each a tree of core-to-core cache-line hops.

GEMMs follow the workload's ``tiling.gemm`` (:mod:`.gemm`): ``openblas`` (packed
panels, 16x4 / 8x4 kernels, GEMM_P/Q/R blocking, power-of-two edge kernels),
``iaat`` (no packing, exact-size kernels chosen by an input-aware tiler),
``autotsmm`` (tall-and-skinny plans that pre-pack the small operand and stream
the large one) and ``auto`` (the fastest among the libraries whose domain the shape
is in). A kernel shape that does not fit the register budget is rejected with the
count. Attention is tiled FlashAttention-style to stay in L2, each K/V head read once
for its query group, with sliding windows, block-sparse keys and value pruning costed
(:mod:`.attention`). :meth:`ARMv8Target.breakdown` reports an op's in-core, L1, L2,
L3, TLB and DRAM times. Presets: ``armv8-kunpeng920``
(default), ``armv8-kunpeng920-2s`` (two sockets, four NUMA nodes),
``armv8-thunderx2``, ``armv8-ft2000plus``, ``armv8-graviton2``; the
model and the source of every number: ``docs/targets/armv8.md``.
"""

from .spec import ARMv8Spec, Machine
from .target import TARGET, ARMv8Target

__all__ = ["TARGET", "ARMv8Target", "ARMv8Spec", "Machine"]
