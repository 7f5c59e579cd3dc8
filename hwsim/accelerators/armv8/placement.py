"""Where an op's bytes come from: cold operands, write-back results, re-reads by
reuse distance, and the cost of walking an unpacked operand with a large stride.

**Ops start cold** but for the tensors the run carries between ops in the last level
(:mod:`hwsim.onchip`, taken off the plan's DRAM transfers afterwards by
:func:`.target.carried`). The simulator runs ops one after another, so every other
operand an op reads is fetched from DRAM the first time
(its stored bytes: a ``view`` aliases its root, :meth:`hwsim.ir.Graph.stored_bytes`)
and every result it writes is written back to DRAM: the caches are write-back,
so a written line reaches DRAM when it is evicted, and that transfer is counted
and timed on the DRAM pool like a read; only a carried tensor is reported as staying
on chip (the report's ``onchip``).

**Re-reads inside an op** (a packed block swept once per micro-panel, the K/V
blocks of a head shared by its query blocks, a row a normalization passes over
twice) come from the nearest level that still holds the data. Each cache level is
graded by the hit rate of a *cyclic sweep* of the block's reuse distance ``D`` at
that level (the bytes that pass through it between two uses of a line) in ``C``
bytes under pseudo-random replacement, :func:`sweep_hit`:

    h = exp(-(D / C) (1 - h))      (h = 1 while D <= C)

Only misses insert lines, so ``D (1 - h)`` lines enter between two uses and each
evicts a given line with probability ``1 / C``. The law is continuous in ``D``
(one more token never flips every re-read to DRAM), and it is what the Kunpeng
920's lmbench ``lat_mem_rd`` curves show beyond the last level: a 64 B-stride
chase (a cyclic sweep) of 1.5 and 2 times the capacity still hits about 48 % and
25 % of the time (the law: 42 % and 20 %), where a capacity-over-size ratio would
give 67 % and 50 % (openeuler-mirror/wayca-scheduler, tools/log.lat_mem_rd.NUMA.1.txt;
checked by tests/test_armv8_physics.py when the measurements are at hand).

The levels in series (:func:`reread`, :func:`reread_shares`):

- *L1*: a block that fits half the L1 is re-read from it (a binary rule, kept: the
  blocks the planners re-read past L1 are tens to hundreds of KiB, and the step from
  L1 to L2 is one of bandwidth inside the core, not a cliff to a shared port);
- *L2*, the core's own: the share ``h2`` of the re-reads hit it at the sweep rate of
  the block plus what the thread streams through L2 between two reads of a line (the
  planner names it: OpenBLAS's B micro-panel and C micro-tile; IAAT's and AutoTSMM's
  walked pieces of the other operand and C micro-tile), in the core's L2. A block past
  half the L2 once sent every re-read to the last level; with OpenBLAS's own
  blocking sized for L2 (a ``GEMM_P x GEMM_Q`` block, a few KiB of B and C between
  reuses) that made a 4x step in thread count that a real L2 does not have;
- *last level*: the L2's misses hit it at the sweep rate of the bytes all threads
  bring into it between two uses of a line, the rest come from DRAM.

Replacement policies: the Kunpeng 920's L2 (TSV110, 512 KiB, 8-way) is taken as
pseudo-random like its L3 (M: HiSilicon publishes no policy). The lmbench curves
above are the grounds: a chase of 1.5 times the L2 (768 KiB) still hits L2 about
30 % of the time on every memory node, where an LRU cyclic sweep would hit none and
the law says 42 %; below the capacity the measured hits fall short of the law (a
384 KiB chase hits about 60-80 %: other lines, and the uneven page colours of a
physically indexed L2, are not modelled). tests/test_armv8_l2.py checks it when the
measurements are at hand.

**Strided walks** (:func:`strided_walk`). A kernel that does not pack (IAAT,
AutoTSMM's streamed operand) walks an operand in place: each k-step loads a piece
of one column at a stride of the operand's leading dimension. Three things the
packed path avoids then cost:

- *TLB*: with a stride of a page or more every k-step touches a new page; once the
  pages of one walk exceed the TLB, every touch is a page-table walk
  (``tlb_walk_s``, which does not overlap the next one);
- *set conflicts*: addresses a power-of-two stride apart fall in a few sets of
  L1 and L2 (``ways`` lines each), so a walk's lines are evicted before the next
  row tile uses the rest of each line, and come again from farther away. The L1 is
  taken as indexed by the virtual address (a VIPT L1, as the Cortex-A76-class cores'
  64 KiB 4-way L1D; TSV110's indexing is not published); the L2 by the physical
  one, whose index bits above the page offset come from the page's frame: on the
  Kunpeng 920 a way of L2 spans 64 KiB, 16 pages of 4 KiB, so a page-sized stride
  spreads over 16 sets (128 lines) where the virtual address would give one (8):
  AutoTSMM's 65536 x 32 x 32 walk (32 lines a call at a 256 KiB stride) keeps its
  shared lines in L2 (:func:`set_capacity_lines`);
- *prefetch*: hardware prefetchers do not follow a stream across pages, so each
  line is a demand miss: a walk at a stride of a page or more marks its step
  (``Step.l3_stream`` False), whose L3 transfers then do not overlap its L1 and L2
  ones (:mod:`.ecm`).
"""

