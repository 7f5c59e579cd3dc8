"""Where an op's operands live when it starts, and where its results go.

Ops run one after another, so an op finds in the caches what the previous ops
left there. The rule, by tensor kind and size:

- weights (``param``) and the KV cache (``kv_cache``) come from DRAM: a forward
  pass or a decode step touches each once, long after it was last used;
- activations and kernel-study inputs were just produced (or, in a kernel
  benchmark, are warm from the previous repetition): they are in the smallest
  cache that holds them at half occupancy, L1 or L2 of the core that made them,
  else the shared last level, else DRAM;
- a result rests in the same way: in cache when it fits, else written to DRAM.

Data in one core's L1 or L2 that other threads read comes to them over the mesh,
at the last level's rate: with more than one thread, ``l1``/``l2`` become ``l3``.
"""

from __future__ import annotations

from .spec import Machine

LEVELS = ("l1", "l2", "l3", "dram")


def level_of(kind: str, nbytes: float, mach: Machine, threads: int = 1) -> str:
    if kind in ("param", "kv_cache"):
        return "dram"
    spec = mach.spec
    if nbytes <= spec.l1d_bytes / 2:
        level = "l1"
    elif nbytes <= mach.l2_per_core / 2:
        level = "l2"
    elif nbytes <= mach.llc_bytes / 2:
        level = "l3"
    else:
        return "dram"
    return "l3" if threads > 1 else level


def resident(nbytes: float, mach: Machine, threads: int = 1) -> str:
    """The level a block of ``nbytes`` that one thread re-reads stays in."""
    spec = mach.spec
    if nbytes <= spec.l1d_bytes / 2:
        return "l1"
    if nbytes <= mach.l2_per_core / 2:
        return "l2"
    if nbytes * threads <= mach.llc_bytes / 2:
        return "l3"
    return "dram"


def nearer(a: str, b: str) -> str:
    """The closer to the core of two levels."""
    return a if LEVELS.index(a) <= LEVELS.index(b) else b
