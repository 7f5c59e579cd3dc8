"""The Volta target: an NVIDIA V100 as kernels of thread blocks on SMs.

Each op becomes one or more *kernels* (:mod:`.gemm`, :mod:`.attention`,
:mod:`.memops`); a kernel is a grid of thread blocks with a tile shape, whose
*occupancy* (blocks resident per SM) is limited by registers, shared memory and
threads; the blocks run in *waves* over the 80 SMs, the last one possibly a
partial *tail*. Blocks become tasks on the SMs' lanes and the shared HBM pool of
the event engine (:mod:`.gpu`), so waves and HBM contention come out of the
run. Per-block time comes from the tensor-core (m8n8k4) or CUDA-core rates (a
GEMM's at its main loop's efficiency from the loop's instruction mix,
:mod:`.mainloop`, and the tensor cores' at the clock the board holds under load),
shared-memory bandwidth with bank conflicts counted from addresses
(:mod:`.smem`), L2 bandwidth and HBM streams at achievable (not peak)
bandwidths, plus kernel launch overhead. Attention runs ``standard``,
``flash`` (xformers on sm_70) or ``fastattention``; part of the KV cache may
live in host memory over PCIe; all-reduces run as a ring over NVLink; what does
not fit in HBM is an error saying by how much (:mod:`.memory`).

``TARGET.kernels(op, graph, spec, tiling)`` reports each kernel's grid, block
tile, occupancy, waves and bound. The presets (``volta-v100-sxm2``, the
default, and ``volta-v100-pcie``) name the source of every number.
"""

from .spec import VoltaSpec
from .target import TARGET, VoltaTarget

__all__ = ["TARGET", "VoltaSpec", "VoltaTarget"]