from __future__ import annotations

import math

from .spec import Machine

LEVELS = ("l1", "l2", "l3", "dram")


def resident(nbytes: float, mach: Machine, threads: int = 1) -> str:
    """The one level a block of ``nbytes`` of each of ``threads`` threads is taken to
    rest in, where a planner needs a single home (the write of a packed block, a C
    tile read back once per k-block): L1 or L2 at half occupancy, else the last level
    when all threads' blocks fit half of it, else DRAM. Re-reads do not use it: they
    are graded level by level (:func:`reread`)."""
    spec = mach.spec
    if nbytes <= spec.l1_bytes / 2:
        return "l1"
    if nbytes <= mach.l2_per_core / 2:
        return "l2"
    if nbytes * threads <= mach.llc_for(threads) / 2:
        return "l3"
    return "dram"


def sweep_hit(reuse_bytes: float, capacity_bytes: float) -> float:
    """Hit rate of a cyclic sweep whose reuse distance is ``reuse_bytes`` in a cache of
    ``capacity_bytes`` under pseudo-random replacement (module docstring)."""
    if capacity_bytes <= 0:
        return 0.0
    x = reuse_bytes / capacity_bytes
    if x <= 1.0:
        return 1.0
    # the root depends on x alone: kept (planners ask about the same blocks for every
    # thread count, k block and op of a run; each root is 60 bisection steps)
    got = _SWEEP_HIT.get(x)
    if got is None:
        if len(_SWEEP_HIT) > 65536:  # a long sweep's sizes: bounded
            _SWEEP_HIT.clear()
        got = _SWEEP_HIT[x] = _sweep_root(x)
    return got


_SWEEP_HIT: dict[float, float] = {}  # sweep_hit's root per reuse-over-capacity ratio


def _sweep_root(x: float) -> float:
    """The root of ``h = exp(-x (1 - h))`` below 1 for ``x > 1``, by bisection."""
    lo, hi = 0.0, 1.0 - 1e-12  # f(h) = h - exp(-x (1 - h)): f(0) < 0 < f(1-)
    nx, exp = -x, math.exp  # (-x, as the exponent's first factor: the same product)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if mid - exp(nx * (1.0 - mid)) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def reread(step, block_bytes: float, total_bytes: float, mach: Machine, threads: int = 1,
           reuse_bytes: float | None = None, l2_reuse_bytes: float | None = None) -> None:
    """``total_bytes`` of re-reads of a block of ``block_bytes`` per thread, from the
    nearest level that still holds each line (module docstring, *Re-reads*): L1 when
    the block fits it at half occupancy; else the core's L2 at the sweep hit rate of
    the block's reuse distance there (``l2_reuse_bytes``: the block and what the thread
    streams through L2 between two reads of a line; by default the block alone); the
    L2's misses from the last level at the sweep hit rate of its reuse distance
    (``reuse_bytes``, by default all threads' blocks), the rest from DRAM."""
    if total_bytes <= 0:
        return
    if block_bytes <= mach.spec.l1_bytes / 2:
        step.read("l1", total_bytes)
        return
    in_l2, in_l3 = reread_shares(block_bytes, mach, threads, reuse_bytes, l2_reuse_bytes)
    if in_l2 > 0:
        step.read("l2", in_l2 * total_bytes)
    if in_l2 < 1:
        step.read("l3", in_l3 * total_bytes)
        step.read("dram", (1.0 - in_l2 - in_l3) * total_bytes)


def reread_shares(block_bytes: float, mach: Machine, threads: int = 1,
                  reuse_bytes: float | None = None,
                  l2_reuse_bytes: float | None = None) -> tuple[float, float]:
    """The shares of a block's re-reads (past L1) that hit the core's L2 and the last
    level, as :func:`reread` splits them (the rest: DRAM). Continuous in every size: a
    larger L2 or last level only moves re-reads nearer, never farther."""
    in_l2 = sweep_hit(block_bytes if l2_reuse_bytes is None else l2_reuse_bytes,
                      mach.l2_per_core)
    if in_l2 >= 1.0:
        return 1.0, 0.0
    reuse = block_bytes * threads if reuse_bytes is None else reuse_bytes
    return in_l2, (1.0 - in_l2) * sweep_hit(reuse, mach.llc_for(threads))


def scratch(nbytes: float, mach: Machine, threads: int = 1) -> str:
    """Where an intermediate an op writes and reads back itself rests (the score
    matrix of an unfused attention): the smallest cache that holds it at half
    occupancy (the last level when several threads share it), else DRAM."""
    spec = mach.spec
    if threads <= 1 and nbytes <= spec.l1_bytes / 2:
        return "l1"
    if threads <= 1 and nbytes <= mach.l2_per_core / 2:
        return "l2"
    if nbytes <= mach.llc_for(threads) / 2:
        return "l3"
    return "dram"


