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

A block that each thread sweeps again and again (a packed A block once per B
micro-panel) is re-read from the nearest level that holds it (:func:`reread`).
When the blocks of all threads together overflow the shared last level, the
last level still holds a share of them: a cyclic sweep under its pseudo-random
replacement hits in proportion to capacity over working set, and only the rest
comes from DRAM. Without that share, one more token can flip every re-read from
L3 to DRAM (GPT-2's LM head at 218 tokens on 64 threads read its 154 MB weight's
worth of A blocks 56 times from DRAM).
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


def reread(step, block_bytes: float, total_bytes: float, mach: Machine, threads: int = 1,
           home: str = "dram") -> None:
    """``total_bytes`` of re-reads of a ``block_bytes`` block per thread (module doc)."""
    level = nearer(resident(block_bytes, mach, threads), home)
    if level != "dram" or total_bytes <= 0:
        step.read(level, total_bytes)
        return
    hit = min(1.0, mach.llc_bytes / max(1.0, block_bytes * threads))
    step.read("l3", hit * total_bytes)
    step.read("dram", (1.0 - hit) * total_bytes)


def nearer(a: str, b: str) -> str:
    """The closer to the core of two levels."""
    return a if LEVELS.index(a) <= LEVELS.index(b) else b
