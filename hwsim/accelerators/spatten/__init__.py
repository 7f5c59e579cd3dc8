"""The SpAtten target: a sparse-attention accelerator with cascade pruning.

SpAtten (Wang, Zhang, Han, HPCA 2021) computes attention one (head, query)
request at a time through a pipeline of units, each a simpy resource here:

- **fetchers and HBM2** (:mod:`.work`): ``fetch_channels`` fetchers read keys,
  values and queries through a crossbar that interleaves every 32-byte
  transaction onto the next of ``dram_channels`` HBM2 channels; each channel is
  its own queue (unit ``hbm<i>``), the fetchers a pool;
- **Q·K array** (``qk``): 512 12-bit multipliers, 8 keys per cycle at head dim 64;
- **softmax lanes** (``softmax``): 8 scores per cycle, 87 cycles deep, which
  also check the largest probability for progressive quantization;
- **top-k engine** (``topk``, :mod:`.topk`): quick-select with P = 16
  comparators, ``ceil(n / P) + 3`` cycles a pass, then a compaction pass; an
  expected-cycles mode and a seeded mode that runs the algorithm on random or
  real (MiniLM) scores;
- **prob·V array** (``pv``): 512 multipliers, 8 value rows per cycle;
- key and value buffers of 2,048 tokens: longer contexts run in chunks that
  re-fetch per block of queries; causal, sliding-window and block-sparse rows
  are scored and fetched as they are (:mod:`.attention`);
- an activation buffer that keeps activations on chip between ops when they
  fit beside the others still needed (:mod:`.residency`); everything else goes
  through HBM, and each op's description names what stayed resident;
- progressive quantization's decision (:mod:`.requant`): rows whose largest
  probability is below ``requant_threshold`` re-fetch their keys' LSBs.

Cascade token and head pruning, local value pruning and bit widths reach it
through the workload's pruning steps (``spatten``, ``spatten-heads``,
``quant``), or through SpAtten's own CSV traces (``trace_format:
spatten-csv``, :mod:`hwsim.workload.spatten_csv`). Projections and FFNs run
on the same arrays as matrix products (:mod:`.ops`). Energy is Horowitz's
45 nm scaled to 40 nm, 12-bit multipliers, SRAM by macro size, HBM2 per bit
(:mod:`.energy`). ``TARGET.metrics(report)`` gives DRAM bytes by tensor class
(keys, values, queries, LSB re-fetch, weights), top-k cycles, re-fetch counts,
attention-only figures, power and the units that limit the latency. Presets: ``spatten`` (full) and
``spatten-eighth`` (the 1/8 configuration compared with A3 and MNNFast).
"""

from .spec import SpattenSpec
from .target import TARGET, SpattenTarget

__all__ = ["TARGET", "SpattenSpec", "SpattenTarget"]