def shared_read(step, nbytes: float, sharers: int) -> None:
    """A cold operand slice that ``sharers`` threads all read: one of them brings it
    from DRAM, the others find it in the last level."""
    if sharers <= 1:
        step.read("dram", nbytes)
        return
    step.read("dram", nbytes / sharers)
    step.read("l3", nbytes * (sharers - 1) / sharers)


def set_capacity_lines(stride_bytes: float, cache_bytes: float, ways: int, line: int,
                       page_bytes: int = 0) -> float:
    """Lines of a walk at ``stride_bytes`` that one cache holds at once, ``ways`` lines
    in each set the walk's addresses reach (all sets when the stride is not a multiple
    of the line).

    Indexed by the virtual address (``page_bytes`` 0: an L1 indexed in parallel with
    the TLB lookup), a stride that is a multiple of the line reaches ``span / gcd(stride,
    span)`` sets, ``span`` being the bytes one way spans (sets x line). Indexed by the
    physical address (an L2, ``page_bytes`` the page size), the index bits above the
    page offset come from the page's frame, which the operating system hands out with
    no relation to the virtual address: where one way spans more than a page, the walk
    reaches ``page / gcd(stride, page)`` line offsets in a page (one for a stride of a
    page or more), each in any of the ``span / page`` page colours, so a page-sized
    stride spreads over ``span / page`` sets instead of one (evenly on average)."""
    sets = max(1, int(cache_bytes // (ways * line)))
    span = sets * line
    step = int(round(stride_bytes))
    if step <= 0 or step % line:
        return float(sets * ways)
    if page_bytes and span > page_bytes:
        offsets = page_bytes // math.gcd(step, page_bytes)
        return float(min(sets, offsets * (span // page_bytes)) * ways)
    g = math.gcd(step, span)
    return float(max(1, span // g) * ways)


def strided_walk(step, mach: Machine, *, k: int, stride_bytes: float, piece_bytes: float,
                 tile_bytes: float, calls: int, sweeps: float, other_pages: float,
                 home_reuse_bytes: float, threads: int = 1, cold_share: float = 1.0,
                 home_l2_reuse_bytes: float | None = None) -> dict:
    """Costs of ``sweeps`` sweeps of an operand tile (``tile_bytes`` used per sweep)
    walked in place by ``calls`` kernel calls per sweep, each loading a piece of
    ``piece_bytes`` (the last call's may be shorter) per k-step for ``k`` k-steps at
    ``stride_bytes`` (module docstring). Adds to ``step``: the lines each sweep brings
    from the tile's home (DRAM the first time, then as :func:`reread` finds them: L1,
    L2 at the hit rate of ``home_l2_reuse_bytes``, the last level at that of
    ``home_reuse_bytes``; of the first sweep
    only ``cold_share`` comes from DRAM when other threads or batch entries read the
    same tile and bring the rest); the lines
    that two consecutive calls share (a piece boundary inside a line), fetched again
    by the second call from wherever set conflicts left them; and the page-table
    walks. Returns what it found."""
    spec = mach.spec
    line = spec.line_bytes
    if k <= 0 or calls <= 0 or sweeps <= 0 or tile_bytes <= 0:
        return {}
    piece = max(1, int(round(piece_bytes)))
    step.read("dram", tile_bytes * cold_share)  # the first sweep: cold
    step.read("l3", tile_bytes * (1 - cold_share))
    if sweeps > 1:
        reread(step, tile_bytes, (sweeps - 1) * tile_bytes, mach, threads, home_reuse_bytes,
               home_l2_reuse_bytes)
    # a boundary between two calls' pieces falls inside a line unless it is a multiple
    # of the line; the next call wants that line again after the walk touched
    # `lines_per_call` lines, which stay where the walk's conflict-limited capacity
    # holds them (at half occupancy)
    where = "l1"
    shared_lines = (calls - 1) * (1 - math.gcd(piece, line) / line) if stride_bytes >= line \
        else 0.0
    if shared_lines > 0:
        lines_per_call = float(k * math.ceil(piece / line))
        if lines_per_call > set_capacity_lines(stride_bytes, spec.l1_bytes, spec.l1_ways,
                                               line) / 2:
            where = "l2"
            if lines_per_call > set_capacity_lines(stride_bytes, mach.l2_per_core,
                                                   spec.l2_ways, line, spec.page_bytes) / 2:
                where = "l3"
        if where != "l1":
            step.read(where, sweeps * k * shared_lines * line)
    # address translation: the pages of one call's walk, with the other operand's
    pages_per_call = k if stride_bytes >= spec.page_bytes else math.ceil(
        k * stride_bytes / spec.page_bytes)
    if pages_per_call + other_pages > spec.tlb_entries:  # every touch walks
        walks = sweeps * calls * pages_per_call
    else:
        tile_pages = max(pages_per_call, math.ceil(tile_bytes / spec.page_bytes))
        walks = sweeps * tile_pages if tile_pages + other_pages > spec.tlb_entries else \
            float(tile_pages)
    step.tlb_walks += walks
    if stride_bytes >= spec.page_bytes:  # a new page every k-step: no prefetch
        step.l3_stream = False
    return {"conflict_level": where, "pages_per_call": pages_per_call, "tlb_walks": walks}
